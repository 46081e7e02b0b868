"""The console's pages, one module per part of the console, each with its `router`."""

from __future__ import annotations

from the_eye.console.pages import errors, overview, sign_in

# Alphabetical, one per line.
PAGES = (
    errors,
    overview,
    sign_in,
)
