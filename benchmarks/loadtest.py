"""`make loadtest`: hfx.serve against its own model in process, and against the server a user would write.

Before each round, the model itself runs the workload's texts in this process, one at a time as the server calls
it (tokenize + model call, no HTTP), for up to HFX_LOADTEST_SECONDS: its rows/s and latency are what a server
could reach. Then each server starts on 127.0.0.1 in turn (never side by side on a small CPU) and wrk drives it
at concurrency 1, 8 and 32, each run bounded in seconds and in requests, after a warm-up, on two workloads:
  sentences  the SST-2 test sentences (../shared/data/sst2 or $HFX_SST2), one per request, in turn
  mixed      those sentences alternating with IMDb review paragraphs (../shared/data/imdb or $HFX_IMDB): each
             review's leading sentences, as many as fit in the model's max length
The rounds (HFX_LOADTEST_ROUNDS, 3) alternate the model in process with the servers, since a machine's speed
drifts; the summary compares medians over the rounds.
Servers:
  hfx           python -m hfx.serve on models/export as in production: an API key (every request sends it),
                JSON logs and metrics. ONNX int8: dynamic int8 runs one row per model call, so an answer never
                depends on its batch; the batcher still gathers requests between calls
  hfx-plain     the same without a key, with plain log lines
  peer          benchmarks/peer_server.py: FastAPI + transformers.pipeline in a plain endpoint (uvicorn), in the
                first round only (hfx is several times faster; its noise does not matter)
and on request (HFX_LOADTEST_SERVERS=...) hfx-2-calls (--parallel-calls 2: two model calls at a time),
hfx-unbatched (--max-batch-size 1: what gathering requests adds), hfx-fp32 and hfx-fp32-unbatched (the fp32
model with and without batching), or hfx with any options: "hfx,hfx:--threads 1,hfx:--preprocess-threads 2".

Prints requests/s, tokens/s, p50 and p99 latency, non-2xx and failed requests per run, then the ratios of the
medians; writes benchmarks/loadtest.json. `--soak SECONDS` instead runs hfx alone on the mixed workload at
concurrency 32 for that long, sampling the server's resident memory: benchmarks/soak.json. Needs models/export
(`make repro`) and wrk (installed here with apt-get when missing and run as root).
"""

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

from benchmarks.loadtest_summary import summary
from benchmarks.wrk_runner import ensure_wrk, resident_mb, start, stop, wrk
from hfx.serving.loaded_model import LoadedModel
from hfx.serving.threads import quiet_other_pools

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared/data"
SST2 = Path(os.environ.get("HFX_SST2", SHARED / "sst2"))
IMDB = Path(os.environ.get("HFX_IMDB", SHARED / "imdb"))
MODEL = Path(os.environ.get("HFX_MODEL", ROOT / "models/export"))
WORK = ROOT / "build/loadtest"
SECONDS = int(os.environ.get("HFX_LOADTEST_SECONDS", 10))
MAX_REQUESTS = int(os.environ.get("HFX_LOADTEST_REQUESTS", 20000))
ROUNDS = int(os.environ.get("HFX_LOADTEST_ROUNDS", 3))
CONCURRENCY = (1, 8, 32)
API_KEY = "loadtest-key-0123456789abcdef"  # any key: what counts is that the server checks one
HFX = [sys.executable, "-m", "hfx.serve", "--model", str(MODEL)]
PRODUCTION = HFX + ["--json-logs"]  # and the key, in the environment
SERVERS = {
    "hfx": PRODUCTION,
    "hfx-plain": HFX,
    "peer": [sys.executable, "-m", "uvicorn", "benchmarks.peer_server:app", "--log-level", "warning"],
    # On request (HFX_LOADTEST_SERVERS=...): answers to design questions (docs/benchmarks.md).
    "hfx-2-calls": PRODUCTION + ["--parallel-calls", "2"],
    "hfx-unbatched": PRODUCTION + ["--max-batch-size", "1"],
    "hfx-fp32": PRODUCTION + ["--format", "fp32"],
    "hfx-fp32-unbatched": PRODUCTION + ["--format", "fp32", "--max-batch-size", "1"],
}
UNKEYED = {"hfx-plain", "peer"}
ONCE = {"peer"}  # run in the first round only
CHOSEN = os.environ.get("HFX_LOADTEST_SERVERS", "hfx,hfx-plain,peer").split(",")
PARAGRAPHS = 1000  # IMDb reviews cut into paragraphs for the mixed workload


