"""`hfx tune` on the tiny run: trials as DVC experiments, a pruned one, a failed one, a study continued across
runs, the workspace left as it was."""

import json
import sys

import pytest
import yaml

from tests.project import ROOT, commit_all, copy_of, run

optuna = pytest.importorskip("optuna")

# What the workspace's last run wrote, which no trial may change.
WORKSPACE_OUTPUTS = [
    "dvc.lock",
    "models/finetuned/model.safetensors",
    "metrics/eval.json",
    "metrics/train/metrics.json",
]


def search(repo, trials: int, space: dict, **finetune) -> dict:
    """`hfx tune --trials N` on `space` (the rest of the tune section as params.yaml has it), from a workspace
    whose finetune section has `finetune` (by default a weight decay other than the tiny run's, so that a trial
    trains rather than restore that run from the cache)."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["tune"]["space"] = space
    params["finetune"].update({"learning_rate": 3e-3, "weight_decay": 0.02, **finetune})
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = run(["python", "-m", "hfx.tune", "--trials", str(trials)], repo, check=False)
    return {"result": result, "found": json.loads((repo / "metrics/tune.json").read_text())}


@pytest.fixture(scope="module")
def tuned(tiny_run, tmp_path_factory):
    """Three runs of one study on a copy of the tiny run (4 epochs, a validation each): a learning rate that
    learns (the workspace's is another, so the trial's own must be set); one a thousand times lower, behind it at
    its first validation (pruned); and a model folder that is not one (fails).
    Each run searches a param of its own (a study keeps a param's choices), over one choice."""
    repo = copy_of(tiny_run[0], tmp_path_factory.mktemp("tune") / "repo")
    commit_all(repo, "reproduced")
    tracked = run(["git", "status", "--porcelain", "--untracked-files=no"], repo).stdout
    outputs = {path: (repo / path).read_bytes() for path in WORKSPACE_OUTPUTS}
    runs = [
        search(repo, 1, {"finetune.learning_rate": {"choices": [3e-3]}}, learning_rate=1e-5),
        search(repo, 2, {"finetune.weight_decay": {"choices": [0.01]}}, learning_rate=3e-6),
        search(repo, 3, {"model.name": {"choices": ["inputs"]}}),
    ]
    return repo, runs, tracked, outputs


def test_each_trial_ends_as_it_should_and_the_study_continues_across_runs(tuned):
    repo, runs, *_ = tuned
    for number, found in enumerate(r["found"] for r in runs):
        assert len(found["all"]) == number + 1, "each run continued the study"
    states = [t["state"] for t in runs[-1]["found"]["all"]]
    assert states == ["complete", "pruned", "fail"], [r["result"].stdout + r["result"].stderr for r in runs]
    pruned, failed = runs[-1]["found"]["all"][1:]
    assert runs[0]["found"]["all"][0]["validations"] == 4
    assert pruned["validations"] < 3, "stopped behind the first trial, not after three validations (early stopping)"
    assert failed["reason"].startswith("model.name: 'inputs' is not a model folder"), failed["reason"]
    assert runs[-1]["result"].returncode == 0, "a failed trial does not stop the study"


def test_the_best_trial_is_an_experiment_with_its_validation_and_test_scores(tuned):
    repo, runs, *_ = tuned
    found = runs[-1]["found"]
    best = found["best"]
    assert best["experiment"] == "tune-t0000" and found["picked_on"] == "validation"
    assert found["trials"] == {"complete": 1, "pruned": 1, "fail": 1, "running": 0}
    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout)
    experiments = {exp["name"]: exp["revs"][0]["data"] for rev in shown for exp in (rev.get("experiments") or [])}
    assert set(experiments) == {"tune-t0000"}, "pruned and failed trials leave no experiment"
    data = experiments["tune-t0000"]
    assert data["params"]["params.yaml"]["data"]["finetune"]["learning_rate"] == 3e-3
    assert data["metrics"]["metrics/eval.json"]["data"]["f1_macro"] == best["test"]
    kept = json.loads(run(["git", "show", f"{ref_of(repo, 'tune-t0000')}:metrics/train/metrics.json"], repo).stdout)
    assert kept["eval"]["f1_macro"] == best["validation"]
    study = optuna.load_study(study_name="tune", storage=f"sqlite:///{repo / 'tune/optuna.db'}")
    reported = study.trials[0].intermediate_values.values()
    assert best["validation"] == max(reported), "the kept checkpoint's: the best of the trial's validations"
    assert (repo / "metrics/tune_plots/history.png").stat().st_size > 0


def ref_of(repo, experiment: str) -> str:
    refs = run(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], repo).stdout.split()
    return next(ref for ref in refs if ref.endswith(f"/{experiment}"))


def test_the_workspace_is_left_as_it_was(tuned):
    repo, runs, tracked, outputs = tuned
    # params.yaml is all the test itself changed; no output in the workspace changed.
    changed = run(["git", "status", "--porcelain", "--untracked-files=no"], repo).stdout
    assert changed.split() == ["M", "params.yaml"] and tracked == ""
    assert yaml.safe_load((repo / "params.yaml").read_text())["finetune"]["learning_rate"] == 3e-3
    assert {path: (repo / path).read_bytes() for path in WORKSPACE_OUTPUTS} == outputs
    assert not list((repo / ".dvc/tmp/exps/standalone").glob("tmp*")), "DVC's copies of the project are gone"
    assert not list((repo / "tune/trials").iterdir()), "no trial file left behind"


def test_bad_metric_is_one_line_before_any_trial(tiny_run, tmp_path):
    repo = copy_of(tiny_run[0], tmp_path / "repo")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["tune"]["metric"] = "bleu"
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = run(["python", "-m", "hfx.tune"], repo, check=False)
    assert result.returncode == 1 and result.stderr.strip().count("\n") == 0
    assert "tune.metric" in result.stderr and "bleu" in result.stderr
    assert not (repo / "tune").exists(), "no study was made"


def test_a_study_keeps_its_space(tuned):
    repo, *_ = tuned
    result = search(repo, 4, {"finetune.weight_decay": {"choices": [0.03]}})["result"]
    assert result.returncode == 1 and "tune.space.finetune.weight_decay: study 'tune' searched it" in result.stderr
    assert result.stderr.strip().count("\n") == 0


@pytest.mark.skipif(
    not (ROOT / "report/node_modules/vega").is_dir(), reason="run `npm ci --prefix report` (make test does)"
)
def test_the_report_shows_the_study_picked_on_validation(tuned, tmp_path):
    repo, *_ = tuned
    run([sys.executable, str(ROOT / "report/build.py"), str(tmp_path / "report")], repo)
    page = (tmp_path / "report/index.html").read_text()
    assert "Hyperparameter search: study tune" in page
    assert "Best: <b>tune-t0000</b>, picked on validation f1_macro" in page and "played no part" in page
    assert "Trials: 1 complete, 1 pruned, 1 failed." in page and "is not a model folder" in page
    assert (tmp_path / "report/tune_history.png").stat().st_size > 0 and 'src="tune_history.png"' in page


def test_a_new_study_under_an_old_name_is_refused_before_it_collides(tuned):
    """A new storage starts the study 'tune' again at trial 0, whose experiment the first study already made."""
    repo, *_ = tuned
    result = run(["python", "-m", "hfx.tune", "--storage", "tune/another.db"], repo, check=False)
    assert result.returncode == 1 and "experiments of an earlier study 'tune' exist" in result.stderr
    assert "tune-t0000" in result.stderr and result.stderr.strip().count("\n") == 0
