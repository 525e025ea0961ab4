"""The `hfx` command (`pip install ".[serve]"` installs it): each subcommand is its module's command."""

import subprocess
import sys

from tests.project import ROOT, hfx, stage_env


def test_predict_through_the_command_answers_as_the_module(exported_model):
    by_command = hfx("predict", "--model", str(exported_model), "--format", "fp32", "a great film")
    by_module = subprocess.run(
        [sys.executable, "-m", "hfx.predict", "--model", str(exported_model), "--format", "fp32", "a great film"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=stage_env(),
        timeout=120,
    )
    assert by_command.returncode == 0, by_command.stderr
    assert by_command.stdout == by_module.stdout
