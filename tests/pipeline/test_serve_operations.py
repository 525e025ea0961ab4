"""What an operator runs `hfx serve` with, against a real uvicorn on 127.0.0.1: an API key, CORS (from a page in
headless Chromium on another port), request ids, timing headers and JSON logs, liveness and readiness, draining
on SIGTERM, several models in one server, and a reload under load that drops no request."""

import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.project import ROOT, stage_env
from tests.served import NEGATIVE, POSITIVE, Server

KEY = "test-key-0123456789abcdef"


AUTH = {"Authorization": f"Bearer {KEY}"}


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def relabelled(folder: Path, dest: Path, names: dict[str, str]) -> Path:
    """A copy of an exported folder whose labels are renamed: the same weights, answers told apart by label."""
    copy = Path(shutil.copytree(folder, dest))
    rename_labels(copy, names)
    return copy


def rename_labels(folder: Path, names: dict[str, str]) -> None:
    config = json.loads((folder / "config.json").read_text())
    config["id2label"] = {i: names.get(name, name) for i, name in config["id2label"].items()}
    config["label2id"] = {name: int(i) for i, name in config["id2label"].items()}
    staged = folder / "config.json.new"
    staged.write_text(json.dumps(config))
    os.replace(staged, folder / "config.json")  # a reader sees the old file or the new one, never half of one


def call(server: Server, method: str, path: str, payload=None, headers=None):
    body = json.dumps(payload).encode() if payload is not None else None
    status, answer = server.request(method, path, body, headers)
    return status, json.loads(answer) if answer else None


