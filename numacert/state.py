"""Where numacert keeps state that must outlive a process: the lab's records, the journal of
node changes. One root, outside any checkout: $NUMACERT_STATE, else $XDG_STATE_HOME/numacert,
else ~/.local/state/numacert. (Build caches live under numacert.lab.cache's root.)"""

from __future__ import annotations

import os
from pathlib import Path

ENV_STATE = "NUMACERT_STATE"


def state_root() -> Path:
    root = os.environ.get(ENV_STATE)
    if root:
        return Path(root).expanduser().absolute()
    state_home = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state_home) / "numacert"
