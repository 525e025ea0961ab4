"""`hfx tune`: search params.yaml's `tune.space` with Optuna, each trial a DVC experiment.

    hfx tune --trials 20          # the space, metric, pruner and storage are in params.yaml's `tune:` section
    dvc exp show --only-changed   # every trial that completed is an experiment, named <study>-tNNNN
    dvc exp apply <best>          # or: hfx tune --apply-best

Run from the project root (a git repo that is a DVC project). The study is picked on validation, never on test;
an interrupted `hfx tune` continues the same study when run again. Needs the training install (optuna, dvc)."""

import argparse
import subprocess
import sys
import time
from pathlib import Path

from hfx.training.params import PARAMS_FILE, ParamsError, StageError, load_params

LOWER_IS_BETTER = ("loss", "rmse")  # validation scores where less is better (tune.direction: auto)


def parse_args(argv, prog: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, help="trials in all, finished ones included (default: tune.trials)")
    parser.add_argument("--jobs", type=int, default=1, help="trials at once, through DVC's experiment queue")
    parser.add_argument("--storage", help="the study's storage (default: tune.storage)")
    parser.add_argument("--apply-best", action="store_true", help="apply the best trial to the workspace at the end")
    return parser.parse_args(argv)


def checked_settings(args: argparse.Namespace, root: Path):
    """params.yaml's tune section with the command line's overrides, the validation metric and its direction:
    everything that could be wrong, found before a trial runs."""
    params = load_params(root / PARAMS_FILE)
    if params.tune is None:
        raise ParamsError(f"{PARAMS_FILE} has no tune: section; docs/tuning.md shows one")
    overrides = {k: v for k, v in vars(args).items() if k in ("trials", "storage") and v is not None}
    tune = params.tune.model_copy(update=overrides)
    if tune.trials < 1 or args.jobs < 1:
        raise ParamsError(f"--trials {tune.trials} --jobs {args.jobs}: give 1 or more of each")
    storage = tune.storage or "sqlite"
    sqlite = storage.startswith("sqlite") or ("://" not in storage and not storage.endswith(".log"))
    if args.jobs > 1 and sqlite:
        raise ParamsError(
            f"--jobs {args.jobs}: SQLite takes one writer at a time; for trials side by side use a journal file"
            f" (--storage {tune.folder}/optuna.log) or a database server (postgresql://...); a new storage"
            " starts a new study, so give it a new tune.study name too"
        )
    if params.finetune.processes * params.finetune.nodes > 1:
        raise ParamsError("hfx tune runs each trial on one process: set finetune.processes and finetune.nodes to 1")
    from hfx.training.adapters import get_adapter
    from hfx.training.trainer_setup import best_metric

    task = get_adapter(params.task)
    metric = best_metric(params.finetune, task) if tune.metric == "auto" else tune.metric
    if metric not in (*task.validation_metrics, "loss"):
        raise ParamsError(
            f"tune.metric: {params.task} validates with {', '.join(task.validation_metrics)} and loss, not {metric}"
        )
    direction = (
        tune.direction if tune.direction != "auto" else ("minimize" if metric in LOWER_IS_BETTER else "maximize")
    )
    ignored = subprocess.run(["git", "check-ignore", "-q", f"{tune.folder}/x"], cwd=root).returncode == 0
    if not ignored:
        raise ParamsError(f"tune.folder: git does not ignore {tune.folder}/; add it to .gitignore (trials write there)")
    return params, tune, metric, direction


