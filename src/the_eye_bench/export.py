"""The Parquet export of the stored events (`the-eye export`), measured in a process of its own.

The export runs in a fresh interpreter (`run_export` in a `python -c`), so that its
peak resident memory (`ru_maxrss`, read by that process as it ends) is the export's alone:
the interpreter, SQLAlchemy, pyarrow and one chunk of events at a time. Events per second
count the library call only, not the interpreter's start.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(slots=True)
class ExportResult:
    events: int
    seconds: float
    files: int
    peak_rss_mb: float

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def measure_export(database_url: str, directory: Path) -> ExportResult:
    """Export every stored event to `directory` (a fresh one) as Parquet, in a subprocess."""
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, database_url, str(directory)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the export failed: {done.stderr.strip()[-2000:]}")
    return ExportResult(**json.loads(done.stdout.strip().splitlines()[-1]))


_CHILD = "import sys; from the_eye_bench.export import run_export; run_export(*sys.argv[1:3])"


def run_export(database_url: str, directory: str) -> None:
    """Export every stored event as Parquet and print the result as JSON (in the child)."""
    from the_eye.config import Settings
    from the_eye.export.incremental import export_events
    from the_eye.store.engine import create_engine

    engine = create_engine(Settings(database_url=database_url, _env_file=None))
    began = time.perf_counter()
    report = export_events(engine, Path(directory), "parquet")
    seconds = time.perf_counter() - began
    engine.dispose()
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    result = {
        "events": report.exported,
        "seconds": seconds,
        "files": report.files,
        "peak_rss_mb": peak_kib / 1024,
    }
    print(json.dumps(result))
