"""Experiments: a queued learning-rate grid run two at a time, `dvc exp show` / `dvc plots diff` over it, the offline
report."""

import json
import re
import shutil
import subprocess
import sys
import time

import pytest

from tests.corpora import generated_splits
from tests.project import REVIEWS, ROOT, run, set_params, tiny_repo

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def queued_grid(tmp_path_factory, tiny_model):
    """Two experiments queued from git with `dvc exp run --queue` and run side by side by `dvc queue start -j 2`:
    both read the same source through the same `datasets` cache at the same time."""
    # Queued runs start from this commit.
    repo = tiny_repo(
        tmp_path_factory.mktemp("experiments") / "repo",
        tiny_model,
        generated_splits({"train": 240, "test": 60}),
        **REVIEWS,
        finetune__epochs=2,
        finetune__warmup_ratio=0.0,
        finetune__batch_size=16,
        export__latency_queries=3,
    )
    run(["dvc", "exp", "run", "--queue", "-S", "finetune.learning_rate=1e-3,3e-3"], repo)
    run(["dvc", "queue", "start", "-j", "2"], repo)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        status = run(["dvc", "queue", "status"], repo).stdout
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(3)
    assert "Success" in status and "Failed" not in status, (
        status + run(["dvc", "queue", "logs", "-a"], repo, check=False).stdout
    )
    run(["dvc", "queue", "stop"], repo, check=False)
    experiments = run(["dvc", "exp", "list", "--name-only"], repo).stdout.split()
    return repo, experiments


def test_queued_grid_shows_both_runs_with_their_params_and_metrics(queued_grid):
    repo, experiments = queued_grid
    assert len(experiments) == 2
    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout)
    runs = [exp for rev in shown for exp in (rev.get("experiments") or [])]
    found = {}
    for exp in runs:
        data = exp["revs"][0]["data"]
        lr = data["params"]["params.yaml"]["data"]["finetune"]["learning_rate"]
        found[lr] = data["metrics"]["metrics/eval.json"]["data"]
    assert set(found) == {1e-3, 3e-3}
    assert found[1e-3]["loss"] != found[3e-3]["loss"], "different learning rates, different models"
    assert {"accuracy", "f1_macro", "roc_auc", "baseline"} <= set(found[1e-3])


def test_side_by_side_runs_match_a_run_on_its_own(queued_grid):
    """Each queued run has its own workspace and checkpoints: its model is the one a lone run makes."""
    repo, _ = queued_grid
    assert run(["git", "status", "--porcelain"], repo).stdout == "", "the queue changed the workspace"
    assert not (repo / "models").exists()
    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout)
    queued = {
        exp["revs"][0]["data"]["params"]["params.yaml"]["data"]["finetune"]["learning_rate"]: exp["revs"][0]["data"][
            "metrics"
        ]["metrics/eval.json"]["data"]
        for rev in shown
        for exp in (rev.get("experiments") or [])
    }
    set_params(repo, finetune__learning_rate=3e-3)
    try:
        run(["dvc", "repro", "--no-run-cache", "evaluate"], repo)  # really train, alone, not restore the queued run
        alone = json.loads((repo / "metrics/eval.json").read_text())
    finally:
        run(["git", "checkout", "params.yaml"], repo)
    assert alone["loss"] == queued[3e-3]["loss"] and alone["accuracy"] == queued[3e-3]["accuracy"]


def test_plots_diff_overlays_both_experiments(queued_grid):
    repo, experiments = queued_grid
    plots = json.loads(run(["dvc", "plots", "diff", *experiments, "--json"], repo).stdout)["data"]
    loss = plots["Training and validation loss"][0]
    assert set(experiments) <= set(loss["revisions"])
    confusion = plots["Confusion matrix (test)"][0]
    assert set(experiments) <= set(confusion["revisions"])


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium; .ci/run does)")
@pytest.mark.skipif(
    not (ROOT / "report/node_modules/vega").is_dir(), reason="run `npm ci --prefix report` (make test does)"
)
def test_offline_report_renders_every_plot_in_chromium(queued_grid, tmp_path):
    repo, experiments = queued_grid
    out = tmp_path / "report"
    run([sys.executable, str(ROOT / "report/build.py"), str(out), *experiments], repo)
    page = (out / "index.html").read_text()
    assert not re.search(r'<script[^>]+src="https?:', page), "no script may come from the network"
    plot_ids = re.findall(r"vegaEmbed\(\'#([^\']+)\'", page)
    assert len(plot_ids) >= 7
    assert "learning_rate" in page and "0.003" in page, "the metrics table lists both experiments"

    def chromium(*mode: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--no-first-run",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={tmp_path / 'chrome'}",
                "--host-resolver-rules=MAP * ~NOTFOUND",
                "--proxy-server=127.0.0.1:9",  # the network is unreachable
                "--enable-logging=stderr",
                "--v=0",
                "--virtual-time-budget=15000",
                "--window-size=1400,900",
                *mode,
                (out / "index.html").as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )

    browser = chromium("--dump-dom")
    dom = browser.stdout
    for plot_id in plot_ids:
        block = dom.split(f'id="{plot_id}"', 1)[1].split('id="', 1)[0]
        sizes = re.findall(r'<canvas[^>]*width="(\d+)"[^>]*height="(\d+)"', block) or re.findall(
            r'<svg[^>]*width="(\d+)"[^>]*height="(\d+)"', block
        )
        assert sizes and all(int(w) > 0 and int(h) > 0 for w, h in sizes), f"plot {plot_id} did not render"
    console_errors = [
        line
        for line in browser.stderr.splitlines()
        if "CONSOLE" in line and re.search(r"error|uncaught", line, re.IGNORECASE)
    ]
    assert console_errors == []

    # As a person sees it in a 1400-px window: the table fits, numbers are rounded, each metric's best in bold.
    table_width, window_width = (
        int(re.search(rf'data-{key}="(\d+)"', dom).group(1)) for key in ("table-width", "window-width")
    )
    assert 0 < table_width <= window_width, f"the metrics table is {table_width} px wide in a {window_width}-px window"
    table = page.split("<table", 1)[1].split("</table>", 1)[0]
    assert not re.search(r">\s*(<b>)?-?\d+\.\d{5,}", table), "metrics show 4 decimals"
    assert "<b>" in table and "calibration" in table and "ECE" in table
    screenshot = tmp_path / "report.png"
    assert chromium(f"--screenshot={screenshot}").returncode == 0
    from PIL import Image

    assert Image.open(screenshot).size == (1400, 900)
