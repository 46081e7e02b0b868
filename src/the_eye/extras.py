"""The optional parts of The Eye, and what to install when one is missing.

`pip install the-eye` installs the Python SDK alone (standard library only); the server and
the drivers of its production backends are extras. This module uses the standard library
only, so it can tell an SDK-only installation what to add instead of failing on an import.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib.util import find_spec

# The top-level modules of the `server` extra's distributions, in its order.
SERVER_MODULES = (
    "fastapi",
    "uvicorn",
    "uvloop",
    "httptools",
    "sqlalchemy",
    "alembic",
    "msgspec",
    "pydantic_settings",
    "click",
    "rich",
    "jsonschema",
    "re2",
    "jinja2",
    "python_multipart",
)


class MissingExtra(ModuleNotFoundError):
    """A part of The Eye was asked for whose extra is not installed."""


def install_hint(extra: str) -> str:
    """The command that installs `extra`."""
    return f"pip install 'the-eye[{extra}]'"


def missing(modules: Iterable[str]) -> list[str]:
    """The top-level modules among `modules` that cannot be imported."""
    return [name for name in modules if find_spec(name) is None]


def require(module: str, extra: str, need: str) -> None:
    """Raise MissingExtra, saying `need` and how to install `extra`, when the top-level
    `module` cannot be imported."""
    if missing([module]):
        raise MissingExtra(f"{need}: {install_hint(extra)}", name=module)
