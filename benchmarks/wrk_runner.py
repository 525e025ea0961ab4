"""The load test's machinery: wrk, and servers started on 127.0.0.1 one at a time (benchmarks/loadtest.py)."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def ensure_wrk() -> str:
    if shutil.which("wrk") is None and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], capture_output=True)
        if shutil.which("wrk") is None:
            subprocess.run(["apt-get", "update", "-q"], capture_output=True)
            subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], capture_output=True)
    if shutil.which("wrk") is None:
        sys.exit("loadtest: wrk not found; install it (Debian: apt-get install wrk)")
    return shutil.which("wrk")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(name: str, command: list[str], env: dict, logs: Path) -> tuple[subprocess.Popen, str]:
    """The server `command` on a free port of 127.0.0.1, once it answers a POST /predict (with the key in
    $HFX_API_KEY of `env`, if any); its log in `logs`."""
    port = free_port()
    command = command + ["--host", "127.0.0.1", "--port", str(port)]
    # a file, not a pipe: one line per request would fill a pipe nobody reads, and stall the server
    log = logs / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.log"
    with log.open("w") as out:
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    headers = {"Content-Type": "application/json"}
    if env.get("HFX_API_KEY"):
        headers["Authorization"] = f"Bearer {env['HFX_API_KEY']}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"loadtest: {name} exited: {log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(
                urllib.request.Request(f"{url}/predict", data=b'{"inputs": "warm up"}', headers=headers),
                timeout=5,
            )
            return server, url
        except OSError:
            time.sleep(0.3)
    server.kill()
    sys.exit(f"loadtest: {name} did not answer within 120 s")


def stop(server: subprocess.Popen) -> int:
    server.send_signal(signal.SIGTERM)
    return server.wait(timeout=60)


def wrk(
    binary: str, url: str, bodies: Path, concurrency: int, seconds: int, max_requests: int, key: str | None = None
) -> dict:
    """wrk's figures for POSTs of `bodies` in turn (with `key` as a bearer token, if given)."""
    threads = min(concurrency, 2)
    env = {**os.environ, "HFX_BODIES": str(bodies), "HFX_MAX_REQUESTS": str(max(1, max_requests // threads))}
    env.pop("HFX_API_KEY", None)
    if key:
        env["HFX_API_KEY"] = key
    script = str(ROOT / "benchmarks/wrk_bodies.lua")
    command = [binary, "-t", str(threads), "-c", str(concurrency), "-d", f"{seconds}s", "--timeout", "10s"]
    out = subprocess.run(
        command + ["--latency", "-s", script, url], env=env, capture_output=True, text=True, check=True
    ).stdout

    def ms(label: str) -> float:
        value, unit = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE).groups()
        return float(value) * {"us": 1e-3, "ms": 1, "s": 1e3}[unit]

    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    if requests >= max(1, max_requests // threads) * threads:
        # wrk divides by the whole duration even when the threads stopped early: the rate would be too low.
        sys.exit(f"loadtest: the run hit HFX_LOADTEST_REQUESTS={max_requests} before {seconds} s; raise it")
    return {
        "concurrency": concurrency,
        "requests": requests,
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": ms("50%"),
        "p99_ms": ms("99%"),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "failed": sum(map(int, sockets.groups())) if sockets else 0,
    }


def resident_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024
