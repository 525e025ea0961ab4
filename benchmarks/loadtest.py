"""`make loadtest`: hfx.serve against the server a user would write, under a real load generator.

Starts each server on 127.0.0.1 in turn (never side by side on a small CPU) and drives it with wrk, POSTing
SST-2 test sentences in turn (../shared/data/sst2 or $HFX_SST2), at concurrency 1, 8 and 32, each run bounded
in seconds and in requests, after a warm-up. Servers:
  hfx           python -m hfx.serve on models/export (ONNX int8: dynamic int8 runs one row per model call, so
                an answer never depends on its batch; the batcher still gathers requests between calls)
  hfx-unbatched the same with --max-batch-size 1: what gathering requests adds
  peer          benchmarks/peer_server.py: FastAPI + transformers.pipeline in a plain endpoint (uvicorn)
and on request (HFX_LOADTEST_SERVERS=hfx-fp32,hfx-fp32-unbatched) the fp32 model with and without batching.
Prints requests/s, p50 and p99 latency, non-2xx and failed requests, and ratios; writes
benchmarks/loadtest.json. Needs models/export (`make repro`) and wrk (installed here with apt-get when
missing and run as root).
"""

import json
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

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SST2 = Path(os.environ.get("HFX_SST2", ROOT.parent / "shared/data/sst2"))
MODEL = Path(os.environ.get("HFX_MODEL", ROOT / "models/export"))
WORK = ROOT / "build/loadtest"
SECONDS = int(os.environ.get("HFX_LOADTEST_SECONDS", 10))
MAX_REQUESTS = int(os.environ.get("HFX_LOADTEST_REQUESTS", 20000))
CONCURRENCY = (1, 8, 32)
SERVERS = {
    "hfx": [sys.executable, "-m", "hfx.serve", "--model", str(MODEL)],
    "hfx-unbatched": [sys.executable, "-m", "hfx.serve", "--model", str(MODEL), "--max-batch-size", "1"],
    "peer": [sys.executable, "-m", "uvicorn", "benchmarks.peer_server:app", "--log-level", "warning"],
    # On request (HFX_LOADTEST_SERVERS=hfx-fp32,hfx-fp32-unbatched): what batching does for the fp32 model.
    "hfx-fp32": [sys.executable, "-m", "hfx.serve", "--model", str(MODEL), "--format", "fp32"],
    "hfx-fp32-unbatched": [
        sys.executable,
        "-m",
        "hfx.serve",
        "--model",
        str(MODEL),
        "--format",
        "fp32",
        "--max-batch-size",
        "1",
    ],
}
CHOSEN = os.environ.get("HFX_LOADTEST_SERVERS", "hfx,hfx-unbatched,peer").split(",")


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


def start(name: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = SERVERS[name] + ["--host", "127.0.0.1", "--port", str(port)]
    env = {**os.environ, "HFX_MODEL": str(MODEL), "TOKENIZERS_PARALLELISM": "false"}
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"loadtest: {name} exited: {server.stderr.read()[-2000:]}")
        try:
            urllib.request.urlopen(
                urllib.request.Request(
                    f"{url}/predict", data=b'{"inputs": "warm up"}', headers={"Content-Type": "application/json"}
                ),
                timeout=5,
            )
            return server, url
        except OSError:
            time.sleep(0.3)
    server.kill()
    sys.exit(f"loadtest: {name} did not answer within 120 s")


def wrk(binary: str, url: str, bodies: Path, concurrency: int, seconds: int, max_requests: int) -> dict:
    threads = min(concurrency, 2)
    env = {**os.environ, "HFX_BODIES": str(bodies), "HFX_MAX_REQUESTS": str(max(1, max_requests // threads))}
    out = subprocess.run(
        [
            binary,
            "-t",
            str(threads),
            "-c",
            str(concurrency),
            "-d",
            f"{seconds}s",
            "--timeout",
            "10s",
            "--latency",
            "-s",
            str(ROOT / "benchmarks/wrk_bodies.lua"),
            url,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
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


def main() -> None:
    if not (SST2 / "test.csv").is_file():
        sys.exit(f"loadtest: skipped, SST-2 not found at {SST2} (set HFX_SST2 to a folder with test.csv)")
    if not (MODEL / "model_quantized.onnx").is_file():
        sys.exit(f"loadtest: no exported model at {MODEL}; run `make repro` (or `dvc pull models/export`) first")
    binary = ensure_wrk()
    WORK.mkdir(parents=True, exist_ok=True)
    bodies = WORK / "bodies.jsonl"
    texts = pd.read_csv(SST2 / "test.csv")["text"].astype(str).tolist()
    bodies.write_text("".join(json.dumps({"inputs": text}) + "\n" for text in texts))

    results = {"seconds": SECONDS, "max_requests": MAX_REQUESTS, "sentences": len(texts), "runs": {}}
    for name in CHOSEN:
        server, url = start(name)
        try:
            wrk(binary, url, bodies, 8, 2, MAX_REQUESTS)  # warm-up
            results["runs"][name] = [wrk(binary, url, bodies, c, SECONDS, MAX_REQUESTS) for c in CONCURRENCY]
        finally:
            server.send_signal(signal.SIGTERM)
            code = server.wait(timeout=60)
        results["runs"][name].append({"exit_code_after_sigterm": code})
        for run in results["runs"][name][:-1]:
            print(
                f"{name:<14} c={run['concurrency']:<3} {run['requests_per_s']:>8.1f} req/s"
                f"  p50 {run['p50_ms']:>7.2f} ms  p99 {run['p99_ms']:>7.2f} ms"
                f"  non-2xx {run['non_2xx']}  failed {run['failed']}",
                flush=True,
            )

    if not {"hfx", "hfx-unbatched", "peer"} <= set(results["runs"]):
        print(json.dumps(results, indent=2))
        return
    export = json.loads((ROOT / "metrics/export.json").read_text()) if (ROOT / "metrics/export.json").is_file() else {}
    hfx, unbatched, peer = (results["runs"][n][:-1] for n in ("hfx", "hfx-unbatched", "peer"))
    int8_ms = export.get("latency_ms_batch1", {}).get("int8")
    results["summary"] = {
        "requests_per_s_vs_peer": {
            r["concurrency"]: round(r["requests_per_s"] / p["requests_per_s"], 2) for r, p in zip(hfx, peer)
        },
        "requests_per_s_vs_unbatched": {
            r["concurrency"]: round(r["requests_per_s"] / u["requests_per_s"], 2) for r, u in zip(hfx, unbatched)
        },
        "p99_c1_vs_int8_batch1_latency": round(hfx[0]["p99_ms"] / int8_ms, 2) if int8_ms else None,
        "int8_batch1_latency_ms": int8_ms,
        "errors": {name: sum(r["non_2xx"] + r["failed"] for r in runs[:-1]) for name, runs in results["runs"].items()},
    }
    (ROOT / "benchmarks/loadtest.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results["summary"], indent=2))


if __name__ == "__main__":
    main()
