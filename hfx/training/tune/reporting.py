"""The finetune stage's side of a trial: when `hfx tune` started this run, each validation score goes to the
trial, and the study may stop the run (pruning) when it is behind the trials before it.

`hfx tune` writes <HFX_TRIALS>/<experiment name>.json before it starts the experiment; DVC names the experiment
in DVC_EXP_NAME. Anywhere else (`dvc repro`, a plain `dvc exp run`) there is no such file, and nothing changes.
Optuna is imported only for a trial."""

import json
import os
from pathlib import Path

from transformers import TrainerCallback

TRIALS_ENV = "HFX_TRIALS"  # the folder of trial files, absolute


def trial_file(folder: Path, experiment: str) -> Path:
    return folder / f"{experiment}.json"


def write_trial_file(folder: Path, experiment: str, link: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = trial_file(folder, experiment)
    path.write_text(json.dumps(link))
    return path


class ReportToTrial(TrainerCallback):
    """Reports `metric` at each validation (step: the validation's index: with validation once an epoch, the
    same point of training in every trial whatever its batch size) and stops training when the study prunes
    the trial."""

    def __init__(self, trial, link: dict):
        self.trial, self.link = trial, link
        self.validations, self.pruned_at = 0, None

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        value = (metrics or {}).get(f"eval_{self.link['metric']}")
        if value is None:
            return
        self.trial.report(value, step=self.validations)
        self.validations += 1
        if self.trial.should_prune():
            self.pruned_at = self.validations
            self.trial.set_user_attr("pruned_at_validation", self.pruned_at)
            control.should_training_stop = True

    def pruned_line(self) -> str:
        return (
            f"finetune: trial {self.link['number']} of study '{self.link['study']}' pruned after validation"
            f" {self.pruned_at}: its {self.link['metric']} was behind the trials before it; nothing written"
        )


def trial_of_this_run() -> ReportToTrial | None:
    """The trial this run is, if `hfx tune` started it."""
    folder, experiment = os.environ.get(TRIALS_ENV), os.environ.get("DVC_EXP_NAME")
    if not folder or not experiment or not trial_file(Path(folder), experiment).is_file():
        return None
    from hfx.training.tune.storage import load_trial

    link = json.loads(trial_file(Path(folder), experiment).read_text())
    return ReportToTrial(load_trial(link["study"], link["storage"], link["number"], link["pruner"]), link)