def tune(args: argparse.Namespace, root: Path) -> dict:
    params, settings, metric, direction = checked_settings(args, root)
    from hfx.training.tune.loop import run_study
    from hfx.training.tune.results import write_results
    from hfx.training.tune.study import distribution, open_study, storage_location
    from hfx.training.tune.trials import Search, fail_interrupted

    location = storage_location(settings, root)
    study = open_study(settings, location, direction)
    if study.direction.name.lower() != direction:
        raise ParamsError(
            f"study '{settings.study}' in {shown(location)} was made to {study.direction.name.lower()};"
            " set tune.study to a new name to search the other way"
        )
    space = {key: distribution(search) for key, search in settings.space.items()}
    check_same_space(study, space)
    check_names_free(study, root)
    search = Search(
        root=root,
        study=study,
        storage=location,
        pruner=settings.pruner,
        metric=metric,
        until=settings.until,
        folder=(root / settings.folder).resolve(),
        validation_file=f"{params.paths.train_logs}/metrics.json",
        test_file=params.paths.eval_metrics,
        jobs=args.jobs,
    )
    stale = fail_interrupted(search)
    done = len(study.get_trials(deepcopy=False))
    print(
        f"tune: study '{settings.study}' ({shown(location)}): {done} trials so far"
        f"{f', {stale} interrupted' if stale else ''};"
        f" {max(settings.trials - done, 0)} to run, {direction} validation {metric}"
    )
    started = time.monotonic()
    run_study(search, settings, space, lambda frozen: print(trial_line(frozen, metric), flush=True))
    found = write_results(study, metric, time.monotonic() - started, root / settings.results, settings.seed)
    best = found["best"]
    if best is None:
        raise StageError(f"no trial of study '{settings.study}' completed; their logs are in {settings.folder}/logs")
    test = "" if best["test"] is None else f", test {best['test']:.4f}"
    print(
        f"tune: best {best['experiment']}: validation {metric} {best['validation']:.4f}{test}, picked on validation;"
        f" {settings.results}"
    )
    if args.apply_best:
        subprocess.run(["dvc", "exp", "apply", best["experiment"]], cwd=root, check=True)
        print(f"tune: {best['experiment']} applied to the workspace; `dvc repro` completes its stages")
    return found


def shown(location: str) -> str:
    """A storage as printed: a database URL without its password."""
    if "://" not in location:
        return location
    from sqlalchemy.engine import make_url

    return make_url(location).render_as_string(hide_password=True)


def check_names_free(study, root: Path) -> None:
    """The experiments the next trials will be (<study>-tNNNN) do not exist yet on this commit: a study started
    again under an old name (a new storage, or tune/ deleted) would collide with its predecessor's."""
    from hfx.training.tune.trials import experiment_names

    taken = [n for n in experiment_names(root, study.study_name) if n[1] >= len(study.get_trials(deepcopy=False))]
    if taken:
        raise ParamsError(
            f"tune.study: experiments of an earlier study '{study.study_name}' exist on this commit"
            f" ({', '.join(name for name, _ in taken[:3])}); set tune.study to a new name, or remove them"
            f" (dvc exp remove {taken[0][0]} ...)"
        )


def check_same_space(study, space: dict) -> None:
    """A study searches each param over one space: changing a param's choices, or a range into choices, needs a
    new study (tune.study)."""
    import optuna

    for trial in study.get_trials(deepcopy=False):
        for key, before in trial.distributions.items():
            if key in space:
                try:
                    optuna.distributions.check_distribution_compatibility(before, space[key])
                except ValueError:
                    raise ParamsError(
                        f"tune.space.{key}: study '{study.study_name}' searched it over {before}; a study keeps its"
                        " space: set tune.study to a new name to search it otherwise"
                    ) from None


def trial_line(frozen, metric: str) -> str:
    params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in frozen.params.items())
    state = frozen.state.name.lower()
    if state == "complete":
        outcome = f"validation {metric} {frozen.value:.4f}"
    elif state == "pruned":
        outcome = f"pruned after validation {frozen.user_attrs.get('pruned_at_validation')}"
    else:
        outcome = f"failed: {frozen.user_attrs.get('reason')}"
    return f"tune: {frozen.user_attrs.get('experiment')} ({params}): {outcome}"


def main(argv=None, prog: str = "python -m hfx.tune") -> None:
    try:
        tune(parse_args(argv, prog), Path.cwd())
    except StageError as exc:
        raise SystemExit(f"error: {exc}") from None
    except KeyboardInterrupt:
        print("tune: stopped; the trial that was running is recorded as failed. Run again to go on.", file=sys.stderr)
        raise SystemExit(130) from None


if __name__ == "__main__":
    main(sys.argv[1:])