def paragraph(handler, review: str) -> str:
    """The review's leading sentences, as many as fit in the model's max length (at least the first)."""
    sentences = re.split(r"(?<=[.!?])\s+", review.replace("<br />", " ").strip())
    kept = sentences[:1]
    for sentence in sentences[1:]:
        if handler.truncated(handler.encode([" ".join(kept + [sentence])])[0]):
            break
        kept.append(sentence)
    return " ".join(kept)


def workloads(model: LoadedModel) -> dict[str, list[str]]:
    sentences = pd.read_csv(SST2 / "test.csv")["text"].astype(str).tolist()
    reviews = pd.read_csv(IMDB / "test.csv")["text"].astype(str).sample(PARAGRAPHS, random_state=0).tolist()
    paragraphs = [paragraph(model.handler, review) for review in reviews]
    mixed = [text for pair in zip(sentences, paragraphs * 2) for text in pair]
    return {"sentences": sentences, "mixed": mixed}


def in_process(model: LoadedModel, texts: list[str]) -> dict:
    """The texts in turn through the model in this process, one per call (tokenize + model call), for up to
    SECONDS: rows/s, and ms per text."""
    model.predict(texts[:50])  # ONNX Runtime's first calls set up its kernels
    times, started, cpu = [], time.perf_counter(), time.process_time()
    for text in texts:
        before = time.perf_counter()
        model.predict([text])
        times.append(1000 * (time.perf_counter() - before))
        if time.perf_counter() - started > SECONDS:
            break
    cpu = time.process_time() - cpu  # every thread of this process: ONNX Runtime's too
    return {
        "rows": len(times),
        "rows_per_s": round(len(times) / (time.perf_counter() - started), 1),
        "cpu_ms_per_row": round(1000 * cpu / len(times), 2),
        "p50_ms": round(float(np.percentile(times, 50)), 2),
        "p99_ms": round(float(np.percentile(times, 99)), 2),
    }


def token_counts(model: LoadedModel, texts: list[str]) -> dict:
    tokens = [model.handler.length(row) for row in model.handler.encode(texts)]
    return {
        "texts": len(texts),
        "mean_tokens": round(float(np.mean(tokens)), 1),
        "median_tokens": int(np.median(tokens)),
        "max_tokens": int(max(tokens)),
    }


def server_command(name: str) -> list[str]:
    """A named server, or hfx as in production with options for a name "hfx:OPTIONS"."""
    return PRODUCTION + shlex.split(name[4:]) if name.startswith("hfx:") else SERVERS[name]


def key_of(name: str) -> str | None:
    return None if name in UNKEYED else API_KEY


def launch(name: str) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "HFX_MODEL": str(MODEL), "TOKENIZERS_PARALLELISM": "false"}
    env.pop("HFX_API_KEY", None)
    if key_of(name):
        env["HFX_API_KEY"] = key_of(name)
    return start(name, server_command(name), env, WORK)


