"""`make report`: DVC's plots and a metrics table in one HTML page that renders with no network.

DVC's default page loads vega from a CDN; report/template.html loads local copies (installed by npm into
report/node_modules) that are copied beside the page. Usage: python report/build.py [OUT] [REVISION ...]
(no revision: the workspace, as `dvc plots show`; revisions: `dvc plots diff` between them).
"""

import io
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
VEGA_FILES = ("vega/build/vega.min.js", "vega-lite/build/vega-lite.min.js", "vega-embed/build/vega-embed.min.js")
METRICS = ["accuracy", "f1_macro", "roc_auc", "baseline.accuracy", "margin_over_baseline.accuracy",
           "accuracy.onnx_int8", "latency_ms_batch1.pytorch", "latency_ms_batch1.onnx_int8"]
PARAM_PREFIXES = ("task", "data.", "model.", "preprocess.", "finetune.", "evaluate.", "export.")


def metrics_table() -> str:
    """Experiments as rows: the headline metrics, and the params that differ between them."""
    shown = subprocess.run(["dvc", "exp", "show", "--csv"], capture_output=True, text=True, check=True).stdout
    table = pd.read_csv(io.StringIO(shown), dtype=str).fillna("")
    table.insert(0, "name", table["Experiment"].where(table["Experiment"] != "", table["rev"]))
    params = [c for c in table.columns if c.startswith(PARAM_PREFIXES)]
    varying = [c for c in params if table[c].nunique() > 1] or [c for c in params if c.startswith("finetune.")]
    columns = ["name"] + [c for c in METRICS if c in table.columns] + varying
    return table[columns].to_html(index=False, classes="metrics", border=0)


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "build/report")
    revisions = sys.argv[2:]
    missing = [f for f in VEGA_FILES if not (HERE / "node_modules" / f).is_file()]
    if missing:
        sys.exit(f"error: {missing[0]} not found; run `npm ci --prefix report` (make report does)")
    out.mkdir(parents=True, exist_ok=True)
    command = ["dvc", "plots", "diff", *revisions] if revisions else ["dvc", "plots", "show"]
    subprocess.run([*command, "--html-template", str(HERE / "template.html"), "-o", str(out)], check=True,
                   stdout=subprocess.DEVNULL)
    page = out / "index.html"
    page.write_text(page.read_text().replace("{metrics_table}", metrics_table()))
    for name in VEGA_FILES:
        shutil.copy2(HERE / "node_modules" / name, out / Path(name).name)
    print(f"report: {page}")


if __name__ == "__main__":
    main()
