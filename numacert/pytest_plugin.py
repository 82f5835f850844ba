"""numacert's pytest plugin (entry point `pytest11`): command-line options and fixtures wiring.

Kept thin: hooks and fixtures call plain functions of the numacert package.
"""

from __future__ import annotations


def pytest_addoption(parser) -> None:
    group = parser.getgroup("numacert")
    group.addoption(
        "--numacert-lab",
        action="store",
        default="auto",
        choices=["auto", "require", "skip"],
        help="lab tests: auto = run when the lab can start here, require = fail if it cannot, "
        "skip = do not run them",
    )
