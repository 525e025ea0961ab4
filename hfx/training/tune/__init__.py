"""`hfx tune`: a hyperparameter search whose trials are DVC experiments (docs/tuning.md).

settings.py is the `tune:` section's schema; study.py opens the Optuna study; trials.py runs one trial as
`dvc exp run`; reporting.py is the finetune stage's side of a trial (its validation scores, and pruning);
results.py writes what a study found."""
