"""The failing path marked in a raw event's JSON: the member named, or the nearest one on the
way to a member that is missing, in text that is the JSON itself."""

from __future__ import annotations

import json

import pytest

from the_eye.console.marking import failing_path, marked_json

EVENT = {
    "session_id": "s",
    "data": {"form": {"first name": ["Jo", {"x": 1}]}, "path": "/"},
    "timestamp": "nope",
}


def marked(path: str | None) -> list[str]:
    return [text for text, is_marked in marked_json(EVENT, path) if is_marked]


def test_the_pieces_put_together_are_the_indented_json():
    text = "".join(text for text, _ in marked_json(EVENT, "$.data.path"))
    assert text == json.dumps(EVENT, indent=2, ensure_ascii=False)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$.timestamp", ['"timestamp": "nope"']),
        ("$.data.path", ['"path": "/"']),
        ("$.data.form['first name'][0]", ['"Jo"']),
        ("$.data.form['first name'][1].x", ['"x": 1']),
        ("$.category", []),  # nothing on the way: nothing marked
        (None, []),
    ],
)
def test_the_member_at_the_path_is_marked(path, expected):
    assert marked(path) == expected


def test_a_missing_member_marks_the_nearest_member_on_its_way():
    (form,) = marked("$.data.form.last_name")
    assert form.startswith('"form": {') and form.endswith("}") and '"path"' not in form
    (data,) = marked("$.data.pat")  # a prefix of a name is not that member
    assert data.startswith('"data": {') and '"path": "/"' in data


def test_the_path_comes_from_the_details():
    assert failing_path({"field": "data", "path": "$.data.x"}) == "$.data.x"
    assert failing_path({"field": "timestamp"}) == "$.timestamp"
    assert failing_path({"events": 3}) is None
    assert failing_path(None) is None
