"""finetune on several processes through the real launcher (torchrun, DDP over gloo on this CPU): the same
results and layout as one process, rank 0 alone writing, two "machines" meeting over 127.0.0.1, a killed
process failing the stage cleanly, and resume with two processes."""

import json
import shutil
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest

from tests.corpora import generated_splits
from tests.project import REVIEWS, run, set_params, stage_env, tiny_repo

SIZES = {"train": 400, "test": 64}


SETTINGS = dict(
    finetune__epochs=4,
    finetune__warmup_ratio=0.0,
    finetune__learning_rate=3e-3,
    finetune__batch_size=16,
    finetune__deterministic=True,
)


def files(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def validation(repo) -> dict:
    return json.loads((repo / "metrics/train/metrics.json").read_text())["eval"]


@pytest.fixture(scope="module")
def single(tmp_path_factory, tiny_model):
    repo = tiny_repo(
        tmp_path_factory.mktemp("one") / "repo", tiny_model, generated_splits(SIZES), **REVIEWS, **SETTINGS
    )
    run(["dvc", "repro", "finetune"], repo)
    return repo


@pytest.fixture(scope="module")
def double(tmp_path_factory, tiny_model):
    repo = tiny_repo(
        tmp_path_factory.mktemp("two") / "repo",
        tiny_model,
        generated_splits(SIZES),
        **REVIEWS,
        finetune__processes=2,
        **SETTINGS,
    )
    return repo, run(["dvc", "repro", "finetune"], repo)


def test_two_processes_train_like_one_with_the_same_layout(single, double):
    repo, result = double
    assert "on 2 processes (gloo)" in result.stdout
    assert files(repo / "models/finetuned") == files(single / "models/finetuned")
    assert files(repo / "metrics/train") == files(single / "metrics/train")
    one, two = validation(single), validation(repo)
    # Equal global batch and seed; the two processes draw their halves of each batch from another sampler
    # (DistributedSampler), so the runs agree within noise, not bit for bit.
    assert abs(one["accuracy"] - two["accuracy"]) <= 0.1 and two["accuracy"] >= 0.8, (one, two)
    steps = [json.loads((r / "metrics/train/metrics.json").read_text())["step"] for r in (single, repo)]
    assert steps[0] == steps[1], "the global batch keeps the step count and the learning-rate schedule"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_machines_meet_over_loopback_and_the_second_writes_no_output(double, tmp_path):
    first, _ = double
    set_params(first, finetune__processes=1, finetune__nodes=2)
    second = tmp_path / "second"
    shutil.copytree(first, second, symlinks=True)
    shutil.rmtree(first / "models/finetuned")
    before = files(second)
    port = free_port()
    env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    machines = [
        subprocess.Popen(
            [sys.executable, "-m", "stages.finetune"],
            cwd=repo,
            text=True,
            env={**stage_env(), **env, "NODE_RANK": str(rank)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for rank, repo in enumerate((first, second))
    ]
    outputs = [machine.communicate(timeout=600)[0] for machine in machines]
    assert [m.returncode for m in machines] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    assert "on 2 processes (gloo)" in outputs[0] and "best validation" not in outputs[1]
    assert (first / "models/finetuned/model.safetensors").is_file()
    written = set(files(second)) - set(before)
    # Only the Trainer's per-process random state in the checkpoints, which a resume needs: no model, no logs.
    assert written and all(f.startswith("models/checkpoints/checkpoint-") and "/rng_state_1.pth" in f for f in written)
    assert set(before) <= set(files(second))
    # The second machine's own checkpoint folders are rotated as the first machine's are (4 epochs, 4 saves).
    assert len(list((second / "models/checkpoints").glob("checkpoint-*"))) <= 3


def test_a_machine_without_a_rendezvous_address_fails_in_one_line(double):
    repo, _ = double
    set_params(repo, finetune__processes=1, finetune__nodes=2)
    env = {k: v for k, v in stage_env().items() if k not in ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK")}
    result = subprocess.run(
        [sys.executable, "-m", "stages.finetune"], cwd=repo, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("error: finetune.nodes: 2 machines need NODE_RANK, MASTER_ADDR, MASTER_PORT in the environment")
    )


def worker(launcher: subprocess.Popen, rank: int, timeout: float = 300) -> psutil.Process:
    """The training process of `rank` under a running launcher."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in psutil.Process(launcher.pid).children(recursive=True):
            try:
                if child.environ().get("RANK") == str(rank) and "LOCAL_RANK" in child.environ():
                    return child
            except psutil.Error:
                continue
        assert launcher.poll() is None, "the launcher ended before its workers started"
        time.sleep(0.2)
    raise AssertionError(f"no rank {rank} worker within {timeout} s")


def test_a_killed_process_fails_the_stage_and_the_rerun_resumes_with_two(tiny_model, tmp_path):
    repo = tiny_repo(
        tmp_path / "repo",
        tiny_model,
        generated_splits(SIZES),
        **REVIEWS,
        finetune__processes=2,
        **{**SETTINGS, "finetune__epochs": 4, "finetune__eval_steps": 8},
    )
    run(["dvc", "repro", "preprocess"], repo)
    launcher = subprocess.Popen(
        [sys.executable, "-m", "stages.finetune"],
        cwd=repo,
        env=stage_env(),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    victim = worker(launcher, rank=1)
    checkpoints = repo / "models/checkpoints"
    deadline = time.monotonic() + 300
    while not any((c / "trainer_state.json").is_file() for c in checkpoints.glob("checkpoint-*")):
        assert time.monotonic() < deadline and launcher.poll() is None, "no checkpoint was written"
        time.sleep(0.2)
    victim.send_signal(signal.SIGKILL)
    output = launcher.communicate(timeout=120)[0]  # no hang: torchrun stops the other worker
    assert launcher.returncode == 1, output[-3000:]
    assert output.strip().splitlines()[-1].startswith("error: finetune: a training process failed")
    assert not (repo / "models/finetuned").exists()

    rerun = run([sys.executable, "-m", "stages.finetune"], repo)
    assert "finetune: resuming from" in rerun.stdout and "on 2 processes (gloo)" in rerun.stdout
    assert (repo / "models/finetuned/model.safetensors").is_file()
    assert not list(checkpoints.glob("checkpoint-*"))


def launch_machines(repos, port: int) -> list[subprocess.Popen]:
    env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    return [
        subprocess.Popen(
            [sys.executable, "-m", "stages.finetune"],
            cwd=repo,
            text=True,
            env={**stage_env(), **env, "NODE_RANK": str(rank)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for rank, repo in enumerate(repos)
    ]


def test_two_machines_resume_from_the_same_checkpoint_in_a_shared_folder(tiny_model, tmp_path):
    """Killed after a checkpoint, two machines (two launchers over 127.0.0.1) whose paths.checkpoints is one
    shared folder both resume from the checkpoint the first machine settles on, and finish."""
    first = tiny_repo(
        tmp_path / "first",
        tiny_model,
        generated_splits(SIZES),
        **REVIEWS,
        finetune__processes=1,
        finetune__nodes=2,
        finetune__process_timeout_s=60,
        **{**SETTINGS, "finetune__eval_steps": 8},
    )
    run(["dvc", "repro", "preprocess"], first)
    second = tmp_path / "second"
    shutil.copytree(first, second, symlinks=True)
    (first / "models/checkpoints").mkdir(parents=True, exist_ok=True)
    shutil.rmtree(second / "models/checkpoints", ignore_errors=True)
    (second / "models").mkdir(exist_ok=True)
    (second / "models/checkpoints").symlink_to(first / "models/checkpoints")  # a folder both machines mount

    machines = launch_machines((first, second), free_port())
    victim = worker(machines[1], rank=1)
    deadline = time.monotonic() + 300
    while not list((first / "models/checkpoints").glob("checkpoint-*/trainer_state.json")):
        assert time.monotonic() < deadline and all(m.poll() is None for m in machines), "no checkpoint was written"
        time.sleep(0.2)
    victim.send_signal(signal.SIGKILL)
    outputs = [m.communicate(timeout=300)[0] for m in machines]
    assert all(m.returncode != 0 for m in machines), outputs
    assert not (first / "models/finetuned").exists()

    machines = launch_machines((first, second), free_port())
    outputs = [m.communicate(timeout=600)[0] for m in machines]
    assert [m.returncode for m in machines] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    resumed = [[line for line in out.splitlines() if line.startswith("finetune: resuming from")] for out in outputs]
    assert resumed[0] and resumed[0] == resumed[1], resumed  # the same checkpoint on both machines
    assert (first / "models/finetuned/model.safetensors").is_file() and not (second / "models/finetuned").exists()
