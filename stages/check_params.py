"""A guard before the five stages: reads the whole params.yaml and fails in one line per problem.

Reads `params.yaml` (every key, against hfx/training/params.py). Writes nothing, so no stage reruns because of it.
"""

from hfx.training.params import PARAMS_FILE, load_params, run_stage


def main() -> None:
    load_params()
    print(f"{PARAMS_FILE}: ok")


if __name__ == "__main__":
    run_stage(main)
