"""The wrk load generator (`apt-get install wrk`), driven by a Lua script that replays body files.

wrk is written in C and spends a few microseconds per request, so on a small machine it
leaves the cores to the server under test.
"""

from __future__ import annotations

import json
import math
import signal
import subprocess
from pathlib import Path

from the_eye.bench.load import STOP_CHECK_INTERVAL, LoadGenerator, LoadResult, LoadSpec, StopCheck

_RESULT_MARK = "BENCH_RESULT "

# Each thread loads the bodies once and formats every request up front, so the hot path
# only hands back a prepared string; threads start at different offsets of the file.
REPLAY_LUA = r"""
local requests = {}
local index = 0
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

function init(args)
  local path, authorization, file = args[1], args[2], args[3]
  local headers = {
    ["Authorization"] = authorization,
    ["Content-Type"] = "application/json",
  }
  for line in io.lines(file) do
    requests[#requests + 1] = wrk.format("POST", path, headers, line)
  end
  index = (id * 7919) % #requests
end

function request()
  index = index % #requests + 1
  return requests[index]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT {\"requests\": %d, \"duration_us\": %d, \"status_errors\": %d, " ..
    "\"socket_errors\": %d, \"p50_us\": %d, \"p99_us\": %d}\n",
    summary.requests, summary.duration, e.status,
    e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


class WrkGenerator(LoadGenerator):
    """Runs `wrk` once per load run, with as many threads as the machine has cores."""

    name = "wrk"

    def __init__(self, executable: str, workdir: Path, threads: int) -> None:
        self.executable = executable
        self.threads = max(1, threads)
        self.script = workdir / "replay.lua"
        self.script.write_text(REPLAY_LUA)
        version = subprocess.run(
            [executable, "--version"], capture_output=True, text=True, check=False
        )
        first_line = (version.stdout or version.stderr).strip().splitlines()
        self.version = first_line[0].split(" [")[0] if first_line else "wrk"

    @property
    def detail(self) -> str:
        return f"{self.version}, {self.threads} threads"

    def run(self, spec: LoadSpec, stop_when: StopCheck | None = None) -> LoadResult:
        # wrk takes whole seconds.
        seconds = max(1, math.ceil(spec.duration))
        command = [
            self.executable,
            f"--threads={min(self.threads, spec.connections)}",
            f"--connections={spec.connections}",
            f"--duration={seconds}s",
            "--timeout=10s",
            f"--script={self.script}",
            f"http://{spec.host}:{spec.port}{spec.path}",
            "--",
            spec.path,
            spec.authorization,
            str(spec.bodies.path),
        ]
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            while process.poll() is None:
                try:
                    process.wait(STOP_CHECK_INTERVAL)
                except subprocess.TimeoutExpired:
                    if stop_when is not None and stop_when():
                        # wrk's SIGINT handler ends the run early and still reports it.
                        process.send_signal(signal.SIGINT)
                        stop_when = None
            stdout, stderr = process.communicate()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        for line in stdout.splitlines():
            if line.startswith(_RESULT_MARK):
                raw = json.loads(line[len(_RESULT_MARK) :])
                break
        else:
            raise RuntimeError(f"wrk failed ({process.returncode}): {stderr or stdout}")
        return LoadResult(
            ok=raw["requests"] - raw["status_errors"],
            failed=raw["status_errors"],
            socket_errors=raw["socket_errors"],
            duration_s=raw["duration_us"] / 1e6,
            p50_ms=raw["p50_us"] / 1000,
            p99_ms=raw["p99_us"] / 1000,
        )
