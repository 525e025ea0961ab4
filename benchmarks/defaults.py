"""`make bench-defaults`: the default params on data they were not tuned on, against the TF-IDF baseline.

`python -m benchmarks.defaults finetune.min_steps=0` runs the same with params changed, and only prints.

For each public data set in ../shared/data (or $HFX_SHARED_DATA) and each row cap, a copy of the pipeline runs
`dvc repro` with params.yaml as it is, except for the data keys and `data.max_samples`. Prints a table
(data set, train rows, optimizer steps, epochs, test accuracy, baseline accuracy, margin, wall time) and writes
benchmarks/defaults.json. Work folders live under build/defaults/. Skips with a message without the data.
"""

import json
import os
import sys
import time
from pathlib import Path

import yaml

from benchmarks.bench import copy_project, sh

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("HFX_SHARED_DATA", ROOT.parent / "shared/data"))
WORK = ROOT / "build/defaults"
RUNS = [  # (data set, data.* overrides)
    ("trec", {"data_files": {"train": "train.csv", "test": "test.csv"}}),
    ("rotten_tomatoes", {}),
    ("sst2", {}),
]
CAPS = [int(n) for n in os.environ.get("HFX_DEFAULTS_ROWS", "2000,5000").split(",")]


def run_default(name: str, data: dict, cap: int, overrides: dict) -> dict:
    repo = copy_project(WORK / f"{name}-{cap}")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["data"].update(
        source=str(DATA / name), text_column="text", label_column="label", exclude_labels=[], max_samples=cap, **data
    )
    for key, value in overrides.items():
        section, field = key.split(".")
        params[section][field] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _, seconds = sh(["dvc", "repro"], repo)
    evaluation = json.loads((repo / "metrics/eval.json").read_text())
    train = json.loads((repo / "metrics/train/metrics.json").read_text())
    manifest = json.loads((repo / "data/raw/manifest.json").read_text())
    return {
        "data": name,
        "max_samples": cap,
        "train_rows": manifest["splits"]["train"]["rows"],
        "test_rows": evaluation["n_test"],
        "steps": train["step"],
        "epochs": train["epoch"],
        "accuracy": evaluation["accuracy"],
        "baseline_accuracy": evaluation["baseline"]["accuracy"],
        "margin_points": 100 * evaluation["margin_over_baseline"]["accuracy"],
        "wall_s": round(seconds, 1),
    }


def main() -> None:
    # `python -m benchmarks.defaults finetune.min_steps=0`: the same runs with other params, printed only.
    overrides = {arg.split("=", 1)[0]: yaml.safe_load(arg.split("=", 1)[1]) for arg in sys.argv[1:]}
    missing = [name for name, _ in RUNS if not (DATA / name).is_dir()]
    if missing:
        sys.exit(f"bench-defaults: skipped, no {', '.join(missing)} under {DATA} (set HFX_SHARED_DATA)")
    results = []
    print("| data | rows cap | train rows | steps | epochs | test accuracy | baseline | margin (points) | wall |")
    print("|---|---|---|---|---|---|---|---|---|")
    for cap in CAPS:
        for name, data in RUNS:
            r = run_default(name, data, cap, overrides)
            results.append(r)
            print(
                f"| {name} | {cap:,} | {r['train_rows']:,} | {r['steps']} | {r['epochs']:g} | {r['accuracy']:.4f} |"
                f" {r['baseline_accuracy']:.4f} | {r['margin_points']:+.1f} |"
                f" {time.strftime('%M:%S', time.gmtime(r['wall_s']))} |",
                flush=True,
            )
    if overrides:
        return
    out = ROOT / "benchmarks/defaults.json"
    out.write_text(
        json.dumps(
            {"params": yaml.safe_load((ROOT / "params.yaml").read_text())["finetune"], "runs": results}, indent=2
        )
        + "\n"
    )
    print(f"-> {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
