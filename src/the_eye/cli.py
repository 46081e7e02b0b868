"""`the-eye`: a thin command line over the library."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal

import click

from the_eye.config import get_settings

if TYPE_CHECKING:  # imported where used, so that each command loads only what it needs
    from rich.progress import Progress, TaskID
    from sqlalchemy.engine import Engine

    from the_eye.store.credentials import Application


def _engine() -> Engine:
    from the_eye.store.engine import create_engine
    from the_eye.store.migrate import migrate

    engine = create_engine(get_settings())
    migrate(engine)
    return engine


def configure_logging() -> None:
    """Log at INFO to stderr: the commands, and the processors `serve` spawns."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)


@click.group()
@click.version_option(package_name="the-eye")
def main() -> None:
    """The Eye: collect user-behaviour events, process them, query them."""
    configure_logging()


@main.command()
def migrate() -> None:
    """Create or upgrade the database schema."""
    _engine().dispose()
    click.echo("database is up to date")


@main.command()
@click.option("--host", default=None, help="Address to listen on [THE_EYE_HOST, 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port [THE_EYE_PORT, 8000].")
@click.option(
    "--workers", type=click.IntRange(1), default=1, show_default=True, help="API processes."
)
@click.option(
    "--processors",
    type=click.IntRange(0),
    default=1,
    show_default=True,
    help="Processor processes started beside the API.",
)
@click.option("--no-processor", is_flag=True, help="API only; run `the-eye worker` elsewhere.")
def serve(
    host: str | None, port: int | None, workers: int, processors: int, no_processor: bool
) -> None:
    """Migrate if needed, then run the HTTP API and the background processor."""
    import uvicorn

    from the_eye.api.app import SERVER_OPTIONS
    from the_eye.processor.supervisor import Supervisor
    from the_eye.processor.worker import run_worker
    from the_eye.store.credentials import bootstrap

    settings = get_settings()
    engine = _engine()
    first = bootstrap(engine)
    if settings.schemas_dir is not None:
        _load_schemas(engine, settings.schemas_dir)
    engine.dispose()
    if first is not None:
        app, token = first
        click.echo(
            "First start over an empty database; these are shown once:\n"
            f"  application 'default' write key: {app.write_key}\n"
            f"  admin API token:                 {token}"
        )
    from the_eye.services.retention import start_retention

    start_retention(settings)  # hourly purges while THE_EYE_RETENTION_DAYS is set
    count = 0 if no_processor else processors
    supervisor = Supervisor(
        run_worker, (settings, os.getpid()), count, initializer=configure_logging
    )
    supervisor.start()  # and restarts a processor that dies
    try:
        uvicorn.run(
            "the_eye.api.app:create_app",
            factory=True,
            host=host or settings.host,
            port=port or settings.port,
            workers=workers,
            log_level="info",
            forwarded_allow_ips=settings.forwarded_allow_ips,
            limit_concurrency=settings.max_connections,
            **SERVER_OPTIONS,
        )
    finally:
        supervisor.stop()


@main.command()
def worker() -> None:
    """Run a processor alone, against the configured store and queue."""
    from the_eye.processor.worker import run_worker
    from the_eye.services.retention import start_retention

    settings = get_settings()
    start_retention(settings)  # hourly purges while THE_EYE_RETENTION_DAYS is set
    run_worker(settings)


@contextmanager
def _store() -> Iterator[Engine]:
    """The configured store, migrated, its connections closed when the command is done."""
    engine = _engine()
    try:
        yield engine
    finally:
        engine.dispose()


@main.group()
def apps() -> None:
    """Applications that send events.

    APP is an application's name, or its id (see `apps list`) when no application has
    that name. Running API processes follow a change within THE_EYE_KEY_CACHE_SECONDS.
    """


@apps.command("create")
@click.argument("name")
@click.option("--strict", is_flag=True, help="Accept only event types that have a schema.")
def apps_create(name: str, strict: bool) -> None:
    """Create an application and print its write key (shown only now)."""
    from the_eye.services import credentials

    with _store() as engine:
        try:
            app = credentials.create_application(engine, name, strict)
        except credentials.NameTaken as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(app.write_key)


