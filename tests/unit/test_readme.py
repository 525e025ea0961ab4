"""The commands of the README and of docs/*.md work as written: cheap ones run, the others are checked against
what they call.

Every line of a ```bash block is one of: a `make` target (it must exist, with the variables it is given;
`make check` runs), a `dvc` or `python -m` command (it must exist and list every option in its `--help`), a
`curl` to a route of hfx.serve (its JSON body must be a valid request), an `hfx` or `gto` subcommand (it
must exist and list every option), `git push origin` of main or tags, `openssl rand -hex 32`, `pip install
-r` of a file that exists, or the recovery after a failed stage (run as written by tests/pipeline/test_bad_inputs.py).
A new kind of command fails this test until it is taught here.
"""

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.project import ROOT, readme_recovery_command, stage_env

DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def shell_commands(text: str) -> list[str]:
    """Each command of a document's bash blocks: continuation lines joined, comments dropped, `&&` split."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            inner = re.findall(r"\$\(([^)]*)\)", line)  # `$(dvc exp list --name-only)`: a command of its own
            commands += inner
            words = shlex.split(re.sub(r"\$\([^)]*\)", "", line), comments=True)
            while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):  # `NODE_RANK=1 ...`: the environment
                words = words[1:]
            text = shlex.join(words)
            commands += [part.strip() for part in text.split(" '&&' ")] if words else []
    return commands


COMMANDS = {path.relative_to(ROOT).as_posix(): shell_commands(path.read_text()) for path in DOCUMENTS}


def test_the_readme_has_commands_to_check():
    assert {"make repro", "make test"} <= set(COMMANDS["README.md"])
    assert any(c.startswith("dvc exp run") for c in COMMANDS["README.md"])
    assert all(COMMANDS[f"docs/{page}.md"] for page in ("serving", "data", "tasks", "scaling", "sharing"))


def makefile_targets() -> set[str]:
    return set(re.findall(r"^([a-z][\w-]*):", (ROOT / "Makefile").read_text(), re.MULTILINE))


def dvc_help(subcommand: list[str]) -> str:
    result = subprocess.run(
        [Path(sys.executable).parent / "dvc", *subcommand, "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0, f"dvc {' '.join(subcommand)}: no such command ({result.stderr.strip()[:200]})"
    return result.stdout


@pytest.mark.parametrize("document, command", [(doc, c) for doc, commands in COMMANDS.items() for c in commands])
def test_documented_command_is_valid(document, command):
    words = shlex.split(command)
    if words[0] == "make":
        assert words[1] in makefile_targets(), f"{document}: make {words[1]}: no such target"
        variables = {w.split("=", 1)[0] for w in words[2:] if "=" in w}
        makefile = (ROOT / "Makefile").read_text()
        assert all(f"$({name})" in makefile for name in variables), f"{document}: {command}: unknown variable"
    elif words[0] == "dvc":
        subcommand = [w for w in words[1:3] if re.fullmatch(r"[a-z]+", w)]
        subcommand = (
            subcommand[:2]
            if subcommand[0] in {"exp", "queue", "remote", "plots", "metrics", "params", "artifacts"}
            else subcommand[:1]
        )
        help_text = dvc_help(subcommand)
        for option in (w.split("=", 1)[0] for w in words[1:] if w.startswith("-")):
            assert re.search(rf"(^|[\s,\[]){re.escape(option)}\b", help_text), (
                f"{document}: {command}: dvc has no {option}"
            )
    elif words[:2] == ["python", "-m"] and words[2].startswith("stages."):
        # A stage takes no arguments (it reads params.yaml): running it with --help would run the stage.
        assert len(words) == 3 and (ROOT / (words[2].replace(".", "/") + ".py")).is_file(), f"{document}: {command}"
    elif words[:2] == ["python", "-m"]:
        help_text = subprocess.run(
            [sys.executable, "-m", words[2], "--help"], cwd=ROOT, capture_output=True, text=True, env=stage_env()
        )
        assert help_text.returncode == 0, f"{document}: {command}: {help_text.stderr.strip()[-300:]}"
        for option in (w.split("=", 1)[0] for w in words[3:] if w.startswith("--")):
            assert option in help_text.stdout, f"{document}: {command}: {words[2]} has no {option}"
    elif words[0] == "curl":
        from hfx.serving.requests import PredictRequest
        from hfx.serving.routes import ROUTES

        url = next(w for w in words if "localhost:" in w or "127.0.0.1:" in w)
        templates = [re.sub(r"\{\w+\}", "[^/]+", route) for route in ROUTES]  # /models/{name}/predict
        path = "/" + url.split("/", 1)[1]
        assert any(re.fullmatch(t, path) for t in templates), f"{document}: {command}: no such route"
        if "-d" in words:
            PredictRequest.model_validate_json(words[words.index("-d") + 1])
    elif words[0] == "hfx":  # the installed command: its subcommands are modules
        from hfx.cli import COMMANDS

        assert words[1] in COMMANDS, f"{document}: {command}: hfx has no {words[1]}"
        help_text = subprocess.run(
            [sys.executable, "-m", COMMANDS[words[1]][0], "--help"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env=stage_env(),
        ).stdout
        for option in (w.split("=", 1)[0] for w in words[2:] if w.startswith("--")):
            assert option in help_text, f"{document}: {command}: hfx {words[1]} has no {option}"
    elif words[:2] == ["pip", "install"] and words[2].startswith(".["):  # an extra of pyproject.toml
        import tomllib

        project = tomllib.loads((ROOT / "pyproject.toml").read_text())
        extras = project["tool"]["setuptools"]["dynamic"]["optional-dependencies"]
        assert words[2][2:-1] in extras, f"{document}: {command}: no such extra"
    elif words[:3] == ["pip", "install", "-r"]:
        assert (ROOT / words[3]).is_file(), f"{document}: {command}: no {words[3]}"
    elif words[0] == "gto":  # the model registry's versions and stages
        help_text = subprocess.run(
            [Path(sys.executable).parent / "gto", words[1], "--help"], capture_output=True, text=True
        )
        assert help_text.returncode == 0, f"{document}: {command}: gto has no {words[1]}"
        for option in (w for w in words[2:] if w.startswith("--")):
            assert option in help_text.stdout, f"{document}: {command}: gto {words[1]} has no {option}"
    elif words[:2] == ["openssl", "rand"]:  # a key made on the spot
        assert words[2:] == ["-hex", "32"], f"{document}: {command}"
    elif words[:3] == ["git", "push", "origin"]:
        assert set(words[3:]) <= {"--tags", "main"}, f"{document}: {command}: pushes what the docs never explain"
    elif words[:2] == ["git", "checkout"]:
        assert command in readme_recovery_command(), f"{document}: only the recovery command checks out files"
    else:
        pytest.fail(f"{document}: a command this test does not know how to check: {command}")


def test_make_check_runs_as_written():
    result = subprocess.run(
        ["make", "--no-print-directory", "check"], cwd=ROOT, capture_output=True, text=True, env=stage_env()
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "params.yaml: ok" in result.stdout


README = " ".join((ROOT / "README.md").read_text().split())  # lines joined: a sentence may wrap anywhere


def metrics(name: str) -> dict:
    return json.loads((ROOT / "metrics" / name).read_text())


def test_the_readmes_figures_of_the_default_run_are_those_metrics_holds_as_rounded():
    """The results table and the sentences around it quote the committed run (metrics/), rounded as printed;
    a new run that moves a figure past its rounding fails here until the README says so."""
    export, scores, data = metrics("export.json"), metrics("eval.json"), metrics("data.json")
    formats = ("pytorch", "fp32", "int8")
    rows = [
        "| test accuracy, as `predict` and `serve` answer | "
        + " | ".join(f"{export['accuracy'][fmt]:.2f}" for fmt in formats)
        + " |",
        "| size | " + " | ".join(f"{export['size_mb'][fmt]:.0f} MB" for fmt in formats) + " |",
        f"| one text alone, text to answer, {export['threads']} threads | "
        + " | ".join(f"about {export['latency_ms_batch1'][fmt]:.0f} ms" for fmt in formats)
        + " |",
    ]
    for row in rows:
        assert row in README, row
    assert f"{scores['n_test']:,} held-out test reviews" in README
    assert f"on the same splits scores {scores['baseline']['accuracy']:.2f}" in README
    assert f"on {sum(data['rows'].values()):,} rotten-tomatoes review snippets" in README


def test_the_readmes_serving_figures_are_the_load_tests():
    summary = json.loads((ROOT / "benchmarks/loadtest.json").read_text())["summary"]
    ratios = [summary[workload]["requests_per_s_vs_peer"]["hfx"]["32"] for workload in ("sentences", "mixed")]
    assert f"answered {ratios[0]:.1f} times the requests/s" in README
    assert f"sentences and {ratios[1]:.1f} times on sentences mixed with paragraphs" in README


def test_the_serving_guides_figures_against_the_model_are_the_load_tests():
    summary = json.loads((ROOT / "benchmarks/loadtest.json").read_text())["summary"]
    guide = " ".join((ROOT / "docs/serving.md").read_text().split())
    alone = [summary[workload]["requests_per_s_vs_in_process"]["hfx"]["32"] for workload in ("sentences", "mixed")]
    assert f"hfx answers {alone[0]:.2f} of the sentences per second its model answers alone" in guide
    assert f"process, and {alone[1]:.2f} of the mixed texts" in guide
    p99 = [summary[workload]["p99_c1_vs_in_process_p99"]["hfx"] for workload in ("sentences", "mixed")]
    assert f"its p99 is {p99[0]:.1f} times the model's own p99 on sentences" in guide
    assert f"(p99 {p99[1]:.1f} times)" in guide


def github_anchor(heading: str) -> str:
    """The fragment GitHub gives a heading: lower case, punctuation but `-` and `_` dropped, spaces as `-`."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_link_to_a_benchmark_lands_on_a_heading_of_it():
    """A figure that does not come from metrics/ links to the measurement it quotes (docs/benchmarks.md)."""
    headings = re.findall(r"^#+ (.*)$", (ROOT / "docs/benchmarks.md").read_text(), re.MULTILINE)
    anchors = {github_anchor(heading) for heading in headings}
    links = re.findall(r"\(docs/benchmarks\.md#([^)]+)\)", README)
    assert len(links) >= 2
    assert set(links) <= anchors, sorted(set(links) - anchors)


def test_each_stage_script_is_as_short_as_the_readme_says():
    for stage in ("download", "preprocess", "finetune", "evaluate", "export"):
        assert f"{stage}.py" in README
        assert len((ROOT / f"stages/{stage}.py").read_text().splitlines()) < 150, stage
