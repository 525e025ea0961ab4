"""The Optuna study behind `hfx tune`: where it lives, its sampler and its search space, from the `tune:` section.

A study lives in its storage, so an interrupted `hfx tune` continues it. The storage keeps no sampler or pruner
state, so both are rebuilt from params: the sampler before each trial, seeded by `tune.seed` and the number of
trials so far (the same seed and the same finished trials propose the same next trial); the pruner wherever a
trial reports (the finetune stage, in another process)."""

import time
from pathlib import Path

import optuna

from hfx.training.tune.settings import SearchRange, Tune
from hfx.training.tune.storage import opened, pruner_for


def storage_location(tune: Tune, root: Path) -> str:
    """`tune.storage` as another process opens it again: null, a SQLite file in `tune.folder`; a path ending
    .log, a journal file that several processes share; anything with `://`, a database URL (postgresql://...,
    for many machines). Paths are made absolute: trials run in DVC's own copies of the project."""
    target = tune.storage or str(Path(tune.folder) / "optuna.db")
    if target.startswith("sqlite:///") and not target.startswith("sqlite:////"):  # a relative SQLite file
        target = target.removeprefix("sqlite:///")
    if "://" in target:
        return target
    path = (root / target).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return str(path)


def sampler_for(tune: Tune, trials_so_far: int) -> optuna.samplers.BaseSampler:
    """TPE, seeded by the seed and the trials so far. Trials running beside it (--jobs, other machines) count as
    a likely bad result (constant liar), so that two do not try the same region; alone, that changes nothing."""
    return optuna.samplers.TPESampler(seed=tune.seed + trials_so_far, constant_liar=True)


def distribution(search: SearchRange) -> optuna.distributions.BaseDistribution:
    if search.choices is not None:
        return optuna.distributions.CategoricalDistribution(search.choices)
    if search.whole_numbers:
        return optuna.distributions.IntDistribution(search.low, search.high, log=search.log, step=search.step or 1)
    return optuna.distributions.FloatDistribution(search.low, search.high, log=search.log, step=search.step)


def open_study(tune: Tune, location: str, direction: str) -> optuna.Study:
    """The study named `tune.study`, created on the first run and continued after. Machines that start on a new
    database at the same moment race to create its tables: the losers try again."""
    from sqlalchemy.exc import SQLAlchemyError

    for attempt in range(3):
        try:
            return created(tune, location, direction)
        except SQLAlchemyError:
            if attempt == 2:
                raise
            time.sleep(1 + attempt)


def created(tune: Tune, location: str, direction: str) -> optuna.Study:
    return optuna.create_study(
        study_name=tune.study,
        storage=opened(location),
        direction=direction,
        pruner=pruner_for(tune.pruner),
        load_if_exists=True,
    )
