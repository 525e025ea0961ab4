"""Sharing through DVC remotes, against a real S3-compatible server (moto) on 127.0.0.1.

One author reproduces the tiny pipeline, pushes git to a local bare repo and data to S3; teammates clone the
bare repo. Credentials reach DVC from the environment, or from a clone's .dvc/config.local, never from git.
"""

import hashlib
import json
import os
import socket
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml

from tests.corpora import generated_splits
from tests.project import REVIEWS, commit_all, run, set_params, tiny_repo
from tests.s3_server import CREDENTIALS, S3Server

BUCKET = "hfx"


UP_TO_DATE = "Data and pipelines are up to date."


@pytest.fixture(scope="module")
def s3():
    server = S3Server().start()
    server.client().create_bucket(Bucket=BUCKET)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def shared(tmp_path_factory, tiny_model, s3):
    """The author's reproduced pipeline: git history in origin.git, data and models in s3://hfx/store."""
    base = tmp_path_factory.mktemp("remotes")
    origin = base / "origin.git"
    run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], base)
    repo = tiny_repo(
        base / "author",
        tiny_model,
        generated_splits({"train": 160, "test": 40}),
        **REVIEWS,
        finetune__batch_size=16,
        export__latency_queries=3,
    )
    # What `make remote URL=s3://hfx/store ENDPOINT=...` runs.
    run(["dvc", "remote", "add", "--default", "storage", f"s3://{BUCKET}/store"], repo)
    run(["dvc", "remote", "modify", "storage", "endpointurl", s3.endpoint], repo)
    run(["dvc", "repro"], repo)
    commit_all(repo, "reproduced")
    run(["git", "remote", "add", "origin", str(origin)], repo)
    run(["git", "push", "-q", "origin", "main"], repo)
    run(["dvc", "push"], repo, env=CREDENTIALS)
    return SimpleNamespace(base=base, origin=origin, repo=repo)


def clone(shared, dest: Path) -> Path:
    run(["git", "clone", "-q", str(shared.origin), str(dest)], shared.base)
    return dest


def add_remote(repo: Path, name: str, url: str, endpoint: str) -> None:
    """A clone-local S3 remote (.dvc/config.local), so the committed config stays as the author left it."""
    run(["dvc", "remote", "add", "--local", "--force", name, url], repo)
    run(["dvc", "remote", "modify", "--local", name, "endpointurl", endpoint], repo)


def locked_outs(repo: Path) -> list[str]:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return [out["path"] for stage in lock["stages"].values() for out in stage.get("outs", [])]


def assert_cache_intact(repo: Path) -> int:
    """Every object in the cache still hashes to its name (a `.dir` object is the md5 of its listing)."""
    objects = [p for p in (repo / ".dvc/cache/files/md5").glob("*/*") if p.is_file()]
    for path in objects:
        expected = path.parent.name + path.name.removesuffix(".dir")
        assert hashlib.md5(path.read_bytes()).hexdigest() == expected, f"corrupt cache object {path}"
    return len(objects)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_fresh_clone_pulls_every_out_and_reproduces_nothing(shared, tmp_path):
    teammate = clone(shared, tmp_path / "teammate")
    run(["dvc", "pull"], teammate, env=CREDENTIALS)
    for out in locked_outs(teammate):
        assert (teammate / out).exists(), f"{out} not pulled"
    assert run(["dvc", "status"], teammate).stdout.strip() == UP_TO_DATE
    repro = run(["dvc", "repro"], teammate).stdout
    assert "Running stage" not in repro and UP_TO_DATE in repro
    weights = teammate / "models/export/model.safetensors"
    assert weights.read_bytes() == (shared.repo / weights.relative_to(teammate)).read_bytes()
    # Pulled outs are links into the cache (cache.type), not a second copy of every model file.
    md5 = hashlib.md5(weights.read_bytes()).hexdigest()
    assert os.path.samefile(weights, teammate / ".dvc/cache/files/md5" / md5[:2] / md5[2:])


def test_local_folder_remote_round_trip(shared, tmp_path):
    """The try-it-out remote: a plain folder (`make remote URL=/path`) instead of a bucket."""
    folder = tmp_path / "storage"
    run(["dvc", "remote", "add", "--local", "folder", str(folder)], shared.repo)
    run(["dvc", "push", "-r", "folder"], shared.repo)
    teammate = clone(shared, tmp_path / "teammate")
    run(["dvc", "remote", "add", "--local", "folder", str(folder)], teammate)
    run(["dvc", "pull", "-r", "folder"], teammate)
    assert run(["dvc", "status"], teammate).stdout.strip() == UP_TO_DATE


