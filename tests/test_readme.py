"""The README's commands work as written: cheap ones run, the others are checked against what they call.

Every line of a ```bash block is one of: a `make` target (it must exist, with the variables it is given;
`make check` runs), a `dvc` or `python -m` command (it must exist and list every option in its `--help`), a
`curl` to a route of hfx.serve (its JSON body must be a valid request), `pip install -r` of a file that
exists, or the recovery after a failed stage (run as written by tests/test_bad_inputs.py). A new kind of command fails this
test until it is taught here.
"""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, readme_recovery_command, stage_env

README = (ROOT / "README.md").read_text()


def shell_commands() -> list[str]:
    """Each command of the README's bash blocks: continuation lines joined, comments dropped, `&&` split."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README, re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            inner = re.findall(r"\$\(([^)]*)\)", line)  # `$(dvc exp list --name-only)`: a command of its own
            commands += inner
            words = shlex.split(re.sub(r"\$\([^)]*\)", "", line), comments=True)
            while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):  # `NODE_RANK=1 ...`: the environment
                words = words[1:]
            text = shlex.join(words)
            commands += [part.strip() for part in text.split(" '&&' ")] if words else []
    return commands


COMMANDS = shell_commands()


def test_the_readme_has_commands_to_check():
    assert {"make repro", "make test", "make check"} <= set(COMMANDS)
    assert any(c.startswith("dvc exp run") for c in COMMANDS)


def makefile_targets() -> set[str]:
    return set(re.findall(r"^([a-z][\w-]*):", (ROOT / "Makefile").read_text(), re.MULTILINE))


def dvc_help(subcommand: list[str]) -> str:
    result = subprocess.run([Path(sys.executable).parent / "dvc", *subcommand, "--help"], capture_output=True,
                            text=True)
    assert result.returncode == 0, f"dvc {' '.join(subcommand)}: no such command ({result.stderr.strip()[:200]})"
    return result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_is_valid(command):
    words = shlex.split(command)
    if words[0] == "make":
        assert words[1] in makefile_targets(), f"README: make {words[1]}: no such target"
        variables = {w.split("=", 1)[0] for w in words[2:] if "=" in w}
        makefile = (ROOT / "Makefile").read_text()
        assert all(f"$({name})" in makefile for name in variables), f"README: {command}: unknown variable"
    elif words[0] == "dvc":
        subcommand = [w for w in words[1:3] if re.fullmatch(r"[a-z]+", w)]
        subcommand = subcommand[:2] if subcommand[0] in {"exp", "queue", "remote", "plots", "metrics", "params"} else subcommand[:1]
        help_text = dvc_help(subcommand)
        for option in (w.split("=", 1)[0] for w in words[1:] if w.startswith("-")):
            assert re.search(rf"(^|[\s,\[]){re.escape(option)}\b", help_text), f"README: {command}: dvc has no {option}"
    elif words[:2] == ["python", "-m"] and words[2].startswith("stages."):
        # A stage takes no arguments (it reads params.yaml): running it with --help would run the stage.
        assert len(words) == 3 and (ROOT / (words[2].replace(".", "/") + ".py")).is_file(), f"README: {command}"
    elif words[:2] == ["python", "-m"]:
        help_text = subprocess.run([sys.executable, "-m", words[2], "--help"], cwd=ROOT, capture_output=True,
                                   text=True, env=stage_env())
        assert help_text.returncode == 0, f"README: {command}: {help_text.stderr.strip()[-300:]}"
        for option in (w.split("=", 1)[0] for w in words[3:] if w.startswith("--")):
            assert option in help_text.stdout, f"README: {command}: {words[2]} has no {option}"
    elif words[0] == "curl":
        from hfx.serve import ROUTES, PredictRequest

        url = next(w for w in words if "localhost:" in w or "127.0.0.1:" in w)
        assert "/" + url.split("/", 1)[1] in ROUTES, f"README: {command}: no such route"
        if "-d" in words:
            PredictRequest.model_validate_json(words[words.index("-d") + 1])
    elif words[:3] == ["pip", "install", "-r"]:
        assert (ROOT / words[3]).is_file(), f"README: {command}: no {words[3]}"
    elif words[:2] == ["git", "checkout"]:
        assert command in readme_recovery_command(), "only the recovery command checks out files"
    else:
        pytest.fail(f"README command this test does not know how to check: {command}")


def test_make_check_runs_as_written():
    result = subprocess.run(["make", "--no-print-directory", "check"], cwd=ROOT, capture_output=True, text=True,
                            env=stage_env())
    assert result.returncode == 0, result.stderr[-2000:]
    assert "params.yaml: ok" in result.stdout
