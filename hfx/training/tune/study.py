"""The Optuna study behind `hfx tune`: its storage, sampler and pruner, built from the `tune:` section.

A study lives in its storage, so an interrupted `hfx tune` continues it. The storage keeps no sampler or pruner
state, so both are rebuilt from params: the sampler before each trial, seeded by `tune.seed` and the number of
trials so far (the same seed and the same finished trials propose the same next trial); the pruner wherever a
trial reports (the finetune stage, in another process)."""

from pathlib import Path

import optuna

from hfx.training.tune.settings import SearchRange, Tune

optuna.logging.set_verbosity(optuna.logging.WARNING)  # hfx prints one line per trial itself


def storage_location(tune: Tune, root: Path) -> str:
    """`tune.storage` as another process opens it again: null, a SQLite file in `tune.folder`; a path ending
    .log, a journal file that several processes share; anything with `://`, a database URL (postgresql://...,
    for many machines). Paths are made absolute: trials run in DVC's own copies of the project."""
    target = tune.storage or str(Path(tune.folder) / "optuna.db")
    if "://" in target:
        return target
    path = (root / target).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return str(path)


def opened(location: str):
    """The Optuna storage at `storage_location`."""
    if "://" in location:
        return location
    if location.endswith(".log"):
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(location))
    return f"sqlite:///{location}"


def pruner_for(name: str) -> optuna.pruners.BasePruner:
    """median: a trial whose best validation so far is behind the median of the finished trials at the same
    evaluation stops (after one finished trial); hyperband: Optuna's successive halving; none: never."""
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner()
    return optuna.pruners.NopPruner()


def sampler_for(tune: Tune, trials_so_far: int, parallel: bool) -> optuna.samplers.BaseSampler:
    """TPE, seeded by the seed and the trials so far; with trials side by side, running ones count as a likely
    bad result (constant liar), so that two do not try the same region."""
    return optuna.samplers.TPESampler(seed=tune.seed + trials_so_far, constant_liar=parallel)


def distribution(search: SearchRange) -> optuna.distributions.BaseDistribution:
    if search.choices is not None:
        return optuna.distributions.CategoricalDistribution(search.choices)
    if search.whole_numbers:
        return optuna.distributions.IntDistribution(search.low, search.high, log=search.log, step=search.step or 1)
    return optuna.distributions.FloatDistribution(search.low, search.high, log=search.log, step=search.step)


def open_study(tune: Tune, location: str, direction: str) -> optuna.Study:
    """The study named `tune.study`, created on the first run and continued after."""
    return optuna.create_study(
        study_name=tune.study,
        storage=opened(location),
        direction=direction,
        pruner=pruner_for(tune.pruner),
        load_if_exists=True,
    )


def load_trial(study_name: str, location: str, number: int, pruner: str) -> optuna.Trial:
    """Trial `number` of a study, from another process (the finetune stage), with the study's pruner."""
    study = optuna.load_study(study_name=study_name, storage=opened(location), pruner=pruner_for(pruner))
    trial_id = next(t._trial_id for t in study.get_trials(deepcopy=False) if t.number == number)
    return optuna.trial.Trial(study, trial_id)  # Optuna's own recipe for a trial reported from elsewhere