def test_repro_pull_allow_missing_fetches_only_what_the_changed_stage_needs(shared, tmp_path):
    teammate = clone(shared, tmp_path / "teammate")
    set_params(teammate, export__latency_queries=5)
    repro = run(["dvc", "repro", "--pull", "--allow-missing"], teammate, env=CREDENTIALS).stdout
    ran = {line.split("'")[1] for line in repro.splitlines() if line.startswith("Running stage")}
    assert ran <= {"check_params", "export"} and "export" in ran, repro
    assert (teammate / "models/export/model.onnx").is_file()
    # Export reads the raw manifest and the test split it scores as users send it, not the other splits;
    # finetune did not run, so its resume state stayed put.
    assert sorted(p.name for p in (teammate / "data/raw").iterdir()) == ["manifest.json", "test.parquet"]
    assert not (teammate / "models/checkpoints").exists()


def test_second_push_of_an_unchanged_model_uploads_nothing(shared, s3):
    before = s3.objects(BUCKET, "store/")
    s3.die_after("PUT", None)  # resets the request counts
    push = run(["dvc", "push"], shared.repo, env=CREDENTIALS)
    assert "Everything is up to date" in push.stdout
    assert s3.requests["PUT"] == 0
    assert s3.objects(BUCKET, "store/") == before


def test_experiments_from_two_machines_meet_through_git_and_s3(shared, tmp_path):
    """README "Experiments on many machines": each worker runs its own experiment and pushes it; anyone pulls
    them all and compares them."""
    metrics = {}
    # worker-b stops at evaluate, whose metrics are all the reader compares: its export would add nothing.
    for worker, name, rate, target in (("worker-a", "lr-up", 0.002, []), ("worker-b", "lr-down", 0.0002, ["evaluate"])):
        repo = clone(shared, tmp_path / worker)
        run(["dvc", "pull"], repo, env=CREDENTIALS)
        run(["dvc", "exp", "run", "-n", name, "-S", f"finetune.learning_rate={rate}", *target], repo)
        metrics[name] = json.loads((repo / "metrics/eval.json").read_text())
        run(["dvc", "exp", "push", "origin", name], repo, env=CREDENTIALS)
    assert metrics["lr-up"] != metrics["lr-down"]

    # This clone keeps its credentials in .dvc/config.local, which git ignores.
    reader = clone(shared, tmp_path / "reader")
    run(["dvc", "remote", "modify", "--local", "storage", "access_key_id", CREDENTIALS["AWS_ACCESS_KEY_ID"]], reader)
    run(
        ["dvc", "remote", "modify", "--local", "storage", "secret_access_key", CREDENTIALS["AWS_SECRET_ACCESS_KEY"]],
        reader,
    )
    assert run(["git", "status", "--porcelain"], reader).stdout == ""
    run(["dvc", "exp", "pull", "origin"], reader)  # every experiment on this commit, whoever ran it

    shown = json.loads(run(["dvc", "exp", "show", "--json"], reader).stdout)
    runs = {exp["name"]: exp["revs"][0]["data"] for rev in shown for exp in (rev.get("experiments") or [])}
    assert set(runs) == {"lr-up", "lr-down"}
    for name, rate in (("lr-up", 0.002), ("lr-down", 0.0002)):
        assert runs[name]["params"]["params.yaml"]["data"]["finetune"]["learning_rate"] == rate
        assert runs[name]["metrics"]["metrics/eval.json"]["data"]["accuracy"] == metrics[name]["accuracy"]
    # Their outs came along: applying one needs no remote and leaves a complete, up-to-date workspace.
    run(["dvc", "exp", "apply", "lr-up"], reader)
    assert run(["dvc", "status"], reader).stdout.strip() == UP_TO_DATE
    assert json.loads((reader / "metrics/eval.json").read_text()) == metrics["lr-up"]


def test_exported_model_imported_into_another_project_loads_with_pipeline(shared, tmp_path):
    from transformers import pipeline

    consumer = tmp_path / "consumer"
    consumer.mkdir()
    run(["git", "init", "-q"], consumer)
    run(["dvc", "init", "-q"], consumer)
    run(["dvc", "import", str(shared.origin), "models/export", "-o", "sentiment-model"], consumer, env=CREDENTIALS)
    source = yaml.safe_load((consumer / "sentiment-model.dvc").read_text())["deps"][0]["repo"]
    assert source["url"] == str(shared.origin) and len(source["rev_lock"]) == 40

    texts = pd.read_csv(shared.repo / "inputs/test.csv")["review"].tolist()[:20]
    expected = pd.read_csv(shared.repo / "metrics/predictions.csv")["predicted"].tolist()[:20]
    classifier = pipeline("text-classification", model=str(consumer / "sentiment-model"), device="cpu")
    assert [p["label"] for p in classifier(texts)] == expected

    # `dvc get` is the same download without the tracking, for a folder that is not a DVC project.
    run(["dvc", "get", str(shared.origin), "models/export", "-o", str(tmp_path / "plain")], tmp_path, env=CREDENTIALS)
    assert (tmp_path / "plain/model.safetensors").read_bytes() == (
        consumer / "sentiment-model/model.safetensors"
    ).read_bytes()


