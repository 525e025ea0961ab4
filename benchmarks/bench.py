"""`make bench`: the project against the script a user would write, on SST-2, and against the hardware's limit.

1. finetune throughput, project (`dvc repro` of its stages, its defaults) vs the peer (benchmarks/peer_run_glue.py)
   on a fixed stratified sample of SST-2 train, with the validation accuracy of both;
2. model FLOPs utilisation of the project's finetune against a float32 matmul peak measured here;
3. preprocess throughput on the full SST-2 train split;
4. inference: PyTorch eager vs ONNX Runtime fp32 vs int8, batch-1 latency, batch-32 throughput, test accuracy;
5. `dvc repro` on an up-to-date pipeline (no-op) and `dvc status`;
6. the opt-in `finetune.freeze_token_embeddings: true` on the same sample: speed, accuracy, MFU.
Prints a table and writes benchmarks/results.json. Reads SST-2 from ../shared/data/sst2 (or $HFX_SST2) and
skips, with a message, whatever needs it when it is absent. Work folders live under build/bench/.
Heavy parts run one after another, never side by side: on a small CPU they would only slow each other down.
"""

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from datasets import load_from_disk
from sklearn.model_selection import train_test_split
from transformers import AutoModelForSequenceClassification

from hfx.serving.folder import FORMATS
from hfx.serving.loaded_model import LoadedModel
from hfx.training.params import load_params
from hfx.training.sources import model_path

ROOT = Path(__file__).resolve().parents[1]
SST2 = Path(os.environ.get("HFX_SST2", ROOT.parent / "shared/data/sst2"))
WORK = ROOT / "build/bench"
TRAIN_ROWS = int(os.environ.get("HFX_BENCH_TRAIN_ROWS", 2000))
PROJECT_FILES = ["dvc.yaml", "params.yaml", "stages", "hfx", ".dvc/config", ".dvc/plots", ".dvcignore", ".gitignore"]
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def sh(cmd: list[str], cwd: Path) -> tuple[str, float]:
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"bench: {' '.join(cmd)} failed in {cwd}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    return result.stdout, seconds


def copy_project(repo: Path) -> Path:
    """A fresh copy of the pipeline (code, dvc.yaml, params.yaml) as a git repo in `repo`."""
    shutil.rmtree(repo, ignore_errors=True)
    repo.mkdir(parents=True)
    for item in PROJECT_FILES:
        (repo / item).parent.mkdir(parents=True, exist_ok=True)
        copy = shutil.copytree if (ROOT / item).is_dir() else shutil.copy2
        copy(ROOT / item, repo / item)
    sh(["git", "init", "-q"], repo)
    sh(["git", "add", "-A"], repo)  # dvclive records the commit a run starts from
    sh(["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-qm", "bench"], repo)
    return repo


def project_repo(name: str, source: Path, **finetune) -> Path:
    """A copy of the pipeline, with the project's defaults (or `finetune` overrides), reading SST-2 csv files
    from `source`."""
    repo = copy_project(WORK / name)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["data"].update(source=str(source), text_column="text", label_column="label", exclude_labels=[])
    # One epoch on both sides: the peer has no min_steps, so the project runs the same number of steps.
    params["finetune"].update({"min_steps": 0, **finetune})
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return repo


def write_sample() -> Path:
    """A fixed stratified sample of SST-2 train; validation and test are the full SST-2 splits."""
    folder = WORK / "sst2-sample"
    folder.mkdir(parents=True, exist_ok=True)
    train = pd.read_csv(SST2 / "train.csv")
    sample, _ = train_test_split(train, train_size=TRAIN_ROWS, stratify=train["label"], random_state=0)
    sample.to_csv(folder / "train.csv", index=False)
    for split in ("validation", "test"):
        shutil.copy2(SST2 / f"{split}.csv", folder / f"{split}.csv")
    return folder


