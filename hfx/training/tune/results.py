"""What a study found, for people and for `make report`: tune.json (the best trial, each trial's scores and
state, the counts, the wall time) and Optuna's own plots of the optimisation history and of what mattered."""

import math
import warnings
from collections import Counter
from pathlib import Path

import optuna
from optuna.trial import TrialState

from hfx.training.artifacts import atomic_dir, write_json

# Optuna's matplotlib plots are marked experimental since 2.2; the warning would tell users nothing they can act on.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def summary(study: optuna.Study, metric: str, wall_s: float) -> dict:
    trials = study.get_trials(deepcopy=False)
    counts = Counter(t.state.name.lower() for t in trials)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    best = study.best_trial if complete else None
    return {
        "study": study.study_name,
        "metric": metric,
        "direction": study.direction.name.lower(),
        "picked_on": "validation",  # never test: the test score is shown beside it, not used to choose
        "best": best
        and {
            "experiment": best.user_attrs.get("experiment"),
            "trial": best.number,
            "params": best.params,
            "validation": best.value,
            "test": best.user_attrs.get("test"),
        },
        "trials": {state: counts.get(state, 0) for state in ("complete", "pruned", "fail", "running")},
        "wall_s": round(wall_s, 1),
        "all": [
            {
                "trial": t.number,
                "experiment": t.user_attrs.get("experiment"),
                "state": t.state.name.lower(),
                "params": t.params,
                "validation": t.value,
                "test": t.user_attrs.get("test"),
                "validations": len(t.intermediate_values),
                "reason": t.user_attrs.get("reason"),
                "seconds": round(t.duration.total_seconds(), 1) if t.duration else None,
            }
            for t in trials
        ],
    }


def write_results(study: optuna.Study, metric: str, wall_s: float, path: Path, seed: int) -> dict:
    """tune.json at `path`, and <path stem>_plots/ beside it (history.png; importances.png and .json once two
    complete trials scored differently)."""
    found = summary(study, metric, wall_s)
    write_json(path, found)
    with atomic_dir(path.with_name(f"{path.stem}_plots")) as plots:
        save(
            optuna.visualization.matplotlib.plot_optimization_history(study, target_name=metric), plots / "history.png"
        )
        scores = {t["validation"] for t in found["all"] if t["state"] == "complete"}
        if len(scores) >= 2:  # what mattered needs trials that scored differently
            evaluator = optuna.importance.FanovaImportanceEvaluator(
                seed=seed
            )  # seeded: the same trials, the same figures
            importances = optuna.importance.get_param_importances(study, evaluator=evaluator)
            write_json(plots / "importances.json", {k: v for k, v in importances.items() if math.isfinite(v)})
            axes = optuna.visualization.matplotlib.plot_param_importances(
                study, evaluator=evaluator, target_name=metric
            )
            save(axes, plots / "importances.png")
    return found


def save(axes, path: Path) -> None:
    import matplotlib.pyplot as plt

    figure = axes.get_figure()
    figure.set_size_inches(7, 4)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
