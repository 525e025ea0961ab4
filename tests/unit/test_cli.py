"""The `hfx` command (`pip install ".[serve]"` installs it): each subcommand is its module's command."""

import pytest

from tests.project import hfx


@pytest.mark.parametrize("command", ["predict", "serve"])
def test_each_subcommand_takes_its_modules_options(command):
    result = hfx(command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: hfx {command} ")
    assert "--model" in result.stdout and "--format" in result.stdout


def test_a_bad_input_is_one_line_and_exit_code_1_through_the_command_too(tmp_path):
    for command in (["predict", "--model", str(tmp_path / "missing"), "a text"], ["push", "--repo", "no-owner"]):
        result = hfx(*command)
        assert result.returncode == 1 and result.stdout == ""
        assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("error: "), result.stderr


def test_the_command_lists_its_subcommands_and_refuses_others_in_one_line():
    listed = hfx("--help")
    assert listed.returncode == 0 and all(command in listed.stdout for command in ("predict", "serve", "push"))
    unknown = hfx("train")
    assert unknown.returncode == 2 and "'train'" in unknown.stderr and "predict" in unknown.stderr
