"""`make loadtest`: hfx.serve against the server a user would write, under a real load generator.

Starts each server on 127.0.0.1 in turn (never side by side on a small CPU) and drives it with wrk at
concurrency 1, 8 and 32, each run bounded in seconds and in requests, after a warm-up, on two workloads:
  sentences  the SST-2 test sentences (../shared/data/sst2 or $HFX_SST2), one per request, in turn
  mixed      those sentences alternating with IMDb review paragraphs (../shared/data/imdb or $HFX_IMDB): each
             review's leading sentences, as many as fit in the model's max length
Servers:
  hfx           python -m hfx.serve on models/export (ONNX int8: dynamic int8 runs one row per model call, so
                an answer never depends on its batch; the batcher still gathers requests between calls)
  hfx-2-calls   the same with --parallel-calls 2: two model calls at a time, the cores shared between them
  hfx-unbatched the same with --max-batch-size 1: what gathering requests adds
  peer          benchmarks/peer_server.py: FastAPI + transformers.pipeline in a plain endpoint (uvicorn)
and on request (HFX_LOADTEST_SERVERS=hfx-fp32,hfx-fp32-unbatched) the fp32 model with and without batching, or
hfx with any options: HFX_LOADTEST_SERVERS="hfx,hfx:--threads 1,hfx:--preprocess-threads 2".
Before the servers start, the model itself runs each text of each workload in this process, one at a time
(tokenize + model call, no HTTP): the latency a server adds is measured against that.

Prints requests/s, tokens/s, p50 and p99 latency, non-2xx and failed requests, and ratios; writes
benchmarks/loadtest.json. `--soak SECONDS` instead runs hfx alone on the mixed workload at concurrency 32 for
that long, sampling the server's resident memory: benchmarks/soak.json. Needs models/export (`make repro`) and
wrk (installed here with apt-get when missing and run as root).
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
CONCURRENCY = (1, 8, 32)
HFX = [sys.executable, "-m", "hfx.serve", "--model", str(MODEL)]
SERVERS = {
    "hfx": HFX,
    "hfx-2-calls": HFX + ["--parallel-calls", "2"],
    "hfx-unbatched": HFX + ["--max-batch-size", "1"],
    "peer": [sys.executable, "-m", "uvicorn", "benchmarks.peer_server:app", "--log-level", "warning"],
    # On request (HFX_LOADTEST_SERVERS=hfx-fp32,hfx-fp32-unbatched): what batching does for the fp32 model.
    "hfx-fp32": HFX + ["--format", "fp32"],
    "hfx-fp32-unbatched": HFX + ["--format", "fp32", "--max-batch-size", "1"],
}
CHOSEN = os.environ.get("HFX_LOADTEST_SERVERS", "hfx,hfx-2-calls,hfx-unbatched,peer").split(",")
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
    """Each text alone through the model in this process (tokenize + model call): ms per text, and tokens."""
    model.predict(texts[:50])  # ONNX Runtime's first calls set up its kernels
    times = []
    for text in texts:
        started = time.perf_counter()
        model.predict([text])
        times.append(1000 * (time.perf_counter() - started))
    tokens = [model.handler.length(row) for row in model.handler.encode(texts)]
    return {
        "texts": len(texts),
        "mean_tokens": round(float(np.mean(tokens)), 1),
        "median_tokens": int(np.median(tokens)),
        "max_tokens": int(max(tokens)),
        "p50_ms": round(float(np.percentile(times, 50)), 2),
        "p99_ms": round(float(np.percentile(times, 99)), 2),
    }


def server_command(name: str) -> list[str]:
    """A named server, or hfx with options for a name "hfx:OPTIONS"."""
    return HFX + shlex.split(name[4:]) if name.startswith("hfx:") else SERVERS[name]


def launch(name: str) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "HFX_MODEL": str(MODEL), "TOKENIZERS_PARALLELISM": "false"}
    return start(name, server_command(name), env, WORK)


def soak(binary: str, bodies: Path, seconds: int) -> None:
    """hfx at concurrency 32 for `seconds`: errors, and resident memory every 5 s."""
    server, url = launch("hfx")
    samples, done = [], threading.Event()

    def sample():
        started = time.monotonic()
        while not done.wait(5):
            samples.append((round(time.monotonic() - started), round(resident_mb(server.pid), 1)))

    sampler = threading.Thread(target=sample, daemon=True)
    try:
        wrk(binary, url, bodies, 8, 2, MAX_REQUESTS)  # warm-up
        sampler.start()
        run = wrk(binary, url, bodies, 32, seconds, 10**9)
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


def summary(results: dict) -> dict:
    """Per workload: each server's requests/s against the peer's and hfx's, per concurrency; hfx's p99 alone
    (concurrency 1) against the model's own in-process p99."""
    runs = results["runs"]
    out = {"errors": {name: sum(r["non_2xx"] + r["failed"] for r in run["results"]) for name, run in runs.items()}}
    for workload, alone in results["in_process"].items():
        rates = {
            name: {r["concurrency"]: r["requests_per_s"] for r in run["results"] if r["workload"] == workload}
            for name, run in runs.items()
        }
        out[workload] = {
            "p99_c1_vs_in_process_p99": round(
                next(r["p99_ms"] for r in runs["hfx"]["results"] if r["workload"] == workload) / alone["p99_ms"], 2
            )
            if "hfx" in runs
            else None,
        }
        for baseline in ("peer", "hfx"):
            if baseline in rates:
                out[workload][f"requests_per_s_vs_{baseline}"] = {
                    name: {c: round(rate / rates[baseline][c], 2) for c, rate in by_c.items()}
                    for name, by_c in rates.items()
                    if name != baseline
                }
    return out


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
        return soak(binary, bodies["mixed"], args.soak)

    results = {"seconds": SECONDS, "max_requests": MAX_REQUESTS, "cores": len(os.sched_getaffinity(0))}
    results["in_process"] = {name: in_process(model, workload) for name, workload in texts.items()}
    del model
    print(json.dumps(results["in_process"]), flush=True)
    results["runs"] = {}
    for name in CHOSEN:
        server, url = launch(name)
        run = {"results": []}
        try:
            wrk(binary, url, bodies["sentences"], 8, 2, MAX_REQUESTS)  # warm-up
            for workload, path in bodies.items():
                for concurrency in CONCURRENCY:
                    r = {"workload": workload, **wrk(binary, url, path, concurrency, SECONDS, MAX_REQUESTS)}
                    # every thread of wrk walks the bodies in turn: a request holds the workload's mean tokens
                    r["tokens_per_s"] = round(r["requests_per_s"] * results["in_process"][workload]["mean_tokens"])
                    run["results"].append(r)
                    print(
                        f"{name:<14} {workload:<9} c={concurrency:<3} {r['requests_per_s']:>8.1f} req/s"
                        f" {r['tokens_per_s']:>8} tokens/s  p50 {r['p50_ms']:>7.2f} ms  p99 {r['p99_ms']:>7.2f} ms"
                        f"  non-2xx {r['non_2xx']}  failed {r['failed']}",
                        flush=True,
                    )
        finally:
            run["exit_code_after_sigterm"] = stop(server)
        results["runs"][name] = run
    results["summary"] = summary(results)
    (ROOT / "benchmarks/loadtest.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results["summary"], indent=2))


if __name__ == "__main__":
    main()
