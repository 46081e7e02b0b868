"""`/docs/` in a real headless Chromium with every host but this machine unreachable: the
Swagger UI renders the operations from the package's own assets, at a wide and a narrow
window. Screenshots go to `build/screenshots/` for a person to look at."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"


def chromium(*args: str) -> str:
    """Run headless Chromium that can reach 127.0.0.1 only; its standard output."""
    assert CHROMIUM is not None
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--virtual-time-budget=10000",
        *args,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    return done.stdout


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (.ci/run installs Debian's)")
@pytest.mark.parametrize("width", [1280, 390])
def test_the_swagger_ui_renders_offline(server, settings, width):
    if not settings.database_url.startswith("sqlite"):
        pytest.skip("the page is the same on every backend")
    url = f"{server.url}/docs/"
    dom = chromium(f"--window-size={width},1100", "--dump-dom", url)
    # Rendered by the bundle from /openapi.json: only there if both loaded.
    assert "opblock-summary" in dom
    assert "Send events" in dom and "List events" in dom
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOTS / f"docs-{width}.png"
    chromium(f"--window-size={width},1100", f"--screenshot={shot}", url)
    assert shot.stat().st_size > 10_000
