"""Training curves through dvclive: the params that matter, the optimizer step as x, and whole curves after a
resume (metrics/train is what `dvc plots` and the model card read)."""

from dvclive import Live
from transformers import TrainerCallback
from transformers.integrations import DVCLiveCallback


class CuratedDVCLiveCallback(DVCLiveCallback):
    """dvclive logging with the params that matter (not ~100 TrainingArguments) and the optimizer step as x.

    A resumed run logs the whole run's curves, not only the steps after the resume: `dvc repro` deletes
    metrics/train before the stage runs, and the checkpoint's log history holds every row logged before it.
    """

    def __init__(self, live: Live, params: dict):
        super().__init__(live=live)
        self.params = params

    def setup(self, args, state, model):
        self._initialized = True
        if state.is_world_process_zero:
            self.live.log_params(self.params)

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        super().on_train_begin(args, state, control, model=model, **kwargs)
        for entry in state.log_history:  # empty unless resumed
            self._log(args, state, control, entry)

    def on_log(self, args, state, control, model=None, logs=None, **kwargs):
        whole_run = whole_run_train_loss(state.log_history) if "train_loss" in logs else None
        if whole_run is not None:
            logs = {**logs, "train_loss": whole_run}
        self._log(args, state, control, {**logs, "step": state.global_step})

    def _log(self, args, state, control, entry: dict):
        self.live.step = entry["step"]
        super().on_log(args, state, control, logs={k: v for k, v in entry.items() if k != "step"})

    def on_train_end(self, args, state, control, **kwargs):
        # metrics.json reports the kept (best) checkpoint's validation scores; the last evaluation may be worse.
        kept = [log for log in state.log_history if "eval_loss" in log and log["step"] == state.best_global_step]
        for name, value in kept[-1].items() if kept else ():
            if name.startswith("eval_"):
                self.live.log_metric(f"eval/{name.removeprefix('eval_')}", value, plot=False)
        super().on_train_end(args, state, control, **kwargs)


def whole_run_train_loss(log_history: list[dict]) -> float:
    """The mean training loss over every step of the run, from the logged windows. The Trainer's own
    `train_loss` covers only the steps of its `train()` call: after a resume, the part after the checkpoint."""
    total, steps, previous = 0.0, 0, 0
    for entry in log_history:
        if "loss" in entry:
            total += entry["loss"] * (entry["step"] - previous)
            steps, previous = steps + entry["step"] - previous, entry["step"]
    return total / steps if steps else None


class LogAtCheckpoints(TrainerCallback):
    """A training-loss point at every checkpoint too: a resumed run's first window starts at its checkpoint, so
    windows that end there give both runs the same points. On every process, not only the one that writes the
    log: logging gathers the loss across processes, and a gather only some of them join hangs or aborts."""

    def on_step_end(self, args, state, control, **kwargs):
        control.should_log |= control.should_save

    def on_epoch_end(self, args, state, control, **kwargs):
        control.should_log |= control.should_save
