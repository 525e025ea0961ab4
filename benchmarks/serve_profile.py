"""`make profile-serve`: where hfx.serve's time goes under load, sampled with py-spy.

Serves models/export as `make loadtest` serves it (ONNX int8, an API key, JSON logs) on 127.0.0.1, drives it
with wrk at concurrency 32 on the SST-2 test sentences (../shared/data/sst2 or $HFX_SST2), one per request,
and samples every Python thread of the server at 100 Hz meanwhile. Each sample is put under the first part of
the server its stack meets, from the innermost frame out; a thread waiting inside the model call counts as the
model's. Prints the shares and writes benchmarks/serve_profile.json. Needs py-spy (requirements-dev.txt), wrk
and models/export.
"""

import collections
import json
import re
import subprocess
import sys
from pathlib import Path

from benchmarks.loadtest import IMDB, MODEL, SST2, WORK, key_of, launch, workloads
from benchmarks.wrk_runner import ROOT, ensure_wrk, stop, wrk
from hfx.serving.loaded_model import LoadedModel

SECONDS = 15
PARTS = [  # (part, a pattern of the frames that belong to it)
    ("model call (ONNX Runtime)", r"onnxruntime"),
    ("validation (pydantic)", r"pydantic"),
    ("JSON", r"json/|orjson|\.render "),
    ("logging", r"logging/|telemetry\.py"),
    ("metrics (prometheus_client)", r"prometheus_client"),
    ("middleware and routing (Starlette, FastAPI)", r"starlette|fastapi"),
    ("HTTP parsing (uvicorn)", r"uvicorn|h11|httptools"),
    ("event loop (asyncio)", r"asyncio"),
    ("hfx's own code, tokenizing included (native, inside it)", r"hfx/serv"),
    ("thread hand-offs (queues, locks, pools)", r"threading|concurrent/futures|queue\.py"),
]


def shares(raw: Path) -> dict[str, float]:
    counts, total = collections.Counter(), 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        total += int(count)
        part = next(
            (p for frame in reversed(stack.split(";")) for p, pattern in PARTS if re.search(pattern, frame)), "other"
        )
        counts[part] += int(count)
    return {part: round(count / total, 3) for part, count in counts.most_common()}


def main() -> None:
    for folder in (SST2, IMDB):  # the load test's workloads read both
        if not (folder / "test.csv").is_file():
            sys.exit(f"profile-serve: skipped, no test.csv in {folder} (set HFX_SST2 and HFX_IMDB)")
    WORK.mkdir(parents=True, exist_ok=True)
    bodies, raw = WORK / "profile-sentences.jsonl", WORK / "profile.txt"
    model = LoadedModel(MODEL, "int8")  # the loadtest's sentences, cut as the model reads them
    texts = workloads(model)["sentences"]
    del model
    bodies.write_text("".join(json.dumps({"inputs": text}) + "\n" for text in texts))
    binary, key = ensure_wrk(), key_of("hfx")
    server, url = launch("hfx")
    try:
        wrk(binary, url, bodies, 8, 2, 20000, key)  # warm-up
        spy = ["py-spy", "record", "-p", str(server.pid), "-d", str(SECONDS), "-r", "100", "--format", "raw"]
        sampler = subprocess.Popen([*spy, "-o", str(raw), "--nonblocking"], stdout=subprocess.DEVNULL)
        load = wrk(binary, url, bodies, 32, SECONDS + 2, 10**9, key)
        sampler.wait()
    finally:
        stop(server)
    result = {"requests_per_s": load["requests_per_s"], "shares": shares(raw)}
    (ROOT / "benchmarks/serve_profile.json").write_text(json.dumps(result, indent=2) + "\n")
    for part, share in result["shares"].items():
        print(f"{share:6.1%}  {part}")


if __name__ == "__main__":
    main()
