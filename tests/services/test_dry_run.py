"""Schema dry runs: exact pass and fail counts over a type's newest events and errors, the
failures' paths, the bounds, and nothing stored."""

from __future__ import annotations

import pytest

from tests.helpers import PATH_SCHEMA, count_rows, seed_pageviews
from the_eye.processor.checker import EventChecker
from the_eye.processor.checks import Limits
from the_eye.processor.schemas import SchemaInvalid, SchemaRegistry
from the_eye.services.dry_run import dry_run
from the_eye.services.replay import replay_errors
from the_eye.services.schemas import register_schema
from the_eye.store.queries import ErrorFilter
from the_eye.store.tables import errors, events, schemas


def counts(tally) -> tuple[int, int, int]:
    return tally.checked, tally.would_pass, tally.would_fail


def test_dry_run_counts_the_events_and_errors_that_would_pass_and_fail(
    engine, settings, sender, processor
):
    ids = seed_pageviews(sender, processor, engine)
    report = dry_run(engine, settings, "page interaction", "pageview", PATH_SCHEMA)

    assert (report.version, report.limit) == (2, 1000)
    assert counts(report.events) == (10, 6, 4)
    # Newest first: the event with a path without a slash, then those without a path.
    assert [(f.id, f.reason, f.path) for f in report.events.examples] == [
        (ids["bad-path"], "schema_violation", "$.data.path"),
        (ids["no-path-2"], "schema_violation", "$.data.path"),
        (ids["no-path-1"], "schema_violation", "$.data.path"),
        (ids["no-path-0"], "schema_violation", "$.data.path"),
    ]
    assert "does not match '^/'" in report.events.examples[0].message
    assert "(schema version 2)" in report.events.examples[1].message

    assert counts(report.errors) == (7, 4, 3)
    assert [(f.id, f.reason, f.path) for f in report.errors.examples] == [
        (ids["err-future"], "future_timestamp", "$.timestamp"),
        (ids["err-no-path-1"], "schema_violation", "$.data.path"),
        (ids["err-no-path-0"], "schema_violation", "$.data.path"),
    ]


def test_dry_run_foretells_what_a_replay_under_the_schema_stores(
    engine, settings, sender, processor
):
    seed_pageviews(sender, processor, engine)
    before = dry_run(engine, settings, "page interaction", "pageview", PATH_SCHEMA)
    with engine.begin() as conn:
        register_schema(conn, "page interaction", "pageview", PATH_SCHEMA)
    replayed = replay_errors(
        engine,
        ErrorFilter(replayed=False),
        # A budget no stall on a loaded machine reaches, as the dry run's settings have.
        EventChecker(Limits(), SchemaRegistry(engine, budget_seconds=30)),
    )
    assert replayed.replayed == before.errors.would_pass == 4

    after = dry_run(engine, settings, "page interaction", "pageview", PATH_SCHEMA)
    # Replayed errors are events now, counted once: among the events, not the errors.
    assert after.version == 3
    assert counts(after.events) == (14, 10, 4)
    assert counts(after.errors) == (3, 0, 3)


def test_dry_run_checks_only_the_newest_limit_of_each(engine, settings, sender, processor):
    ids = seed_pageviews(sender, processor, engine)
    report = dry_run(engine, settings, "page interaction", "pageview", PATH_SCHEMA, limit=3)
    assert counts(report.events) == (3, 0, 3)
    assert [f.id for f in report.events.examples] == [
        ids["bad-path"],
        ids["no-path-2"],
        ids["no-path-1"],
    ]
    # The three newest errors of the type: the future one and the two without a path.
    assert counts(report.errors) == (3, 0, 3)


def test_dry_run_of_another_type_sees_only_that_type(engine, settings, sender, processor):
    ids = seed_pageviews(sender, processor, engine)
    clicks = dry_run(engine, settings, "page interaction", "cta click", {"required": ["x"]})
    assert clicks.version == 1
    assert counts(clicks.events) == (2, 2, 0)
    assert counts(clicks.errors) == (0, 0, 0)
    submits = dry_run(engine, settings, "form interaction", "submit", {"type": "object"})
    assert counts(submits.events) == (0, 0, 0)
    assert counts(submits.errors) == (1, 0, 1)
    assert submits.errors.examples[0].id == ids["submit-future"]


def test_an_invalid_schema_is_refused_as_registering_it_would_be_and_nothing_is_stored(
    engine, settings, sender, processor
):
    seed_pageviews(sender, processor, engine)
    stored = [count_rows(engine, table) for table in (events, errors, schemas)]
    with pytest.raises(SchemaInvalid) as refused:
        dry_run(engine, settings, "page interaction", "pageview", {"type": "objekt"})
    assert refused.value.details["path"] == "$.type"
    with pytest.raises(SchemaInvalid):
        dry_run(engine, settings, "page interaction", "pageview", {"$ref": "https://x.test/s"})
    dry_run(engine, settings, "page interaction", "pageview", PATH_SCHEMA)
    assert [count_rows(engine, table) for table in (events, errors, schemas)] == stored
    assert count_rows(engine, errors, errors.c.replayed) == 0
