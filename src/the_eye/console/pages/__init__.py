"""The console's pages, one module per part of the console, each with its `router`."""

from __future__ import annotations

from the_eye.console.pages import applications, overview, sign_in, tokens, types

# Alphabetical, one per line.
PAGES = (
    applications,
    overview,
    sign_in,
    tokens,
    types,
)
