"""The browser tracker's source, `sdk/js/`: its unit tests (Node's own runner) pass, the files
The Eye serves are what its build makes of it, and they stay small."""

from __future__ import annotations

import gzip
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SDK = ROOT / "sdk" / "js"
SERVED = ROOT / "src" / "the_eye" / "api" / "static" / "sdk"
NODE = shutil.which("node")
GZIPPED_LIMIT = 8 * 1024

needs_node = pytest.mark.skipif(NODE is None, reason="needs Node.js 20 or later on PATH")


@needs_node
def test_the_trackers_unit_tests_pass():
    assert NODE is not None
    done = subprocess.run(
        [NODE, "--test", "--test-reporter=tap", "test/"],
        cwd=SDK,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "# fail 0" in done.stdout
    passed = int(done.stdout.split("# pass ")[1].split()[0])
    assert passed >= 30, done.stdout[-2000:]


@needs_node
def test_the_served_files_are_built_from_the_current_source():
    assert NODE is not None
    done = subprocess.run(
        [NODE, "build.mjs", "--check", str(SERVED)],
        cwd=SDK,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("name", ["eye.js", "eye.mjs"])
def test_each_served_file_is_under_8_kb_gzipped(name):
    size = len(gzip.compress((SERVED / name).read_bytes(), compresslevel=9))
    assert size < GZIPPED_LIMIT, f"{name} is {size} bytes gzipped"
