"""The study's loop: ask for a trial, run it as an experiment, tell how it ended, until `tune.trials` trials
exist or `tune.timeout_s` has passed. One at a time, or `search.jobs` at once through DVC's queue."""

import time
from collections.abc import Callable

import optuna
from optuna.trial import TrialState

from hfx.training.tune.reporting import trial_file
from hfx.training.tune.settings import Tune
from hfx.training.tune.study import sampler_for
from hfx.training.tune.trials import (
    Search,
    experiment_name,
    queue_states,
    queue_trial,
    queued_trial_told,
    run_trial,
    runner,
    stop_queued,
)

POLL_S = 2.0  # how often the queue's states are read


def run_study(search: Search, settings: Tune, space: dict, report: Callable[[optuna.trial.FrozenTrial], None]):
    """Runs trials until the study has `settings.trials`; `report` is told each one's end."""
    started, running, seen = time.monotonic(), {}, set()  # experiment name -> trial, while it runs; queued ones seen
    try:
        while True:
            while len(running) < search.jobs and may_start(search.study, settings, started):
                trial = asked(search, settings, space)
                if search.jobs == 1:
                    running[None] = trial  # for the except below, while it runs
                    report(run_trial(search, trial))
                    running.clear()
                else:
                    running[queue_trial(search, trial)] = trial
            if not running:
                return
            time.sleep(POLL_S)
            states = queue_states(search.root)
            for name in list(running):
                if name in states and states[name] not in ("Success", "Failed"):
                    seen.add(name)
                elif name in states or name in seen:  # ended, or gone from the queue (removed, a dead worker)
                    report(queued_trial_told(search, running.pop(name), name, states.get(name, "Failed")))
    except BaseException:  # Ctrl-C, or anything unforeseen: trials this run started can never finish
        stop_queued(search.root, [name for name in running if name])
        for trial in running.values():
            name = experiment_name(search.study.study_name, trial.number)
            trial_file(search.trials_folder, name).unlink(missing_ok=True)
            if trial.number in unfinished(search.study):
                trial.set_user_attr("reason", "interrupted: hfx tune stopped during it")
                search.study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
        raise


def unfinished(study: optuna.Study) -> set[int]:
    return {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}


def may_start(study: optuna.Study, settings: Tune, started: float) -> bool:
    if settings.timeout_s and time.monotonic() - started > settings.timeout_s:
        return False
    return len(study.get_trials(deepcopy=False)) < settings.trials


def asked(search: Search, settings: Tune, space: dict) -> optuna.Trial:
    """The next trial, from a sampler seeded by tune.seed and the trials so far."""
    so_far = len(search.study.get_trials(deepcopy=False))
    search.study.sampler = sampler_for(settings, so_far)
    trial = search.study.ask(space)
    trial.set_user_attr("runner", runner())
    return trial
