"""numacert's pytest plugin (entry point `pytest11`): command-line options and fixtures wiring.

Kept thin: hooks and fixtures call plain functions of the numacert package.
"""

from __future__ import annotations

import os


def pytest_addoption(parser) -> None:
    group = parser.getgroup("numacert")
    group.addoption(
        "--numacert-lab",
        action="store",
        default=os.environ.get("NUMACERT_LAB", "auto"),
        choices=["auto", "require", "skip"],
        help="lab tests: auto = run when the lab can start here (root, Debian packages), "
        "require = fail if it cannot, skip = do not run them (default: $NUMACERT_LAB or auto)",
    )