def project_finetune(repo: Path) -> dict:
    """`dvc repro finetune`: its speed, validation accuracy and MFU, with the matmul peak measured just before
    and just after it (on a shared machine one measurement alone can be off by a third; the better of the two
    gives the lower, safer MFU)."""
    sh(["dvc", "repro", "preprocess"], repo)
    peak_before = matmul_peak_flops()
    _, seconds = sh(["dvc", "repro", "finetune"], repo)
    peaks = [peak_before, matmul_peak_flops()]
    train = json.loads((repo / "metrics/train/metrics.json").read_text())
    epochs = load_params(repo / "params.yaml").finetune.epochs
    processed = load_from_disk(str(repo / "data/processed"))
    lengths = processed["train"]["length"]
    runtime = train["train"]["runtime"]
    return {
        "train_rows": len(lengths),
        "epochs": epochs,
        "real_tokens": sum(lengths) * epochs,
        "train_runtime_s": runtime,
        "samples_per_s": train["train"]["samples_per_second"],
        "real_tokens_per_s": sum(lengths) * epochs / runtime,
        "validation_accuracy": train["eval"]["accuracy"],
        "dvc_repro_finetune_wall_s": seconds,
        "mfu": mfu(repo, lengths, processed["validation"]["length"], epochs, runtime, peaks),
    }


def peer_finetune(repo: Path, sample: Path, real_tokens: int) -> dict:
    """benchmarks/peer_run_glue.py with the model and hyper-parameters of the project's run in `repo`."""
    params = load_params(repo / "params.yaml")
    ft = params.finetune
    out, _ = sh(
        [
            sys.executable,
            str(ROOT / "benchmarks/peer_run_glue.py"),
            "--data",
            str(sample),
            "--model",
            model_path(params.model),
            "--out",
            str(WORK / "peer-out"),
            "--epochs",
            str(ft.epochs),
            "--learning-rate",
            str(ft.learning_rate),
            "--batch-size",
            str(ft.batch_size),
            "--weight-decay",
            str(ft.weight_decay),
            "--warmup-ratio",
            str(ft.warmup_ratio),
            "--seed",
            str(ft.seed),
        ],
        ROOT,
    )
    peer = json.loads(out.strip().splitlines()[-1])
    return {
        "train_runtime_s": peer["train_runtime"],
        "samples_per_s": peer["train_samples_per_second"],
        "real_tokens_per_s": real_tokens / peer["train_runtime"],
        "validation_accuracy": peer["validation_accuracy"],
    }