@apps.command("list")
def apps_list() -> None:
    """List applications (id, state, mode, created, name); write keys are never shown again."""
    from the_eye.services import credentials

    with _store() as engine:
        found = credentials.list_applications(engine)
    for app in found:
        mode = "strict" if app.strict else "lenient"
        _echo_row(app.id, _state(app.active), mode, app.created_at, app.name)


def _application(engine: Engine, name_or_id: str) -> Application:
    from the_eye.services import credentials

    try:
        return credentials.find_application(engine, name_or_id)
    except credentials.ApplicationNotFound as exc:
        raise click.ClickException(str(exc)) from None


@apps.command("rotate-key")
@click.argument("app")
def apps_rotate_key(app: str) -> None:
    """Give APP a new write key and print it (shown only now); the old key is refused.

    A revoked application is active again with the new key.
    """
    from the_eye.services import credentials

    with _store() as engine:
        rotated = credentials.rotate_write_key(engine, _application(engine, app).id)
    click.echo(rotated.write_key)


@apps.command("revoke")
@click.argument("app")
def apps_revoke(app: str) -> None:
    """Refuse APP's write key from now on (`apps rotate-key` gives it a new one)."""
    from the_eye.services import credentials

    with _store() as engine:
        found = _application(engine, app)
        credentials.revoke_application(engine, found.id)
    click.echo(f"application {found.name!r} (id {found.id}) revoked")


@apps.command("strict")
@click.argument("app")
@click.argument("switch", type=click.Choice(["on", "off"]))
def apps_strict(app: str, switch: str) -> None:
    """Switch APP's strict mode on (only event types that have a schema) or off."""
    from the_eye.services import credentials

    with _store() as engine:
        changed = credentials.set_strict(engine, _application(engine, app).id, switch == "on")
    mode = "strict" if changed.strict else "lenient"
    click.echo(f"application {changed.name!r} (id {changed.id}) is {mode}")


def _state(active: bool) -> str:
    return "active" if active else "revoked"


def _echo_row(*fields: object) -> None:
    """One line of a listing: tab-separated, times to the second."""
    click.echo(
        "\t".join(
            f.isoformat(sep=" ", timespec="seconds") if isinstance(f, datetime) else str(f)
            for f in fields
        )
    )


@main.group()
def tokens() -> None:
    """API tokens for the data team."""


@tokens.command("create")
@click.argument("name")
@click.option("--scope", type=click.Choice(["read", "admin"]), default="read", show_default=True)
def tokens_create(name: str, scope: str) -> None:
    """Create an API token and print it (shown only now)."""
    from the_eye.services import credentials

    with _store() as engine:
        click.echo(credentials.issue_token(engine, name, scope).secret)


@tokens.command("list")
def tokens_list() -> None:
    """List API tokens (id, scope, state, created, name); secrets are never shown again."""
    from the_eye.services import credentials

    with _store() as engine:
        found = credentials.list_tokens(engine)
    for token in found:
        _echo_row(token.id, token.scope, _state(token.active), token.created_at, token.name)


@tokens.command("revoke")
@click.argument("token_id", type=click.IntRange(1, 2**63 - 1))
def tokens_revoke(token_id: int) -> None:
    """Revoke the API token TOKEN_ID (see `tokens list`); running API processes refuse it
    within THE_EYE_KEY_CACHE_SECONDS."""
    from the_eye.services import credentials

    with _store() as engine:
        try:
            credentials.revoke_token(engine, token_id)
        except credentials.TokenNotFound:
            raise click.ClickException(f"no API token with id {token_id}") from None
    click.echo(f"API token {token_id} revoked")


def _load_schemas(engine: Engine, directory: Path) -> None:
    from the_eye.services.schemas import SchemaFileInvalid, load_schema_dir

    try:
        report = load_schema_dir(engine, Path(directory))
    except SchemaFileInvalid as exc:
        raise click.ClickException(f"schemas not loaded: {exc}") from None
    click.echo(
        f"schemas from {directory}: {len(report.created)} new version(s), "
        f"{len(report.unchanged)} unchanged"
    )
    for relative in report.created:
        click.echo(f"  new version: {relative}")


@main.group()
def schemas() -> None:
    """JSON Schemas for the data of each event type."""


