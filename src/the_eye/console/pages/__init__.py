"""The console's pages, one module per part of the console, each with its `router`."""

from __future__ import annotations

from the_eye.console.pages import (
    applications,
    errors,
    events,
    live,
    overview,
    sessions,
    sign_in,
    tokens,
    types,
)

# Alphabetical, one per line.
PAGES = (
    applications,
    errors,
    events,
    live,
    overview,
    sessions,
    sign_in,
    tokens,
    types,
)
