"""The `hfx` command (`pip install ".[serve]"` installs it): each subcommand is its module's command."""

import subprocess
import sys

import pytest

from tests.conftest import ROOT, stage_env


def hfx(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hfx.cli", *args], cwd=ROOT, capture_output=True, text=True, env=stage_env(), timeout=120
    )


@pytest.mark.parametrize("command", ["predict", "serve"])
def test_each_subcommand_takes_its_modules_options(command):
    result = hfx(command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: hfx {command} ")
    assert "--model" in result.stdout and "--format" in result.stdout


def test_the_command_lists_its_subcommands_and_refuses_others_in_one_line():
    listed = hfx("--help")
    assert listed.returncode == 0 and "predict" in listed.stdout and "serve" in listed.stdout
    unknown = hfx("train")
    assert unknown.returncode == 2 and "'train'" in unknown.stderr and "predict" in unknown.stderr


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
