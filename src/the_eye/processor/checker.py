"""The event checker a process holds: the settings' limits and the schema registry, together.

Each process (a processor, an API process, a command) builds one `EventChecker` from its
settings and runs every raw event through `check`, which is `check_event` with those limits
and the schemas in force. `refresh` picks up new schema versions and strict flags: cheaply
and at most every `THE_EYE_SCHEMA_REFRESH_SECONDS` by default, at once with `force=True`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.engine import Engine

from the_eye.config import Settings
from the_eye.processor.checks import EventRejected, Limits, ValidEvent, Violation, check_event
from the_eye.processor.schemas import SchemaRegistry


class SchemaRules(Protocol):
    """The rules per event type a checker applies: the registry of the schemas in force, or
    a `CandidateSchema` tried out in a dry run."""

    def refresh(self, force: bool = False) -> None: ...

    def check(
        self, application_id: int, category: str, name: str, data: dict[str, Any]
    ) -> Violation | None: ...


@dataclass(slots=True)
class EventChecker:
    """Checks raw events against limits and, when it has them, the rules per event type."""

    limits: Limits = field(default_factory=Limits)
    schemas: SchemaRules | None = None

    @classmethod
    def from_settings(cls, settings: Settings, engine: Engine) -> EventChecker:
        """The checker of a process: the settings' limits, and a registry over `engine`."""
        registry = SchemaRegistry(
            engine, settings.schema_refresh_seconds, settings.schema_check_budget_ms / 1000
        )
        return cls(Limits.of(settings), registry)

    def refresh(self, force: bool = False) -> None:
        """Load new schema versions and strict flags (a no-op until the refresh interval has
        passed, unless `force`)."""
        if self.schemas is not None:
            self.schemas.refresh(force)

    def check(
        self, raw: Any, event_id: str, received_at: datetime, application_id: int
    ) -> ValidEvent | EventRejected:
        """`check_event` with this checker's limits and schemas; does no I/O."""
        schema_check = None if self.schemas is None else self.schemas.check
        return check_event(raw, event_id, received_at, self.limits, schema_check, application_id)