def soak(binary: str, bodies: Path, seconds: int) -> None:
    """hfx at concurrency 32 for `seconds`: errors, and resident memory every 5 s."""
    server, url = launch("hfx")
    key = key_of("hfx")
    samples, done = [], threading.Event()

    def sample():
        started = time.monotonic()
        while not done.wait(5):
            samples.append((round(time.monotonic() - started), round(resident_mb(server.pid), 1)))

    sampler = threading.Thread(target=sample, daemon=True)
    try:
        wrk(binary, url, bodies, 8, 2, MAX_REQUESTS, key)  # warm-up
        sampler.start()
        run = wrk(binary, url, bodies, 32, seconds, 10**9, key)
    finally:
        done.set()
        code = stop(server)
    after_minute = [mb for t, mb in samples if t >= 60]
    result = {
        **run,
        "seconds": seconds,
        "exit_code_after_sigterm": code,
        "rss_mb_at_60s": after_minute[0],
        "rss_mb_max_after_60s": max(after_minute),
        "rss_mb_at_end": after_minute[-1],
        "rss_growth_after_60s": round(max(after_minute) / after_minute[0] - 1, 4),
        "rss_samples": samples,
    }
    (ROOT / "benchmarks/soak.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "rss_samples"}, indent=2))


def cpu_model() -> str:
    lines = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    name = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown")
    flags = next((line for line in lines if line.startswith("flags")), "")
    return f"{name} ({'AVX-512' if ' avx512f' in flags else 'AVX2' if ' avx2' in flags else 'no AVX2'})"


def serve_round(binary: str, name: str, bodies: dict[str, Path], tokens: dict) -> dict:
    """One server through every workload and concurrency, and its exit code on SIGTERM."""
    server, url = launch(name)
    key, results = key_of(name), []
    try:
        wrk(binary, url, bodies["sentences"], 8, 2, MAX_REQUESTS, key)  # warm-up
        for workload, path in bodies.items():
            for concurrency in CONCURRENCY:
                cpu = sum(psutil.Process(server.pid).cpu_times()[:2])
                r = {"workload": workload, **wrk(binary, url, path, concurrency, SECONDS, MAX_REQUESTS, key)}
                # the server's CPU time (every thread) per answer: what HTTP adds shows beside the model's own
                cpu = sum(psutil.Process(server.pid).cpu_times()[:2]) - cpu
                r["cpu_ms_per_request"] = round(1000 * cpu / max(1, r["requests"]), 2)
                # every thread of wrk walks the bodies in turn: a request holds the workload's mean tokens
                r["tokens_per_s"] = round(r["requests_per_s"] * tokens[workload]["mean_tokens"])
                results.append(r)
                print(
                    f"{name:<14} {workload:<9} c={concurrency:<3} {r['requests_per_s']:>8.1f} req/s"
                    f" {r['tokens_per_s']:>8} tokens/s  p50 {r['p50_ms']:>7.2f} ms  p99 {r['p99_ms']:>7.2f} ms"
                    f"  cpu {r['cpu_ms_per_request']:>5.2f} ms/request  non-2xx {r['non_2xx']}  failed {r['failed']}",
                    flush=True,
                )
    finally:
        code = stop(server)
    return {"results": results, "exit_code_after_sigterm": code}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--soak", type=int, metavar="SECONDS", help="run hfx alone at concurrency 32 this long")
    args = parser.parse_args()
    for folder in (SST2, IMDB):
        if not (folder / "test.csv").is_file():
            sys.exit(f"loadtest: skipped, no test.csv in {folder} (set HFX_SST2 and HFX_IMDB)")
    if not (MODEL / "model_quantized.onnx").is_file():
        sys.exit(f"loadtest: no exported model at {MODEL}; run `make repro` (or `dvc pull models/export`) first")
    binary = ensure_wrk()
    quiet_other_pools()  # as hfx.serve does, so the in-process figures share the cores the same way
    WORK.mkdir(parents=True, exist_ok=True)
    model = LoadedModel(MODEL, "int8")
    texts = workloads(model)
    bodies = {}
    for name, workload in texts.items():
        bodies[name] = WORK / f"{name}.jsonl"
        bodies[name].write_text("".join(json.dumps({"inputs": text}) + "\n" for text in workload))
    if args.soak:
        del model
        return soak(binary, bodies["mixed"], args.soak)

    results = {
        "seconds": SECONDS,
        "max_requests": MAX_REQUESTS,
        "cores": len(os.sched_getaffinity(0)),
        "cpu": cpu_model(),
        "concurrency": list(CONCURRENCY),
        "workloads": {name: token_counts(model, workload) for name, workload in texts.items()},
        "rounds": [],
    }
    for number in range(ROUNDS):
        alone = {name: in_process(model, workload) for name, workload in texts.items()}
        print(f"round {number + 1}: in process {json.dumps(alone)}", flush=True)
        runs = {
            name: serve_round(binary, name, bodies, results["workloads"])
            for name in CHOSEN
            if not (number and name in ONCE)
        }
        results["rounds"].append({"in_process": alone, "runs": runs})
    results["summary"] = summary(results)
    (ROOT / "benchmarks/loadtest.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results["summary"], indent=2))


if __name__ == "__main__":
    main()
