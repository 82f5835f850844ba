"""Named topologies shipped as data: clusters/profiles/NAME.yaml (package numacert.clusters).

A profile file is a scenario `topology:` section (the explicit `cpus` + `numa` form or
`generate`) plus a one-line `description:`. Profiles cannot refer to other profiles.
"""

from __future__ import annotations

import copy
import re
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable

import yaml

from numacert.errors import InputError
from numacert.topology.model import Topology

PROFILE_PACKAGE = "numacert.clusters"
PROFILE_DIR = "profiles"
_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")


def _profiles_dir() -> Traversable:
    return resources.files(PROFILE_PACKAGE).joinpath(PROFILE_DIR)


def list_profiles() -> list[str]:
    """Names of the shipped profiles, sorted."""
    return sorted(
        entry.name[: -len(".yaml")]
        for entry in _profiles_dir().iterdir()
        if entry.is_file() and entry.name.endswith(".yaml")
    )


def _unknown(name: str, where: str) -> InputError:
    return InputError(
        f"unknown profile {name!r}; known profiles: {', '.join(list_profiles())}", where
    )


@cache
def _read(name: str) -> dict:
    path = f"clusters/{PROFILE_DIR}/{name}.yaml"
    try:
        data = yaml.safe_load(_profiles_dir().joinpath(f"{name}.yaml").read_text())
    except yaml.YAMLError as exc:
        raise InputError(f"not valid YAML: {exc}".replace("\n", " "), path) from None
    if not isinstance(data, dict):
        raise InputError("a profile must be a mapping", path)
    description = data.get("description")
    if not isinstance(description, str) or not description.strip():
        raise InputError("missing (a one-line text)", f"{path}: description")
    if "profile" in data:
        raise InputError("a profile cannot refer to another profile", f"{path}: profile")
    return data


def profile_data(name: str, where: str = "profile") -> dict:
    """The raw profile mapping (description included)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name not in list_profiles():
        raise _unknown(str(name), where)
    return copy.deepcopy(_read(name))


def profile_description(name: str) -> str:
    return profile_data(name)["description"].strip()


@cache
def _load(name: str) -> Topology:
    from numacert.topology.spec import topology_from_spec  # spec resolves `profile:` here

    section = {k: v for k, v in _read(name).items() if k != "description"}
    return topology_from_spec(section, f"clusters/{PROFILE_DIR}/{name}.yaml: topology")


def load_profile(name: str, where: str = "profile") -> Topology:
    """The Topology of a shipped profile; an unknown name is an InputError listing the known."""
    profile_data(name, where)
    return _load(name)
