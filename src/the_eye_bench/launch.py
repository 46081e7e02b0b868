"""The command lines and environment of the servers a benchmark measures."""

from __future__ import annotations

import os
import sys
from typing import Any

from the_eye.api.app import SERVER_OPTIONS
from the_eye_bench.processes import the_eye_command


def eye_env(database_url: str, queue_url: str, admin_token: str) -> dict[str, str]:
    """The environment of every process of The Eye we start: ours, pointed at the bench's
    store, with an admin token of the run's own (the console's pages are timed signed in
    with it)."""
    return {
        **os.environ,
        "THE_EYE_DATABASE_URL": database_url,
        "THE_EYE_QUEUE_URL": queue_url,
        "THE_EYE_ADMIN_TOKEN": admin_token,
    }


def limit_app_command(host: str, port: int, workers: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "the_eye_bench.limit_app",
        f"--host={host}",
        f"--port={port}",
        f"--workers={workers}",
    ]


def serve_arguments(profile: str, workers: int, processors: int) -> list[str]:
    """`the-eye serve`'s options: in production the processors run as separate workers."""
    arguments = ["serve", f"--workers={workers}"]
    if profile == "production":
        return [*arguments, "--no-processor"]
    return [*arguments, f"--processors={processors}"]


def serve_command(profile: str, host: str, port: int, workers: int, processors: int) -> list[str]:
    arguments = serve_arguments(profile, workers, processors)
    return the_eye_command(*arguments, f"--host={host}", f"--port={port}")


def serve_details(profile: str, workers: int, processors: int) -> dict[str, Any]:
    """How The Eye ran, for the report."""
    details: dict[str, Any] = {
        "command": " ".join(["the-eye", *serve_arguments(profile, workers, processors)]),
        "workers": workers,
        "processors": processors,
        "uvicorn": SERVER_OPTIONS,
    }
    if profile == "production":
        details["worker_processes"] = processors
        details["worker_command"] = "the-eye worker"
    return details