@schemas.command("load")
@click.argument(
    "directory", type=click.Path(exists=True, file_okay=False, path_type=Path), required=False
)
def schemas_load(directory: Path | None) -> None:
    """Register <DIRECTORY>/<category>/<name>.json files [THE_EYE_SCHEMAS_DIR].

    A file whose schema differs from its type's newest version becomes a new version; an
    unchanged one does nothing.
    """
    directory = directory or get_settings().schemas_dir
    if directory is None:
        raise click.UsageError("give a DIRECTORY or set THE_EYE_SCHEMAS_DIR")
    engine = _engine()
    try:
        _load_schemas(engine, directory)
    finally:
        engine.dispose()


class _SchemaUnusable(click.ClickException):
    """A dry run's schema that cannot be read or used: exit code 2, apart from 1 (some
    events would fail)."""

    exit_code = 2


@schemas.command("dry-run")
@click.argument("category")
@click.argument("name")
@click.argument("schema_file", metavar="FILE", type=click.File("rb"))
@click.option(
    "--limit",
    type=click.IntRange(1, 10_000),
    default=1000,
    show_default=True,
    help="How many of the type's newest events, and of its newest errors, to check.",
)
def schemas_dry_run(category: str, name: str, schema_file: BinaryIO, limit: int) -> None:
    """Check the schema in FILE (JSON; - for stdin) for the event type CATEGORY/NAME against
    its newest events and open errors, storing nothing.

    Prints how many would pass and fail, with examples of failures and their paths. Exits
    0 when none would fail, 1 when some would, 2 when the schema cannot be used.
    """
    import msgspec

    from the_eye.processor.schemas import SchemaInvalid
    from the_eye.services.dry_run import dry_run

    try:
        schema = msgspec.json.decode(schema_file.read())
    except msgspec.DecodeError as exc:
        raise _SchemaUnusable(f"{schema_file.name}: not JSON ({exc})") from None
    engine = _engine()
    try:
        report = dry_run(engine, get_settings(), category, name, schema, limit)
    except SchemaInvalid as exc:
        raise _SchemaUnusable(f"invalid schema: {exc.message}") from None
    finally:
        engine.dispose()
    click.echo(
        f"{category}/{name}, as version {report.version}, against the newest {limit} "
        "events and errors:"
    )
    for kind, tally in (("events", report.events), ("errors", report.errors)):
        click.echo(
            f"{kind}: {tally.checked} checked, {tally.would_pass} would pass, "
            f"{tally.would_fail} would fail"
        )
        for failure in tally.examples:
            where = f" at {failure.path}" if failure.path else ""
            click.echo(f"  {kind[:-1]} {failure.id}: {failure.reason}{where}: {failure.message}")
    if report.events.would_fail or report.errors.would_fail:
        click.get_current_context().exit(1)


def _time_option(value: str | None, name: str) -> datetime | None:
    from the_eye.timestamps import parse_timestamp

    if value is None:
        return None
    parsed = parse_timestamp(value)
    if parsed is None:
        raise click.BadParameter(f"not an ISO 8601 date and time: {value!r}", param_hint=name)
    return parsed


@main.group()
def errors() -> None:
    """Errors: events and bodies that could not be stored."""