def test_the_model_is_fetched_by_name_version_and_stage_from_the_registry(shared, tmp_path):
    """dvc.yaml declares models/export as the artifact `hfx-model`; `gto register` versions it and `gto assign`
    puts a version in a stage, as Git tags a teammate fetches by."""
    run(["gto", "register", "hfx-model", "--version", "v1.0.0"], shared.repo)
    run(["gto", "assign", "hfx-model", "--version", "v1.0.0", "--stage", "prod"], shared.repo)
    run(["git", "push", "-q", "origin", "--tags"], shared.repo)
    exported = shared.repo / "models/export"
    for options, out in (([], "latest"), (["--rev", "v1.0.0"], "v1"), (["--stage", "prod"], "prod")):
        command = ["dvc", "artifacts", "get", str(shared.origin), "hfx-model", *options, "-o", str(tmp_path / out)]
        run(command, tmp_path, env=CREDENTIALS)
        files = sorted(p.name for p in (tmp_path / out).iterdir())
        assert files == sorted(p.name for p in exported.iterdir())
        assert all((tmp_path / out / name).read_bytes() == (exported / name).read_bytes() for name in files)


def test_push_interrupted_by_a_dying_server_completes_on_retry(shared, s3, tmp_path):
    repo = shared.repo
    add_remote(repo, "flaky", f"s3://{BUCKET}/flaky", s3.endpoint)
    s3.die_after("PUT", 3)
    try:
        push = run(["dvc", "push", "-r", "flaky"], repo, check=False, env=CREDENTIALS)
    finally:
        if not s3.running:
            s3.start()
    assert push.returncode != 0
    error = next(line for line in push.stderr.splitlines() if line.startswith("ERROR"))
    assert "Could not connect to the endpoint URL" in error and s3.endpoint in error, push.stderr
    assert assert_cache_intact(repo)
    assert "new:" in run(["dvc", "status", "--cloud", "-r", "flaky"], repo, env=CREDENTIALS).stdout

    run(["dvc", "push", "-r", "flaky"], repo, env=CREDENTIALS)
    assert "in sync" in run(["dvc", "status", "--cloud", "-r", "flaky"], repo, env=CREDENTIALS).stdout
    assert_cache_intact(repo)
    # What the retry left on the remote is complete: a fresh clone pulls a working pipeline from it.
    teammate = clone(shared, tmp_path / "teammate")
    add_remote(teammate, "flaky", f"s3://{BUCKET}/flaky", s3.endpoint)
    run(["dvc", "pull", "-r", "flaky"], teammate, env=CREDENTIALS)
    assert run(["dvc", "status"], teammate).stdout.strip() == UP_TO_DATE


def test_pull_interrupted_by_a_dying_server_completes_on_retry(shared, s3, tmp_path):
    teammate = clone(shared, tmp_path / "teammate")
    s3.die_after("GET", 12)
    try:
        pull = run(["dvc", "pull"], teammate, check=False, env=CREDENTIALS)
    finally:
        if not s3.running:
            s3.start()
    assert pull.returncode != 0 and "Could not connect to the endpoint URL" in pull.stderr, pull.stderr
    assert 0 < assert_cache_intact(teammate) < len(list((shared.repo / ".dvc/cache/files/md5").glob("*/*")))
    run(["dvc", "pull"], teammate, env=CREDENTIALS)
    assert run(["dvc", "status"], teammate).stdout.strip() == UP_TO_DATE
    assert_cache_intact(teammate)


@pytest.mark.parametrize(
    "fault, url, endpoint, credentials, message",
    [
        (
            "wrong endpoint",
            f"s3://{BUCKET}/store",
            "http://127.0.0.1:{free_port}",
            CREDENTIALS,
            "Could not connect to the endpoint URL",
        ),
        ("missing bucket", "s3://no-such-bucket/store", "{endpoint}", CREDENTIALS, "bucket does not exist"),
        (
            "bad credentials",
            f"s3://{BUCKET}/store",
            "{endpoint}",
            {**CREDENTIALS, "AWS_ACCESS_KEY_ID": "AKIANOTAREALKEY00000"},
            "(403)",
        ),
        (
            "no credentials",
            f"s3://{BUCKET}/store",
            "{endpoint}",
            {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_EC2_METADATA_DISABLED": "true"},
            "Unable to locate credentials",
        ),
    ],
)
def test_remote_faults_fail_with_a_clear_error_and_leave_the_cache_intact(
    shared, s3, fault, url, endpoint, credentials, message
):
    repo = shared.repo
    add_remote(repo, "faulty", url, endpoint.format(free_port=free_port(), endpoint=s3.endpoint))
    s3.require_valid_credentials(fault == "bad credentials")
    try:
        push = run(["dvc", "push", "-r", "faulty"], repo, check=False, env=credentials)
    finally:
        s3.require_valid_credentials(False)
    assert push.returncode != 0
    error = [line for line in push.stderr.splitlines() if line.startswith("ERROR")]
    assert error and message in error[0], push.stderr
    assert_cache_intact(repo)
    assert run(["dvc", "status"], repo).stdout.strip() == UP_TO_DATE
