"""What `hfx tune` and each trial's finetune stage (another process) both open: the study's storage and its
pruner. The finetune stage depends on this module, not on the rest of hfx/training/tune, so that changes to how
the search runs leave the pipeline's runs as they are."""

import optuna

optuna.logging.set_verbosity(optuna.logging.WARNING)  # hfx prints one line per trial itself


def opened(location: str):
    """The Optuna storage at a location `hfx tune` resolved (study.storage_location): a database URL, a journal
    file (.log) or a SQLite file."""
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


def load_trial(study_name: str, location: str, number: int, pruner: str) -> optuna.Trial:
    """Trial `number` of a study, from another process (the finetune stage), with the study's pruner."""
    study = optuna.load_study(study_name=study_name, storage=opened(location), pruner=pruner_for(pruner))
    trial_id = next(t._trial_id for t in study.get_trials(deepcopy=False) if t.number == number)
    return optuna.trial.Trial(study, trial_id)  # Optuna's own recipe for a trial reported from elsewhere
