"""A JSON value shown as indented text with one path in it marked: the raw event of an error,
with the member its check names (`details.path`, or `details.field`) highlighted.

The text comes as (piece, marked) pairs for a template to escape and wrap, never as markup.
A path that names a member the value lacks (a required member that is missing) marks the
nearest member on its way that is there; a path that matches nothing marks nothing.
"""

from __future__ import annotations

import json
from typing import Any

from the_eye.processor.schemas import json_path

Piece = tuple[str, bool]


def failing_path(details: Any) -> str | None:
    """The JSON path an error's `details` name: `path`, else `$.<field>`."""
    if not isinstance(details, dict):
        return None
    path = details.get("path")
    if isinstance(path, str):
        return path
    field = details.get("field")
    return f"$.{field}" if isinstance(field, str) else None


def marked_json(value: Any, path: str | None) -> list[Piece]:
    """`value` as JSON indented by two spaces, in pieces, the member at `path` marked."""
    target = _nearest(value, path) if path else None
    pieces: list[Piece] = []

    def emit(text: str, marked: bool) -> None:
        if pieces and pieces[-1][1] == marked:
            pieces[-1] = (pieces[-1][0] + text, marked)
        else:
            pieces.append((text, marked))

    def walk(node: Any, here: str, depth: int, marked: bool) -> None:
        members = _members(node)
        if not members:
            emit(json.dumps(node, ensure_ascii=False), marked)
            return
        opening, closing = ("{", "}") if isinstance(node, dict) else ("[", "]")
        emit(opening + "\n", marked)
        for position, (key, child) in enumerate(members):
            child_path = json_path(here, [key])
            child_marked = marked or child_path == target
            emit("  " * (depth + 1), marked)
            if isinstance(node, dict):
                emit(json.dumps(key, ensure_ascii=False) + ": ", child_marked)
            walk(child, child_path, depth + 1, child_marked)
            emit(",\n" if position < len(members) - 1 else "\n", marked)
        emit("  " * depth + closing, marked)

    walk(value, "$", 0, target == "$")
    return pieces


def _members(node: Any) -> list[tuple[Any, Any]]:
    if isinstance(node, dict):
        return list(node.items())
    if isinstance(node, list):
        return list(enumerate(node))
    return []


def _nearest(value: Any, path: str) -> str | None:
    """The deepest member of `value` that is `path` or on the way to it (never the root)."""
    found = None
    node, here = value, "$"
    while True:
        for key, child in _members(node):
            candidate = json_path(here, [key])
            if path == candidate or path.startswith((candidate + ".", candidate + "[")):
                found, node, here = candidate, child, candidate
                break
        else:
            return found
