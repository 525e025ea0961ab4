"""`hfx tune` with trials side by side: `--jobs 2` through DVC's queue on a journal-file study, and two clones of
the project (two machines) sharing one study in a real PostgreSQL server."""

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from tests.project import commit_all, copy_of, run, stage_env

optuna = pytest.importorskip("optuna")


def tune_repo(tiny_run, dest: Path) -> Path:
    """A copy of the tiny run whose tune section searches the learning rate alone."""
    repo = copy_of(tiny_run[0], dest)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["tune"]["space"] = {"finetune.learning_rate": {"low": 1e-3, "high": 5e-3, "log": True}}
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    commit_all(repo, "search the learning rate")
    return repo


def overlapped(trials) -> bool:
    first, second = trials
    return first.datetime_start < second.datetime_complete and second.datetime_start < first.datetime_complete


def experiments(repo: Path) -> set[str]:
    return set(run(["dvc", "exp", "list", "--name-only"], repo).stdout.split())


def test_two_jobs_run_two_trials_at_once_through_the_queue(tiny_run, tmp_path):
    repo = tune_repo(tiny_run, tmp_path / "repo")
    result = run(["python", "-m", "hfx.tune", "--trials", "2", "--jobs", "2", "--storage", "tune/optuna.log"], repo)
    from optuna.storages.journal import JournalFileBackend

    storage = optuna.storages.JournalStorage(JournalFileBackend(str(repo / "tune/optuna.log")))
    trials = optuna.load_study(study_name="tune", storage=storage).get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"], result.stdout
    assert overlapped(trials), "the two trials ran side by side"
    assert all(t.intermediate_values for t in trials), "the queue's workers passed each stage its trial"
    assert experiments(repo) == {"tune-t0000", "tune-t0001"}
    assert run(["git", "status", "--porcelain", "--untracked-files=no"], repo).stdout == ""
    run(["dvc", "queue", "stop"], repo, check=False)


def test_jobs_on_a_sqlite_study_is_one_line_before_any_trial(tiny_run, tmp_path):
    repo = tune_repo(tiny_run, tmp_path / "repo")
    result = run(["python", "-m", "hfx.tune", "--jobs", "2"], repo, check=False)
    assert result.returncode == 1 and "--jobs 2: SQLite takes one writer at a time" in result.stderr
    assert not (repo / "tune").exists()


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL server of its own on 127.0.0.1 (Debian's; postgres refuses to run as root), with a database
    for the study; its URL."""
    binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if not binaries:
        pytest.skip("PostgreSQL not installed (apt-get install postgresql; .ci/run does)")
    folder = Path(tempfile.mkdtemp(prefix="hfx-postgres-"))
    as_postgres = []
    if os.getuid() == 0:
        shutil.chown(folder, "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    bin_dir = Path(binaries[-1])

    def postgres_run(*command: str) -> None:
        subprocess.run([*as_postgres, *command], cwd=folder, check=True, capture_output=True, timeout=120)

    postgres_run(str(bin_dir / "initdb"), "-D", str(folder / "data"), "-A", "trust", "-U", "hfx")
    options = f"-p {port} -k {folder} -h 127.0.0.1"
    postgres_run(
        str(bin_dir / "pg_ctl"), "-D", str(folder / "data"), "-o", options, "-l", str(folder / "log"), "-w", "start"
    )
    try:
        postgres_run(str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "hfx", "tune")
        yield f"postgresql://hfx@127.0.0.1:{port}/tune"
    finally:
        postgres_run(str(bin_dir / "pg_ctl"), "-D", str(folder / "data"), "-m", "immediate", "stop")
        shutil.rmtree(folder, ignore_errors=True)


def test_two_machines_share_one_study_in_postgresql(tiny_run, tmp_path, postgres):
    """Two clones of the project, as two machines would have, run `hfx tune` at the same time on one study."""
    clones = [tune_repo(tiny_run, tmp_path / name) for name in ("machine-a", "machine-b")]
    command = ["python", "-m", "hfx.tune", "--trials", "2", "--storage", postgres]
    processes = [
        subprocess.Popen(
            command, cwd=clone, env=stage_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for clone in clones
    ]
    outputs = [process.communicate(timeout=900)[0] for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    trials = optuna.load_study(study_name="tune", storage=postgres).get_trials()
    # Each machine starts a trial while the study has fewer than 2: both may start their second at once.
    assert 2 <= len(trials) <= 3 and all(t.state.name == "COMPLETE" for t in trials), outputs
    ran_on = [experiments(clone) for clone in clones]
    assert all(ran_on) and set.union(*ran_on) == {t.user_attrs["experiment"] for t in trials}
    assert not ran_on[0] & ran_on[1], "each trial ran once, on one machine"


def test_a_study_killed_during_a_trial_goes_on_when_run_again(tiny_run, tmp_path):
    """`hfx tune` and its trial killed at once (a machine's power cut): the next run fails that trial, which can
    never report, and goes on with the study."""
    repo = tune_repo(tiny_run, tmp_path / "repo")
    command = ["python", "-m", "hfx.tune", "--trials", "2"]
    tuning = subprocess.Popen(command, cwd=repo, env=stage_env(), stdout=subprocess.DEVNULL, start_new_session=True)
    trial_file, storage = repo / "tune/trials/tune-t0000.json", f"sqlite:///{repo / 'tune/optuna.db'}"

    def reported() -> bool:  # the first trial is training: it has reported a validation
        if not (repo / "tune/optuna.db").exists():
            return False
        try:
            return bool(optuna.load_study(study_name="tune", storage=storage).trials[0].intermediate_values)
        except (KeyError, IndexError, ValueError):  # no study or trial yet
            return False

    deadline = time.monotonic() + 300
    while not reported() and time.monotonic() < deadline and tuning.poll() is None:
        time.sleep(1)
    assert reported(), "the first trial was training"
    os.killpg(tuning.pid, signal.SIGKILL)
    tuning.wait()
    again = run(command, repo)
    assert "1 interrupted" in again.stdout
    trials = optuna.load_study(study_name="tune", storage=f"sqlite:///{repo / 'tune/optuna.db'}").get_trials()
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE"], again.stdout
    assert trials[0].user_attrs["reason"].startswith("interrupted")
    assert experiments(repo) == {"tune-t0001"}
    assert not trial_file.exists()
    assert run(["git", "status", "--porcelain", "--untracked-files=no"], repo).stdout == ""