@errors.command("replay")
@click.option("--reason", help="Only errors with this reason (e.g. schema_violation).")
@click.option("--application", help="Only errors of this application (its name).")
@click.option("--session", help="Only errors whose raw event has this session id.")
@click.option("--category", help="Only errors whose raw event has this category.")
@click.option("--name", help="Only errors whose raw event has this name.")
@click.option("--received-at-gte", help="Only errors received at or after (ISO 8601).")
@click.option("--received-at-lte", help="Only errors received at or before (ISO 8601).")
@click.option(
    "--replayed/--not-replayed", default=None, help="Only replayed, or only open, errors."
)
@click.option("--batch-size", type=click.IntRange(1, 10_000), default=500, show_default=True)
def errors_replay(
    reason: str | None,
    application: str | None,
    session: str | None,
    category: str | None,
    name: str | None,
    received_at_gte: str | None,
    received_at_lte: str | None,
    replayed: bool | None,
    batch_size: int,
) -> None:
    """Run errors through processing again with the schemas in force now.

    Those that pass become events (once, however often they are replayed); the others keep
    their record with the new reason; whole-body errors are skipped.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from the_eye.processor.checker import EventChecker
    from the_eye.services.replay import replay_errors
    from the_eye.store import queries

    settings = get_settings()
    engine = _engine()
    try:
        app_id = None
        if application is not None:
            with engine.connect() as conn:
                app_id = queries.application_id(conn, application)
            if app_id is None:
                raise click.ClickException(f"no application named {application!r}")
        where = queries.ErrorFilter(
            reason,
            app_id,
            _time_option(received_at_gte, "--received-at-gte"),
            _time_option(received_at_lte, "--received-at-lte"),
            replayed,
            session,
            category,
            name,
        )
        with engine.connect() as conn:
            total = queries.count_errors(conn, where)
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
        ) as bar:
            task = bar.add_task("replaying", total=total)
            counts = replay_errors(
                engine,
                where,
                EventChecker.from_settings(settings, engine),
                batch_size=batch_size,
                progress=lambda c: bar.update(task, completed=c.done, total=max(total, c.done)),
            )
    finally:
        engine.dispose()
    click.echo(
        f"replayed: {counts.replayed}, still failing: {counts.still_failing}, "
        f"skipped: {counts.skipped}"
    )


@main.command()
@click.option(
    "--days",
    type=click.IntRange(1),
    default=None,
    help="Delete what is older than this many days [THE_EYE_RETENTION_DAYS].",
)
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=1000, show_default=True)
def purge(days: int | None, batch_size: int) -> None:
    """Delete events, errors and empty sessions older than the retention period.

    Events go by their timestamp, errors by when they were received; sessions go once they
    have no events left. Works in batches, each a short transaction.
    """
    from the_eye.services.retention import cutoff_for
    from the_eye.services.retention import purge as run_purge

    days = days or get_settings().retention_days
    if days is None:
        raise click.UsageError("give --days or set THE_EYE_RETENTION_DAYS")
    cutoff = cutoff_for(days)
    engine = _engine()
    try:
        with _spinner() as (bar, task):
            counts = run_purge(
                engine,
                cutoff,
                batch_size=batch_size,
                progress=lambda c: bar.update(
                    task,
                    description=f"deleted {c.events} events, {c.errors} errors, "
                    f"{c.sessions} sessions",
                ),
            )
    finally:
        engine.dispose()
    click.echo(
        f"deleted before {cutoff.isoformat(sep=' ', timespec='seconds')} UTC: "
        f"{counts.events} events, {counts.errors} errors, {counts.sessions} sessions"
    )


@main.command("export")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--format",
    "file_format",
    type=click.Choice(["parquet", "ndjson"]),
    default="parquet",
    show_default=True,
    help="Parquet needs the export extra (pyarrow).",
)
@click.option("--application", help="Only the events of this application (its name).")
def export(
    directory: Path, file_format: Literal["parquet", "ndjson"], application: str | None
) -> None:
    """Write the events stored since the last run to DIRECTORY/events/date=YYYY-MM-DD/.

    Each event exactly once, across runs and crashes (run it from cron); days whose events
    were edited or deleted since are rewritten whole.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from the_eye.export.incremental import ExportRefused, export_events

    engine = _engine()
    try:
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            transient=True,
        ) as bar:
            task = bar.add_task("exporting", total=None)
            report = export_events(
                engine,
                directory,
                file_format,
                application,
                progress=lambda r: bar.update(task, completed=r.exported, total=r.pending),
            )
    except ExportRefused as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        engine.dispose()
    days = ", ".join(day.isoformat() for day in report.rewritten_days) or "none"
    click.echo(
        f"exported {report.exported} new events to {directory} in {report.files} file(s); "
        f"days rewritten: {days} ({report.rewritten_events} events)"
    )


@contextmanager
def _spinner() -> Iterator[tuple[Progress, TaskID]]:
    from rich.progress import Progress, SpinnerColumn, TextColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), transient=True) as bar:
        yield bar, bar.add_task("purging", total=None)


class _BenchCommand(click.Command):
    """`the-eye bench`, a tool shipped beside the product: imported only when it is run."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: object,
    ) -> click.Context:
        try:
            from the_eye_bench import bench
        except ModuleNotFoundError as exc:
            raise click.ClickException(
                f"the benchmark needs {exc.name}, which is not installed: "
                "pip install 'the-eye[bench]'"
            ) from None
        return bench.make_context(info_name, args, parent=parent, **extra)


main.add_command(
    _BenchCommand("bench", help="Measure The Eye over real HTTP on this machine (needs wrk).")
)
