"""The schema registry: versions, compiled validators, violations' details, schema files."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from tests.helpers import count_rows, make_event, write_schema_file
from the_eye.processor.checks import EventRejected, Limits, ValidEvent, check_event
from the_eye.processor.schemas import (
    SchemaInvalid,
    SchemaRegistry,
    compile_schema,
    digest_of,
    json_path,
)
from the_eye.services.schemas import (
    SchemaFileInvalid,
    load_schema_dir,
    read_schema_dir,
    register_schema,
)
from the_eye.store import schemas as store
from the_eye.store.tables import schemas

FORM = {
    "type": "object",
    "required": ["host", "form"],
    "properties": {
        "host": {"type": "string"},
        "form": {
            "type": "object",
            "required": ["first_name"],
            "properties": {"first_name": {"type": "string", "minLength": 1}},
        },
        "tags": {"type": "array", "items": {"type": "string"}},
    },
}


def register(engine, category, name, schema):
    with engine.begin() as conn:
        return register_schema(conn, category, name, schema)


def checked(registry, data, application_id=1, category="form interaction", name="submit"):
    raw = make_event(category=category, name=name, data=data)
    return check_event(
        raw,
        "id-1",
        datetime(2021, 1, 2),
        Limits(max_clock_skew=timedelta(seconds=60)),
        registry.check,
        application_id,
    )


def test_each_post_makes_the_next_version_and_the_newest_is_in_force(engine):
    register(engine, "form interaction", "submit", FORM)
    register(engine, "form interaction", "submit", {"type": "object"})
    register(engine, "page interaction", "pageview", {"required": ["path"]})
    with engine.connect() as conn:
        newest = {(r.category, r.name): r.version for r in store.newest_versions(conn)}
        versions = [r.version for r in store.versions_of(conn, "form interaction", "submit")]
    assert newest == {("form interaction", "submit"): 2, ("page interaction", "pageview"): 1}
    assert versions == [2, 1]

    registry = SchemaRegistry(engine)
    registry.refresh(force=True)
    assert registry.version_of("form interaction", "submit") == 2
    # Version 2 accepts what version 1 refused.
    assert isinstance(checked(registry, {"anything": 1}), ValidEvent)


def test_a_violation_names_the_json_path_the_rule_and_the_version(engine):
    register(engine, "form interaction", "submit", FORM)
    registry = SchemaRegistry(engine)
    registry.refresh(force=True)

    wrong_type = checked(registry, {"host": "h", "form": {"first_name": 5}})
    assert isinstance(wrong_type, EventRejected)
    assert wrong_type.reason == "schema_violation"
    assert wrong_type.details == {
        "field": "data",
        "path": "$.data.form.first_name",
        "rule": "type",
        "schema_path": "#/properties/form/properties/first_name/type",
        "schema_version": 1,
    }
    assert "$.data.form.first_name" in wrong_type.message

    missing = checked(registry, {"host": "h", "form": {"last_name": "Doe"}})
    assert missing.details["path"] == "$.data.form.first_name"
    assert missing.details["rule"] == "required"

    in_array = checked(registry, {"host": "h", "form": {"first_name": "J"}, "tags": ["a", 2]})
    assert in_array.details["path"] == "$.data.tags[1]"
    assert in_array.details["rule"] == "type"

    assert isinstance(checked(registry, {"host": "h", "form": {"first_name": "J"}}), ValidEvent)


def test_validators_are_compiled_once_per_version(engine):
    register(engine, "form interaction", "submit", FORM)
    register(engine, "page interaction", "pageview", {"type": "object"})
    registry = SchemaRegistry(engine)
    registry.refresh(force=True)
    before = dict(registry._schemas)
    registry.refresh(force=True)
    assert registry._schemas == before
    assert all(registry._schemas[k] is before[k] for k in before)

    register(engine, "page interaction", "pageview", {"required": ["path"]})
    registry.refresh(force=True)
    # Only the type with a new version was compiled again.
    assert (
        registry._schemas[("form interaction", "submit")] is before[("form interaction", "submit")]
    )
    assert registry.version_of("page interaction", "pageview") == 2


def test_refresh_waits_for_its_interval_unless_forced(engine):
    registry = SchemaRegistry(engine, refresh_seconds=3600)
    registry.refresh()
    register(engine, "form interaction", "submit", FORM)
    registry.refresh()
    assert registry.version_of("form interaction", "submit") is None
    registry.refresh(force=True)
    assert registry.version_of("form interaction", "submit") == 1


@pytest.mark.parametrize(
    ("schema", "rule"),
    [
        ({"type": "objekt"}, "anyOf"),
        ({"required": "host"}, "type"),
        ({"minLength": -1}, "minimum"),
        ({"$schema": "http://json-schema.org/draft-07/schema#"}, "$schema"),
    ],
)
def test_invalid_schemas_are_refused_with_the_reason(schema, rule):
    with pytest.raises(SchemaInvalid) as refused:
        compile_schema(schema)
    assert refused.value.details["rule"] == rule
    assert refused.value.message


def test_a_schema_must_be_an_object_or_a_boolean():
    for bad in (5, "text", [1]):
        with pytest.raises(SchemaInvalid):
            compile_schema(bad)
    assert compile_schema(True).is_valid({"a": 1})
    assert not compile_schema(False).is_valid({"a": 1})


def test_strict_applications_get_unknown_event_type_for_types_without_schema(engine, creds):
    register(engine, "form interaction", "submit", FORM)
    registry = SchemaRegistry(engine)
    registry.refresh(force=True)
    assert isinstance(checked(registry, {"x": 1}, name="other"), ValidEvent)

    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE applications SET strict = :t"), {"t": True})
    registry.refresh(force=True)
    unknown = checked(registry, {"x": 1}, creds.application_id, name="other")
    assert unknown.reason == "unknown_event_type"
    assert unknown.details == {
        "field": "category",
        "category": "form interaction",
        "name": "other",
    }
    # Another application is not strict.
    assert isinstance(
        checked(registry, {"x": 1}, creds.application_id + 1, name="other"), ValidEvent
    )
    # A type with a schema goes through its schema as usual.
    known = checked(registry, {"host": "h", "form": {"first_name": "J"}}, creds.application_id)
    assert isinstance(known, ValidEvent)


def test_schema_files_make_versions_only_when_they_change(engine, tmp_path):
    root = tmp_path / "schemas"
    write_schema_file(root / "form interaction" / "submit.json", FORM)
    write_schema_file(root / "page interaction" / "pageview.json", {"type": "object"})
    (root / "README.md").write_text("not a schema")
    write_schema_file(root / ".git" / "x" / "ignored.json", {"type": 5})

    first = load_schema_dir(engine, root)
    assert first.created == ["form interaction/submit.json", "page interaction/pageview.json"]
    second = load_schema_dir(engine, root)
    assert second.created == [] and len(second.unchanged) == 2

    # The same schema with other key order and spacing is unchanged; a new rule is not.
    (root / "form interaction" / "submit.json").write_text(
        json.dumps(dict(reversed(FORM.items())), indent=4)
    )
    write_schema_file(
        root / "page interaction" / "pageview.json", {"type": "object", "required": ["path"]}
    )
    third = load_schema_dir(engine, root)
    assert third.created == ["page interaction/pageview.json"]
    with engine.connect() as conn:
        rows = store.versions_of(conn, "page interaction", "pageview")
    assert [(r.version, r.source) for r in rows] == [
        (2, "file:page interaction/pageview.json"),
        (1, "file:page interaction/pageview.json"),
    ]


def test_a_bad_schema_file_loads_nothing(engine, tmp_path):
    root = tmp_path / "schemas"
    write_schema_file(root / "form interaction" / "submit.json", FORM)
    write_schema_file(root / "page interaction" / "pageview.json", {"type": "objekt"})
    with pytest.raises(SchemaFileInvalid, match=r"pageview\.json"):
        load_schema_dir(engine, root)
    (root / "page interaction" / "pageview.json").write_text("{not json")
    with pytest.raises(SchemaFileInvalid, match="not JSON"):
        load_schema_dir(engine, root)
    (root / "page interaction" / "pageview.json").unlink()
    write_schema_file(root / "stray.json", {"type": "object"})
    with pytest.raises(SchemaFileInvalid, match=r"<category>/<name>\.json"):
        load_schema_dir(engine, root)
    assert count_rows(engine, schemas) == 0


# Digests as The Eye stored them before it encoded schemas with msgspec: computed with
# orjson (`orjson.dumps(schema, option=OPT_SORT_KEYS)`, SHA-256) and kept here as the stored
# values that a reload of an unchanged schema must still match.
STORED_DIGESTS = [
    (
        {
            "type": "object",
            "required": ["form"],
            "properties": {
                "form": {
                    "type": "object",
                    "properties": {
                        "last_name": {"type": "string"},
                        "first_name": {"type": "string", "minLength": 1},
                    },
                }
            },
        },
        "a44f6f4e18316f0b8bb5ea31f95291ea547483de94e580f6fc64541222326777",
    ),
    (
        {
            "type": "number",
            "minimum": -0.0,
            "maximum": 1e16,
            "multipleOf": 0.1,
            "exclusiveMaximum": 1.7976931348623157e308,
            "examples": [1e-7, 5e-324, 100.0, 123456789.12345679, 1e21, -2.5e300, 0.00001],
        },
        "3c91e0d703563456d54225df5359c5be4da558e510f11c9047a8527840f0f9df",
    ),
    (
        {
            "title": "Formulaire 🙂",
            "description": '名前 — "quoted"\n\ttab \u2028 \x7f \\ </b>',
            "properties": {
                "prénom": {"const": "Zoë"},
                "名前": {"type": "string"},
                "Émile": {"enum": ["é", "e", "😀", "\ufffd"]},
                "\U0001f600": {},
                "\uffff": {},
            },
        },
        "6760cbc8f746c29cd9908ae23537968db618b7afe32a5f31e2d8cf323cda8703",
    ),
    (
        {
            "maximum": 18446744073709551615,
            "minimum": -9223372036854775808,
            "enum": [True, False, None, 0, -1],
        },
        "e3bc89a68a4229f4b0169d7320b4f655e2abb3077606b47fe2d7a37c691d2161",
    ),
    (True, "b5bea41b6c623f7c09f1bf24dcae58ebab3c0cdd90ad966bc43a45b44867e12b"),
]


@pytest.mark.parametrize(("schema", "stored"), STORED_DIGESTS)
def test_digests_match_the_stored_ones_whatever_the_key_order(schema, stored):
    assert digest_of(schema) == stored
    if isinstance(schema, dict):
        assert digest_of(dict(reversed(schema.items()))) == stored


def test_a_schema_file_with_integers_beyond_64_bits_reads_as_it_was_stored(engine, tmp_path):
    root = tmp_path / "schemas"
    path = root / "page interaction" / "pageview.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(
        b'{"type": "integer", "maximum": 1180591620717411303424, "minimum": -9223372036854775809}'
    )
    ((_, _, schema, _),) = read_schema_dir(root)
    assert schema["maximum"] == 1.1805916207174113e21 and isinstance(schema["maximum"], float)
    # The digest of this file as the version stored from it has it (computed with orjson).
    assert digest_of(schema) == "687547d4c814bfbb1417b6475acea9ee1dc0468d646b414ac01d21ac24e7b657"
    assert load_schema_dir(engine, root).created == ["page interaction/pageview.json"]
    assert load_schema_dir(engine, root).created == []


@pytest.mark.parametrize(
    ("key", "path"),
    [
        ("first name", "$.data['first name']"),
        ("prénom", "$.data.prénom"),
        ('a"b', "$.data['a\\'b']"),
        ("tab\there", "$.data['tab\\there']"),
        ("x-y", "$.data['x-y']"),
        ("😀", "$.data['😀']"),
        ("back\\slash", "$.data['back\\\\slash']"),
    ],
)
def test_json_paths_quote_keys_that_are_not_identifiers(key, path):
    assert json_path("$.data", [key]) == path


def test_a_schema_file_that_refers_outside_itself_or_holds_1e400_loads_nothing(engine, tmp_path):
    root = tmp_path / "schemas"
    path = root / "page interaction" / "pageview.json"
    write_schema_file(root / "form interaction" / "submit.json", FORM)
    write_schema_file(path, {"properties": {"a": {"$ref": "https://example.com/a.json"}}})
    with pytest.raises(SchemaFileInvalid, match=r"pageview\.json.*https://example\.com/a\.json"):
        load_schema_dir(engine, root)
    path.write_text('{"type": "number", "maximum": 1e400}')
    with pytest.raises(SchemaFileInvalid, match=r"pageview\.json: not JSON"):
        load_schema_dir(engine, root)
    assert count_rows(engine, schemas) == 0
