"""One process with every core against one process per core (DDP over gloo): `make bench-processes`.

Runs the finetune stage of the project as committed, on its own `data/processed`, once per layout, in a scratch
copy (the project's outputs stay as they are), one after the other in this one command. Writes
benchmarks/processes.json: training rows/s, the stage's wall time and the best validation scores of each.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
LAYOUTS = [{"processes": 1, "threads": os.cpu_count()}, {"processes": os.cpu_count(), "threads": 1}]


def run_layout(scratch: Path, processes: int) -> dict:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["finetune"]["processes"] = processes
    (scratch / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for out in ("models", "metrics"):
        shutil.rmtree(scratch / out, ignore_errors=True)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "stages.finetune"], cwd=scratch, check=True)
    wall = time.perf_counter() - start
    logged = json.loads((scratch / "metrics/train/metrics.json").read_text())
    return {
        "processes": processes,
        "wall_s": round(wall, 1),
        "train_rows_per_s": logged["train"]["samples_per_second"],
        "steps": logged["step"],
        "validation": {k: round(logged["eval"][k], 4) for k in ("accuracy", "f1_macro", "loss")},
    }


def main() -> None:
    if not (ROOT / "data/processed").is_dir():
        raise SystemExit("error: no data/processed; run `dvc repro preprocess` (or `make repro`) first")
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        for code in ("stages", "hfx"):
            shutil.copytree(ROOT / code, scratch / code, ignore=shutil.ignore_patterns("__pycache__"))
        (scratch / "data").mkdir()
        (scratch / "data/processed").symlink_to(ROOT / "data/processed")  # read only
        results = [{**layout, **run_layout(scratch, layout["processes"])} for layout in LAYOUTS]
    single, multi = results
    summary = {
        "cores": os.cpu_count(),
        "layouts": results,
        "speedup": round(multi["train_rows_per_s"] / single["train_rows_per_s"], 2),
        "accuracy_difference": round(multi["validation"]["accuracy"] - single["validation"]["accuracy"], 4),
    }
    (ROOT / "benchmarks/processes.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
