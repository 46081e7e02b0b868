"""wrk (`apt-get install wrk`) makes every load the benchmark sends, replaying body files.

wrk is written in C and spends a few microseconds per request, so on a small machine it
leaves the cores to the server under test. A Lua script replays a file of request bodies:
as fast as the server answers, or at a steady rate on a fixed schedule.
"""

from __future__ import annotations

import json
import math
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from the_eye_bench.traffic import BodyFile

WRK_MISSING = (
    "the benchmark sends its load with wrk, which is not on PATH: install it "
    "(`apt-get install wrk` on Debian and Ubuntu, `brew install wrk` on macOS)"
)
_RESULT_MARK = "BENCH_RESULT "
# How often a running load asks its stop check.
STOP_CHECK_INTERVAL = 0.1

StopCheck = Callable[[], bool]

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

# Added for a steady rate: each request waits for the next slot of its thread's fixed
# schedule, whichever connection is free, so slower answers do not lower the rate. wrk
# gives Lua no clock finer than a second; LuaJIT's ffi reads CLOCK_MONOTONIC.
STEADY_LUA = r"""
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock, bench_timespec *now);
]]
local CLOCK_MONOTONIC = 1
local timespec = ffi.new("bench_timespec")
local interval, start = 0, nil
local slot = -1

local function now()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, timespec)
  return tonumber(timespec.tv_sec) + tonumber(timespec.tv_nsec) * 1e-9
end

local replay_init = init
function init(args)
  replay_init(args)
  interval = tonumber(args[4])
end

function delay()
  start = start or now()
  slot = slot + 1
  return math.max(0, math.floor((start + slot * interval - now()) * 1000))
end
"""


@dataclass(slots=True)
class Load:
    """POST the bodies of a file over `connections` keep-alive connections for `duration` s.

    As fast as the server answers, or `requests_per_s` on a fixed schedule.
    """

    host: str
    port: int
    path: str
    authorization: str
    bodies: BodyFile
    connections: int
    duration: float
    requests_per_s: float | None = None


@dataclass(slots=True)
class LoadResult:
    """What one load run measured on the client side."""

    ok: int
    failed: int
    socket_errors: int
    duration_s: float
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        """Successful (2xx) requests per second."""
        return self.ok / self.duration_s if self.duration_s > 0 else 0.0


class Wrk:
    """Runs `wrk` once per load, with as many threads as the machine has cores."""

    name = "wrk"

    def __init__(self, executable: str, workdir: Path, threads: int) -> None:
        self.executable = executable
        self.threads = max(1, threads)
        self.replay = workdir / "replay.lua"
        self.replay.write_text(REPLAY_LUA)
        self.steady = workdir / "steady.lua"
        self.steady.write_text(REPLAY_LUA + STEADY_LUA)
        version = subprocess.run(
            [executable, "--version"], capture_output=True, text=True, check=False
        )
        first_line = (version.stdout or version.stderr).strip().splitlines()
        self.version = first_line[0].split(" [")[0] if first_line else "wrk"

    @property
    def detail(self) -> str:
        return f"{self.version}, {self.threads} threads"

    def run(self, load: Load, stop_when: StopCheck | None = None) -> LoadResult:
        """Run `load` until its duration is over or `stop_when()` (asked ~10 times/s) says so."""
        return self.start(load).wait(stop_when)

    def start(self, load: Load) -> RunningLoad:
        """Start `load` in the background."""
        threads = min(self.threads, load.connections)
        script, extra = self.replay, []
        if load.requests_per_s is not None:
            # Each thread keeps its share of the rate.
            script, extra = self.steady, [repr(threads / load.requests_per_s)]
        command = [
            self.executable,
            f"--threads={threads}",
            f"--connections={load.connections}",
            # wrk takes whole seconds.
            f"--duration={max(1, math.ceil(load.duration))}s",
            "--timeout=10s",
            f"--script={script}",
            f"http://{load.host}:{load.port}{load.path}",
            "--",
            load.path,
            load.authorization,
            str(load.bodies.path),
            *extra,
        ]
        return RunningLoad(
            subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        )


class RunningLoad:
    """A wrk run in progress."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process

    def wait(self, stop_when: StopCheck | None = None) -> LoadResult:
        """Wait for the end of the run, ending it early once `stop_when()` says so."""
        process = self.process
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
