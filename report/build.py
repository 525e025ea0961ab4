"""`make report`: DVC's plots, a metrics table and the last `hfx tune` study in one HTML page that renders with no
network.

DVC's default page loads vega from a CDN; report/template.html loads local copies (installed by npm into
report/node_modules) that are copied beside the page. Usage: python report/build.py [OUT] [REVISION ...]
(no revision: the workspace, as `dvc plots show`; revisions: `dvc plots diff` between them).
"""

import html
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

HERE = Path(__file__).resolve().parent
VEGA_FILES = ("vega/build/vega.min.js", "vega-lite/build/vega-lite.min.js", "vega-embed/build/vega-embed.min.js")
# Column groups of the metrics table: (column of `dvc exp show --csv`, header, which value is best).
GROUPS = {
    "test scores": [
        ("accuracy", "accuracy", max),
        ("f1_macro", "macro F1", max),
        ("f1", "entity F1", max),
        ("roc_auc", "ROC AUC", max),
        ("loss", "loss", min),
    ],
    "baseline": [
        ("baseline.accuracy", "accuracy", max),
        ("baseline.f1", "entity F1", max),
        ("margin_over_baseline.accuracy", "margin", max),
        ("margin_over_baseline.f1", "margin", max),
    ],
    "calibration": [
        ("ece", "ECE", min),
        ("ece_calibrated", "ECE, calibrated", min),
        ("temperature", "temperature", None),
    ],
    "data": [
        ("leakage.test_in_train.normalised", "test rows in train", min),
        ("duplicates_in_train.normalised", "duplicates in train", min),
    ],
    "export": [
        ("accuracy.int8", "int8 accuracy", max),
        ("f1.int8", "int8 entity F1", max),
        ("latency_ms_batch1.pytorch", "PyTorch ms", min),
        ("latency_ms_batch1.int8", "int8 ms", min),
    ],
}
KEY_PARAMS = ["model.name", "finetune.epochs", "finetune.learning_rate", "finetune.batch_size"]  # when none differ
PARAM_PREFIXES = ("task", "data.", "model.", "preprocess.", "finetune.", "evaluate.", "export.")


def cell(value: str, column: str) -> str:
    """A number as a person reads it: 4 decimals, milliseconds to 0.1, counts as they are."""
    try:
        number = float(value)
    except ValueError:
        return html.escape(value)
    if number.is_integer() and "." not in value:
        return value
    return f"{number:.1f}" if "latency_ms" in column else f"{number:.4f}"


def metrics_table() -> str:
    """Two tables, experiments as rows: the headline metrics in groups (with several experiments, the best
    value of each in bold), then the params that differ between them. Two, so each fits the window."""
    shown = subprocess.run(["dvc", "exp", "show", "--csv"], capture_output=True, text=True, check=True).stdout
    table = pd.read_csv(io.StringIO(shown), dtype=str).fillna("")
    names = table["Experiment"].where(table["Experiment"] != "", table["rev"])
    columns = {("", "experiment"): names.map(html.escape)}
    for group, metrics in GROUPS.items():
        for column, header, best in metrics:
            if column not in table.columns or (table[column] == "").all():
                continue
            values = table[column].map(lambda v, c=column: cell(v, c))
            numbers = pd.to_numeric(table[column], errors="coerce")
            if best is not None and len(table) > 1 and numbers.nunique() > 1:
                winner = best(numbers.dropna())
                values = values.where(numbers != winner, "<b>" + values + "</b>")
            columns[(group, header)] = values
    params = [c for c in table.columns if c.startswith(PARAM_PREFIXES)]
    varying = [c for c in params if table[c].nunique() > 1] or [c for c in KEY_PARAMS if c in table.columns]
    settings = {"experiment": names.map(html.escape)}
    for column in varying:  # a param's value may be long (a path): it wraps in its own cell
        settings[column.replace(".", ".<wbr>")] = '<span class="param">' + table[column].map(html.escape) + "</span>"
    return "\n".join(
        pd.DataFrame(part).to_html(index=False, classes="metrics", border=0, escape=False)
        for part in (columns, settings)
    )


def score(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def study_section(out: Path) -> str:
    """The last `hfx tune` study (tune.results), if there is one: how the best trial was picked, every trial, and
    Optuna's plots of the history and of what mattered (copied beside the page)."""
    tune = (yaml.safe_load(Path("params.yaml").read_text()) or {}).get("tune") or {}
    results = Path(tune.get("results", "metrics/tune.json"))
    if not results.is_file():
        return ""
    found = json.loads(results.read_text())
    best, counts = found["best"], found["trials"]
    rows = pd.DataFrame(
        {
            "trial": [t["experiment"] or t["trial"] for t in found["all"]],
            "state": [t["state"] for t in found["all"]],
            **{
                key.replace(".", ".<wbr>"): [html.escape(str(t["params"].get(key, ""))) for t in found["all"]]
                for key in dict.fromkeys(k for t in found["all"] for k in t["params"])
            },
            f"validation {found['metric']}": [score(t["validation"]) for t in found["all"]],
            f"test {found['metric']}": [score(t["test"]) for t in found["all"]],
            "why it stopped": [html.escape(t["reason"] or "") for t in found["all"]],
        }
    )
    picked = (
        f"Best: <b>{html.escape(best['experiment'])}</b>, picked on validation {found['metric']}"
        f" ({score(best['validation'])}); its test score, {score(best['test']) or 'not recorded'}, played no part."
        if best
        else "No trial completed."
    )
    plots = ""
    for name in ("history.png", "importances.png"):
        source = results.with_name(f"{results.stem}_plots") / name
        if source.is_file():
            shutil.copy2(source, out / f"tune_{name}")
            plots += f'<img src="tune_{name}" alt="{name[:-4]}" width="560">'
    return (
        f"<h2>Hyperparameter search: study {html.escape(found['study'])}</h2>"
        f"<p>{picked} Trials: {counts['complete']} complete, {counts['pruned']} pruned, {counts['fail']} failed.</p>"
        + rows.to_html(index=False, classes="metrics", border=0, escape=False)
        + plots
    )


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "build/report")
    revisions = sys.argv[2:]
    missing = [f for f in VEGA_FILES if not (HERE / "node_modules" / f).is_file()]
    if missing:
        sys.exit(f"error: {missing[0]} not found; run `npm ci --prefix report` (make report does)")
    out.mkdir(parents=True, exist_ok=True)
    command = ["dvc", "plots", "diff", *revisions] if revisions else ["dvc", "plots", "show"]
    subprocess.run(
        [*command, "--html-template", str(HERE / "template.html"), "-o", str(out)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    page = out / "index.html"
    page.write_text(page.read_text().replace("{metrics_table}", metrics_table() + study_section(out)))
    for name in VEGA_FILES:
        shutil.copy2(HERE / "node_modules" / name, out / Path(name).name)
    print(f"report: {page}")


if __name__ == "__main__":
    main()
