"""The study's loop: ask for a trial, run it as an experiment, tell how it ended, until `tune.trials` trials
exist or `tune.timeout_s` has passed. One at a time, or `search.jobs` at once through DVC's queue."""

import time
from collections.abc import Callable

import optuna
from optuna.trial import TrialState

from hfx.training.tune.settings import Tune
from hfx.training.tune.study import sampler_for
from hfx.training.tune.trials import Search, queue_states, queue_trial, queued_trial_told, run_trial, runner

POLL_S = 2.0  # how often the queue's states are read


def run_study(search: Search, settings: Tune, space: dict, report: Callable[[optuna.trial.FrozenTrial], None]):
    """Runs trials until the study has `settings.trials`; `report` is told each one's end."""
    started, running = time.monotonic(), {}  # experiment name -> trial, while it runs in the queue
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
            for name in [name for name in running if states.get(name) in ("Success", "Failed")]:
                report(queued_trial_told(search, running.pop(name), name, states[name]))
    except BaseException:  # Ctrl-C, or anything unforeseen: trials this run started can never finish
        for trial in running.values():
            trial.set_user_attr("reason", "interrupted: hfx tune stopped during it")
            search.study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
        raise


def may_start(study: optuna.Study, settings: Tune, started: float) -> bool:
    if settings.timeout_s and time.monotonic() - started > settings.timeout_s:
        return False
    return len(study.get_trials(deepcopy=False)) < settings.trials


def asked(search: Search, settings: Tune, space: dict) -> optuna.Trial:
    """The next trial, from a sampler seeded by tune.seed and the trials so far; trials running beside it count
    as a likely bad result (constant liar), so that two do not try the same region."""
    so_far = len(search.study.get_trials(deepcopy=False))
    search.study.sampler = sampler_for(settings, so_far, parallel=search.jobs > 1)
    trial = search.study.ask(space)
    trial.set_user_attr("runner", runner())
    return trial