def refused_at_start(*args: str) -> subprocess.CompletedProcess:
    """`python -m hfx.serve` with arguments it must refuse before it loads or listens."""
    return subprocess.run(
        [sys.executable, "-m", "hfx.serve", *args],
        cwd=ROOT,
        env=stage_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def labels_of(answer) -> list[str]:
    return [entry["label"] for entry in answer]


@pytest.fixture(scope="module")
def upper(exported_model, tmp_path_factory):
    return relabelled(exported_model, tmp_path_factory.mktemp("upper") / "upper", {"neg": "NEG", "pos": "POS"})


@pytest.fixture(scope="module")
def guarded(exported_model, upper):
    """Two models behind a key (from HFX_API_KEY), JSON logs, one origin allowed to call from a browser."""
    running = Server(
        None,
        "--model",
        f"lower={exported_model}",
        "--model",
        f"upper={upper}",
        "--json-logs",
        "--cors-allow-origin",
        "http://127.0.0.1:1",  # replaced per test by the page's own origin where a browser calls
        env={"HFX_API_KEY": KEY},
    )
    yield running
    assert running.stop() == 0, running.log()[-2000:]


def test_every_route_but_health_needs_the_key_and_says_so_the_same_way(guarded):
    assert call(guarded, "GET", "/health") == (200, {"status": "ok"})
    refusals = set()
    for method, path, payload in (
        ("POST", "/predict", {"inputs": POSITIVE}),
        ("POST", "/models/upper/predict", {"inputs": POSITIVE}),
        ("GET", "/info", None),
        ("GET", "/models", None),
        ("GET", "/ready", None),
        ("GET", "/metrics", None),
        ("GET", "/docs", None),
        ("POST", "/admin/reload", None),
    ):
        for headers in ({}, {"Authorization": "Bearer wrong-key-0123456789"}, {"Authorization": KEY}):
            status, answer = call(guarded, method, path, payload, headers)
            assert status == 401, (method, path, headers)
            refusals.add(json.dumps(answer))
        body = json.dumps(payload).encode() if payload is not None else None
        assert guarded.request(method, path, body, AUTH)[0] == 200, (method, path)
    assert len(refusals) == 1 and "Authorization: Bearer <key>" in refusals.pop()
    assert KEY not in guarded.log() and "wrong-key" not in guarded.log()


def test_a_short_key_is_refused_at_start(exported_model):
    result = refused_at_start("--model", str(exported_model), "--api-key", "short")
    assert result.returncode == 2 and "--api-key (or HFX_API_KEY) must be at least 16 characters" in result.stderr


def test_several_models_each_answer_on_their_route(guarded):
    status, listed = call(guarded, "GET", "/models", headers=AUTH)
    assert status == 200 and listed["default"] == "lower"
    assert [(m["name"], m["task"], m["labels"], m["ready"]) for m in listed["models"]] == [
        ("lower", "text-classification", ["neg", "pos"], True),
        ("upper", "text-classification", ["NEG", "POS"], True),
    ]
    assert labels_of(call(guarded, "POST", "/predict", {"inputs": POSITIVE}, AUTH)[1]) == ["pos", "neg"]
    assert labels_of(call(guarded, "POST", "/models/lower/predict", {"inputs": NEGATIVE}, AUTH)[1]) == ["neg", "pos"]
    assert labels_of(call(guarded, "POST", "/models/upper/predict", {"inputs": POSITIVE}, AUTH)[1]) == ["POS", "NEG"]
    status, missing = call(guarded, "POST", "/models/nowhere/predict", {"inputs": POSITIVE}, AUTH)
    assert status == 404 and missing["error"] == "no model named 'nowhere'; models: lower, upper"


def test_the_default_model_is_chosen_and_names_must_differ(exported_model, upper):
    chosen = Server(None, "--model", f"a={exported_model}", "--model", f"b={upper}", "--default-model", "b")
    try:
        assert labels_of(call(chosen, "POST", "/predict", {"inputs": POSITIVE})[1]) == ["POS", "NEG"]
    finally:
        assert chosen.stop() == 0
    twice = refused_at_start("--model", f"a={exported_model}", "--model", f"a={upper}")
    assert twice.returncode == 1 and "the name 'a' is given twice" in twice.stderr


def test_request_ids_timing_headers_and_json_logs_without_inputs(guarded):
    import urllib.request

    marker = "a unique marker text that must never reach the log"

    def headers_of(extra):
        sent = urllib.request.Request(
            guarded.url + "/predict",
            data=json.dumps({"inputs": [marker, POSITIVE]}).encode(),
            headers={"Content-Type": "application/json", **AUTH, **extra},
        )
        with urllib.request.urlopen(sent, timeout=30) as response:
            return dict(response.headers)

    given = headers_of({"x-request-id": "client-id-42"})
    assert given["x-request-id"] == "client-id-42"
    for name in ("x-compute-time", "x-tokenization-time", "x-queue-time", "x-inference-time"):
        assert float(given[name]) >= 0, name
    assert float(given["x-compute-time"]) >= float(given["x-inference-time"])
    made = headers_of({})["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    unsafe = headers_of({"x-request-id": "id with spaces"})["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", unsafe)

    time.sleep(0.2)
    lines = [json.loads(line) for line in guarded.log().splitlines() if line.startswith("{")]
    mine = next(line for line in lines if line["request_id"] == "client-id-42")
    assert mine["route"] == "/predict" and mine["status"] == 200 and mine["model"] == "lower" and mine["rows"] == 2
    assert mine["tokens"] > 10 and {"queue_time_ms", "inference_time_ms", "duration_ms", "time"} <= set(mine)
    assert any(line["request_id"] == made for line in lines)
    assert marker not in guarded.log()

    metrics = guarded.request("GET", "/metrics", headers=AUTH)[1].decode()
    for series in (
        'hfx_batch_size_count{model="lower"}',
        'hfx_batch_tokens_count{model="lower"}',
        'hfx_queue_duration_seconds_count{model="lower"}',
        'hfx_queue_depth{model="upper"}',
        'hfx_rejected_requests_total{reason="Unauthorized"}',
    ):
        assert series in metrics, series


def test_ready_after_warmup_and_draining_on_sigterm_while_requests_are_still_answered(exported_model):
    draining = Server(exported_model, "--drain-s", 3, ready="/ready")
    try:
        assert call(draining, "GET", "/ready") == (200, {"status": "ready"})
        draining.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert call(draining, "GET", "/ready") == (503, {"status": "unready", "reason": "draining"})
        assert call(draining, "GET", "/health")[0] == 200
        assert call(draining, "POST", "/predict", {"inputs": POSITIVE})[0] == 200  # still taking requests
        assert draining.process.wait(timeout=30) == 0
    finally:
        draining.stop()


def test_health_is_503_when_a_file_of_the_model_is_gone_and_names_files_only_to_the_key(exported_model, tmp_path):
    folder = Path(shutil.copytree(exported_model, tmp_path / "model"))
    broken = Server(folder, "--api-key", KEY)
    try:
        assert call(broken, "GET", "/health") == (200, {"status": "ok"})
        (folder / "model_quantized.onnx").unlink()
        for _ in range(2):
            assert call(broken, "GET", "/health") == (503, {"status": "unhealthy", "error": "model files missing"})
        status, answer = call(broken, "GET", "/health", None, AUTH)
        assert status == 503 and f"model_quantized.onnx missing from {folder}" in answer["error"]
        assert call(broken, "GET", "/ready", None, AUTH)[0] == 503
    finally:
        assert broken.stop() == 0
    logged = [line for line in broken.log().splitlines() if "unhealthy" in line]
    assert len(logged) == 1 and f"model_quantized.onnx missing from {folder}" in logged[0]  # once, not per probe


def test_a_reload_under_load_drops_no_request_and_switches_the_answers(exported_model, tmp_path):
    folder = relabelled(exported_model, tmp_path / "model", {})
    served = Server(folder, "--api-key", KEY)
    deadline = time.monotonic() + 60  # /health answers before the warm-up ends: wait for /ready, which needs the key
    while call(served, "GET", "/ready", None, AUTH)[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    outcomes, stop = [], threading.Event()

    def load():
        while not stop.is_set():
            status, answer = call(served, "POST", "/predict", {"inputs": [POSITIVE, NEGATIVE]}, AUTH)
            outcomes.append((status, labels_of(answer[0]) if status == 200 else answer))

    workers = [threading.Thread(target=load) for _ in range(4)]
    try:
        for worker in workers:
            worker.start()
        time.sleep(1)
        rename_labels(folder, {"neg": "negative", "pos": "positive"})
        served.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 60
        while not any(o[1] == ["positive", "negative"] for o in outcomes[-5:]) and time.monotonic() < deadline:
            time.sleep(0.1)
        rename_labels(folder, {"negative": "bad", "positive": "good"})
        assert call(served, "POST", "/admin/reload", None, AUTH) == (200, {"reloaded": ["model"]})
        time.sleep(0.5)
    finally:
        stop.set()
        for worker in workers:
            worker.join(60)
        assert served.stop() == 0
    assert {status for status, _ in outcomes} == {200}, [o for o in outcomes if o[0] != 200][:3]
    seen = [tuple(labels) for _, labels in outcomes]
    assert seen[0] == ("pos", "neg") and seen[-1] == ("good", "bad") and ("positive", "negative") in seen
    switched = [seen.index(pair) for pair in (("positive", "negative"), ("good", "bad"))]
    assert switched == sorted(switched) and all(
        s in {("pos", "neg"), ("positive", "negative"), ("good", "bad")} for s in seen
    )


def test_a_folder_that_no_longer_loads_keeps_the_old_model(exported_model, tmp_path):
    folder = relabelled(exported_model, tmp_path / "model", {})
    served = Server(folder, "--api-key", KEY)
    try:
        (folder / "config.json").write_text("{not json")
        status, answer = call(served, "POST", "/admin/reload", None, AUTH)
        assert status == 422 and answer["error"].startswith("reload kept the old model of model: ")
        assert labels_of(call(served, "POST", "/predict", {"inputs": POSITIVE}, AUTH)[1]) == ["pos", "neg"]
    finally:
        assert served.stop() == 0


PAGE = """<!doctype html><html><body><pre id="answer">pending</pre><script>
fetch("%s/predict", {method: "POST", headers: {"Content-Type": "application/json", "Authorization": "Bearer %s"},
                      body: JSON.stringify({inputs: "%s"})})
  .then(r => r.json().then(body => r.status + " " + r.headers.get("x-request-id") + " " + body[0].label))
  .catch(e => "blocked " + e)
  .then(text => { document.getElementById("answer").textContent = text; });
</script></body></html>"""


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium; .ci/run does)")
def test_a_page_on_another_origin_calls_predict_only_when_its_origin_is_allowed(exported_model, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    page_server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(site))
    )
    origin = f"http://127.0.0.1:{page_server.server_address[1]}"
    threading.Thread(target=page_server.serve_forever, daemon=True).start()

    def answer_in_browser(api: Server) -> str:
        (site / "index.html").write_text(PAGE % (api.url, KEY, POSITIVE))
        browser = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                f"--user-data-dir={tmp_path / 'chrome'}",
                "--virtual-time-budget=10000",
                "--dump-dom",
                origin + "/index.html",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        return re.search(r'<pre id="answer">(.*?)</pre>', browser.stdout, re.DOTALL).group(1)

    allowed = Server(exported_model, "--api-key", KEY, "--cors-allow-origin", origin)
    try:
        assert re.fullmatch(r"200 [0-9a-f]{32} pos", answer_in_browser(allowed))  # preflight passed, id readable
        assert '"method":"OPTIONS"' in allowed.log() or "OPTIONS /predict 200" in allowed.log()
    finally:
        assert allowed.stop() == 0
    other = Server(exported_model, "--api-key", KEY, "--cors-allow-origin", "http://127.0.0.1:1")
    try:
        assert answer_in_browser(other).startswith("blocked ")
    finally:
        assert other.stop() == 0
        page_server.shutdown()