def matmul_peak_flops(n: int = 2048, repeats: int = 10) -> float:
    """float32 matmul FLOP/s, best of `repeats`, with the thread count training uses."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = min(timeit(lambda: torch.mm(a, b)) for _ in range(repeats))
    return 2 * n**3 / best


def timeit(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def mfu(
    repo: Path, lengths: list[int], validation_lengths: list[int], epochs: float, runtime: float, peaks: list[float]
) -> dict:
    """Model FLOPs utilisation against the better of the float32 matmul `peaks`, on real (unpadded) tokens.

    Training: 6 x non-embedding parameters + 12 x layers x length x hidden FLOPs per token (forward and backward,
    bidirectional attention), over the time spent training: train() `runtime` minus its validation passes (the
    Trainer logs each one's runtime). Also reported: the whole train() window, validation's forward passes
    (2 x non-embedding parameters + 4 x layers x length x hidden per token) counted with their time.
    """
    model = AutoModelForSequenceClassification.from_pretrained(repo / "models/finetuned")
    config = model.config
    embeddings = sum(p.numel() for name, p in model.named_parameters() if ".embeddings." in name)
    non_embedding = sum(p.numel() for p in model.parameters()) - embeddings
    layers, hidden = config.num_hidden_layers, config.hidden_size
    train_flops = epochs * sum(6 * non_embedding * t + 12 * layers * hidden * t * t for t in lengths)
    eval_runtimes = pd.read_csv(repo / "metrics/train/plots/metrics/eval/runtime.tsv", sep="\t")["runtime"]
    validation_flops = len(eval_runtimes) * sum(
        2 * non_embedding * t + 4 * layers * hidden * t * t for t in validation_lengths
    )
    training_s = float(runtime - eval_runtimes.sum())
    peak = max(peaks)
    return {
        "non_embedding_params": non_embedding,
        "train_flops": train_flops,
        "training_s": training_s,
        "achieved_gflops": train_flops / training_s / 1e9,
        "matmul_peak_gflops": peak / 1e9,
        "matmul_peaks_before_after_gflops": [p / 1e9 for p in peaks],
        "mfu": train_flops / training_s / peak,
        "validation_passes": len(eval_runtimes),
        "validation_s": float(eval_runtimes.sum()),
        "validation_flops": validation_flops,
        "mfu_with_validation": (train_flops + validation_flops) / runtime / peak,
        "threads": torch.get_num_threads(),
    }


def preprocess_throughput() -> dict:
    repo = project_repo("sst2-full", SST2)
    sh(["dvc", "repro", "download"], repo)
    _, seconds = sh([sys.executable, "-m", "stages.preprocess"], repo)  # the stage's own command, timed alone
    rows = sum(load_from_disk(str(repo / "data/processed")).num_rows.values())
    return {"rows": rows, "wall_s": seconds, "rows_per_s": rows / seconds}


def inference(repo: Path) -> dict:
    """Each format as predict and serve run it (hfx.serving): raw test texts in, labels out."""
    sh(["dvc", "repro"], repo)  # evaluate and export the model fine-tuned above
    export, threads = repo / "models/export", torch.get_num_threads()
    test = pd.read_parquet(repo / "data/raw/test.parquet")
    texts, gold = list(test["text"]), list(test["label"])
    results = {}
    for fmt in FORMATS:
        model = LoadedModel(export, fmt, threads)
        model.predict(texts[:1])  # warm-up
        times = []
        for text in texts[:200]:
            start = time.perf_counter()
            model.predict([text])
            times.append(time.perf_counter() - start)
        start = time.perf_counter()
        labels = [result[0]["label"] for result in model.predict(texts, 32)]
        seconds = time.perf_counter() - start
        results[fmt] = {
            "latency_ms_batch1": float(np.median(times) * 1000),
            "samples_per_s_batch32": len(texts) / seconds,
            "test_accuracy": float(np.mean([a == b for a, b in zip(labels, gold)])),
        }
    return {"n_test": len(texts), "latency_queries": min(200, len(texts)), "threads": threads, "formats": results}


def dvc_timings(repo: Path, repeats: int = 5) -> dict:
    status, _ = sh(["dvc", "status"], repo)
    assert "up to date" in status, status
    return {
        "noop_repro_s": statistics.median(sh(["dvc", "repro"], repo)[1] for _ in range(repeats)),
        "status_s": statistics.median(sh(["dvc", "status"], repo)[1] for _ in range(repeats)),
        "repeats": repeats,
    }


def main() -> None:
    results = {
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "processor": platform.processor() or platform.machine(),
            "torch": torch.__version__,
        },
        "skipped": [],
    }
    if not (SST2 / "train.csv").is_file():
        message = f"SST-2 not found at {SST2} (set HFX_SST2 to a folder with train/validation/test.csv)"
        print(f"bench: skipping parts 1-6: {message}")
        results["skipped"] = ["finetune", "mfu", "preprocess", "inference", "dvc", "freeze_token_embeddings", message]
    else:
        sample = write_sample()
        repo = project_repo("sst2-sample-run", sample)
        project = project_finetune(repo)
        results["mfu"] = project.pop("mfu")
        results["finetune"] = {key: project.pop(key) for key in ("train_rows", "epochs", "real_tokens")}
        results["finetune"]["project"] = project
        results["finetune"]["peer"] = peer_finetune(repo, sample, results["finetune"]["real_tokens"])
        results["inference"] = inference(repo)
        results["dvc"] = dvc_timings(repo)
        results["preprocess"] = preprocess_throughput()
        # The opt-in that trades accuracy for speed, measured on the same sample (docs/benchmarks.md).
        frozen = project_finetune(project_repo("sst2-sample-frozen", sample, freeze_token_embeddings=True))
        results["freeze_token_embeddings"] = {
            key: frozen[key] for key in ("train_runtime_s", "samples_per_s", "validation_accuracy")
        }
        results["freeze_token_embeddings"]["mfu"] = frozen["mfu"]["mfu"]
    results["summary"] = summary(results)
    (ROOT / "benchmarks/results.json").write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)


def summary(r: dict) -> list[dict]:
    """What the figures mean for a user, one line each: speed and accuracy against the script they would
    otherwise write, and what int8 ONNX costs and saves."""
    if "finetune" not in r:
        return []
    ft, formats = r["finetune"], r["inference"]["formats"]
    eager, int8 = formats["pytorch"], formats["int8"]
    return [
        {"what": what, "value": round(value, 4)}
        for what, value in [
            (
                "training speed, times the run_glue.py-style script",
                ft["project"]["samples_per_s"] / ft["peer"]["samples_per_s"],
            ),
            (
                "validation accuracy minus the script's (points)",
                100 * (ft["project"]["validation_accuracy"] - ft["peer"]["validation_accuracy"]),
            ),
            ("share of the CPU's matmul peak used in training (MFU)", r["mfu"]["mfu"]),
            ("int8 ONNX batch-1 speed, times PyTorch", eager["latency_ms_batch1"] / int8["latency_ms_batch1"]),
            (
                "int8 ONNX test accuracy minus PyTorch's (points)",
                100 * (int8["test_accuracy"] - eager["test_accuracy"]),
            ),
            ("no-op dvc repro (s)", r["dvc"]["noop_repro_s"]),
        ]
    ]


def print_table(r: dict) -> None:
    if "finetune" not in r:
        return
    ft, m, pre, inf, dvc = r["finetune"], r["mfu"], r["preprocess"], r["inference"], r["dvc"]
    p, q = ft["project"], ft["peer"]
    print(f"\n1. finetune, {ft['train_rows']:,} SST-2 train rows x {ft['epochs']} epoch   project      peer   ratio")
    for key, label in [("samples_per_s", "train samples/s"), ("real_tokens_per_s", "real tokens/s")]:
        print(f"   {label:<44}{p[key]:>9.1f} {q[key]:>9.1f} {p[key] / q[key]:>6.2f}x")
    print(f"   {'validation accuracy (872 rows)':<44}{p['validation_accuracy']:>9.4f} {q['validation_accuracy']:>9.4f}")
    print(
        f"2. MFU: {m['achieved_gflops']:.1f} GFLOP/s on real tokens over {m['training_s']:.1f} s of training / "
        f"{m['matmul_peak_gflops']:.1f} GFLOP/s float32 matmul peak ({m['threads']} threads) = {100 * m['mfu']:.1f}%"
    )
    print(
        "   peak: the better of {:.1f} before and {:.1f} GFLOP/s after the finetune".format(
            *m["matmul_peaks_before_after_gflops"]
        )
    )
    print(
        f"   whole train() with its {m['validation_passes']} validation pass(es), {m['validation_s']:.1f} s "
        f"(forward FLOPs counted): {100 * m['mfu_with_validation']:.1f}%"
    )
    print(f"3. preprocess: {pre['rows']:,} rows in {pre['wall_s']:.1f} s = {pre['rows_per_s']:,.0f} rows/s")
    print(
        f"4. inference on {inf['n_test']:,} test rows ({inf['threads']} threads)  "
        "batch-1 ms   batch-32 samples/s   accuracy"
    )
    for fmt, v in inf["formats"].items():
        print(
            f"   {fmt:<40}{v['latency_ms_batch1']:>9.2f} {v['samples_per_s_batch32']:>20.1f}"
            f" {v['test_accuracy']:>10.4f}"
        )
    print(
        f"5. dvc repro (no-op) {dvc['noop_repro_s']:.2f} s, dvc status {dvc['status_s']:.2f} s "
        f"(median of {dvc['repeats']})"
    )
    fr = r["freeze_token_embeddings"]
    print(
        f"6. opt-in finetune.freeze_token_embeddings: {fr['samples_per_s']:.1f} train samples/s "
        f"({fr['samples_per_s'] / p['samples_per_s']:.2f}x the default), validation accuracy "
        f"{fr['validation_accuracy']:.4f}, MFU {100 * fr['mfu']:.1f}%"
    )
    print("\nin short")
    for line in r["summary"]:
        print(f"   {line['what']:<56}{line['value']:>10}")


if __name__ == "__main__":
    main()
