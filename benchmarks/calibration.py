"""How much the temperature helps, and how sure that is: `make bench-calibration` (after `dvc repro`).

Scores the project's models/finetuned on its validation and test splits (data/processed) as evaluate does,
fits the temperature on validation, and reports the ECE before and after it at 10, 15 and 20 bins on both
splits, the log loss, and a bootstrap of the test split (1,000 resamples) for the change in test ECE at 15
bins: a 95% interval that holds 0 means the test split is too small to tell. Run it in any project whose
pipeline has run (`cd` there, PYTHONPATH=<this repo>); results go into benchmarks/calibration.json of this
repo, under the project's `data.source`.
"""

import json
from pathlib import Path

import numpy as np
from datasets import load_from_disk

from hfx.training.adapters import get_adapter
from hfx.training.calibration import expected_calibration_error, fit_temperature, nll, probabilities, scored
from hfx.training.params import load_params
from stages.evaluate import predict

RESULTS = Path(__file__).resolve().parent / "calibration.json"
RESAMPLES = 1000


def main() -> None:
    params = load_params()
    splits = load_from_disk(params.paths.processed)
    task = get_adapter(params.task)
    (test_logits, test_labels, _), (val_logits, val_labels, _) = predict(
        params.paths.finetuned, [splits["test"], splits["validation"]], task, params.evaluate.batch_size
    )
    test, validation = scored(test_logits, test_labels), scored(val_logits, val_labels)
    temperature, _ = fit_temperature(*validation)
    result = {"temperature": round(temperature, 4), "rows": {"validation": len(validation[1]), "test": len(test[1])}}
    for name, (logits, labels) in (("validation", validation), ("test", test)):
        result[name] = {
            "log_loss": [round(nll(logits, labels, t), 4) for t in (1.0, temperature)],
            **{
                f"ece_{bins}_bins": [
                    round(expected_calibration_error(probabilities(logits, t), labels, bins), 4)
                    for t in (1.0, temperature)
                ]
                for bins in (10, 15, 20)
            },
        }
    rng = np.random.default_rng(0)
    logits, labels = test
    changes = []
    for _ in range(RESAMPLES):
        rows = rng.integers(0, len(labels), len(labels))
        changes.append(
            expected_calibration_error(probabilities(logits[rows], temperature), labels[rows])
            - expected_calibration_error(probabilities(logits[rows]), labels[rows])
        )
    result["test_ece_change_95"] = [round(float(q), 4) for q in np.percentile(changes, [2.5, 97.5])]

    print(f"{params.data.source}: temperature {result['temperature']} (before -> after)")
    for name in ("validation", "test"):
        print(
            f"  {name:10} log loss {result[name]['log_loss']}, ECE at 10/15/20 bins"
            f" {result[name]['ece_10_bins']} {result[name]['ece_15_bins']} {result[name]['ece_20_bins']}"
        )
    print(f"  change in test ECE (15 bins), 95% bootstrap interval: {result['test_ece_change_95']}")
    saved = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    RESULTS.write_text(json.dumps({**saved, params.data.source: result}, indent=2) + "\n")


if __name__ == "__main__":
    main()
