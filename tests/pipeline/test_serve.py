"""`python -m hfx.serve`: a real uvicorn on 127.0.0.1 serving the tiny pipeline's exported folder, started through
tests/no_torch.py so that any import of torch ends it. Routes, scores against `transformers.pipeline`, dynamic
batching, a table of bad requests (a 4xx each, the server healthy after), backpressure, graceful shutdown."""

import json
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import given, settings

from tests.project import ROOT, stage_env
from tests.references import pipeline_as_served
from tests.served import NEGATIVE, POSITIVE, Server, request_bodies


@pytest.fixture(scope="module")
def server(exported_model):
    """int8, with small limits so the limit cases are cheap to send."""
    running = Server(exported_model, "--max-client-batch-size", 4, "--max-body-bytes", 4096)
    yield running
    assert running.stop() == 0, running.log()[-2000:]
    # The default log: one plain line a request, with its route, status and what it asked of the model.
    assert re.search(r"POST /predict 200 request_id=[0-9a-f]{32} model=export rows=1 tokens=\d+", running.log())


def test_routes(server):
    status, body = server.get("/health")
    assert status == 200 and json.loads(body) == {"status": "ok"}
    info = json.loads(server.get("/info")[1])
    assert info["task"] == "text-classification" and info["labels"] == ["neg", "pos"] and info["format"] == "int8"
    assert info["max_input_length"] == 128 and info["max_client_batch_size"] == 4 and info["max_body_bytes"] == 4096
    assert {"accuracy", "f1_macro"} <= set(info["test_metrics"])
    calibration = json.loads((Path(info["model_folder"]) / "calibration.json").read_text())
    assert info["temperature"] == calibration["temperature"]
    status, body = server.get("/docs")
    assert status == 200 and b"swagger" in body.lower()
    spec = json.loads(server.get("/openapi.json")[1])
    assert "inputs" in json.dumps(spec["paths"]["/predict"]["post"]["requestBody"])
    server.predict({"inputs": POSITIVE})
    metrics = server.get("/metrics")[1].decode()
    for name in (
        "hfx_requests_total",
        "hfx_request_duration_seconds_bucket",
        "hfx_batch_size_bucket",
        "hfx_queue_depth",
    ):
        assert name in metrics, name
    assert server.metric('hfx_requests_total{route="/predict",status="200"}') >= 1


def test_predict_one_text_and_a_batch(server):
    status, single = server.predict({"inputs": POSITIVE})
    assert status == 200 and [entry["label"] for entry in single] == ["pos", "neg"]
    assert single[0]["score"] > single[1]["score"] and abs(single[0]["score"] + single[1]["score"] - 1) < 1e-6
    status, batch = server.predict({"inputs": [NEGATIVE, POSITIVE], "top_k": 1})
    assert status == 200 and [[entry["label"] for entry in result] for result in batch] == [["neg"], ["pos"]]
    status, raw = server.predict({"inputs": POSITIVE, "raw_scores": True})
    assert status == 200 and abs(raw[0]["score"] + raw[1]["score"] - 1) > 1e-3, "logits, not probabilities"


def test_fp32_scores_match_transformers_pipeline_and_int8_labels_do(exported_model, server):
    texts = [POSITIVE, NEGATIVE, "a really quite moving story and a superb cast", "the ending was messy"]
    expected = pipeline_as_served("text-classification", exported_model, top_k=None)(texts)
    fp32 = Server(exported_model, "--format", "fp32")
    try:
        got = fp32.predict({"inputs": texts})[1]
    finally:
        assert fp32.stop() == 0
    for result, reference in zip(got, expected):
        assert [e["label"] for e in result] == [e["label"] for e in reference]
        assert all(abs(a["score"] - b["score"]) < 1e-4 for a, b in zip(result, reference))
    int8 = server.predict({"inputs": texts})[1]
    assert [r[0]["label"] for r in int8] == [r[0]["label"] for r in expected]


LONG = " ".join(["brilliant"] * 300)


BAD_REQUESTS = [  # (case, body, status)
    ("invalid json", b'{"inputs": ', 422),
    ("empty body", b"", 422),
    ("a list, not an object", b'["a film"]', 422),
    ("no inputs", b'{"text": "a film"}', 422),
    ("inputs null", b'{"inputs": null}', 422),
    ("inputs a number", b'{"inputs": 5}', 422),
    ("inputs an object", b'{"inputs": {"text": "a film"}}', 422),
    ("empty text", b'{"inputs": ""}', 422),
    ("blank text", b'{"inputs": "   "}', 422),
    ("empty batch", b'{"inputs": []}', 422),
    ("a number in the batch", b'{"inputs": ["a film", 3]}', 422),
    ("null in the batch", b'{"inputs": ["a film", null]}', 422),
    ("nested batch", b'{"inputs": [["a film"]]}', 422),
    ("unknown field", b'{"inputs": "a film", "temperature": 2}', 422),
    ("top_k zero", b'{"inputs": "a film", "top_k": 0}', 422),
    ("top_k a string", b'{"inputs": "a film", "top_k": "1"}', 422),
    ("raw_scores a string", b'{"inputs": "a film", "raw_scores": "yes"}', 422),
    ("truncate a number", b'{"inputs": "a film", "truncate": 1}', 422),
    ("batch over the limit", json.dumps({"inputs": ["a film"] * 5}).encode(), 413),
    ("body over the limit", json.dumps({"inputs": "a film " * 1000}).encode(), 413),
    ("too long without truncation", json.dumps({"inputs": LONG, "truncate": False}).encode(), 413),
]


@pytest.mark.parametrize("body, status", [case[1:] for case in BAD_REQUESTS], ids=[case[0] for case in BAD_REQUESTS])
def test_bad_request_is_a_4xx_with_one_line_and_the_server_goes_on(server, body, status):
    got, answer = server.request("POST", "/predict", body)
    assert got == status, answer
    error = json.loads(answer)
    assert set(error) == {"error", "error_type"} and error["error"] and "\n" not in error["error"]
    assert server.get("/health")[0] == 200
    assert server.predict({"inputs": POSITIVE})[0] == 200


def test_wrong_method_and_route_are_4xx(server):
    assert server.get("/predict")[0] == 405
    assert server.request("POST", "/nowhere", b"{}")[0] == 404
    status, result = server.predict({"inputs": LONG})
    assert status == 200 and result[0]["label"] == "pos", "truncated by default"


def test_concurrent_requests_are_batched(exported_model):
    batching = Server(exported_model, "--max-wait-ms", 50, "--format", "fp32")  # fp32 batches; dynamic int8 cannot
    try:
        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(lambda i: batching.predict({"inputs": POSITIVE if i % 2 else NEGATIVE}), range(16)))
        assert all(status == 200 for status, _ in results)
        assert [r[0]["label"] for _, r in results] == ["pos" if i % 2 else "neg" for i in range(16)]
        calls, texts = batching.metric("hfx_batch_size_count"), batching.metric("hfx_batch_size_sum")
        assert texts == 16 and calls < 16, f"16 concurrent texts went through {calls:.0f} model calls"
    finally:
        assert batching.stop() == 0


def test_a_full_queue_answers_429_at_once_and_the_rest_are_served(exported_model):
    queue_of_two = Server(exported_model, "--max-queue", 2, "--max-client-batch-size", 2, "--max-wait-ms", 500)
    try:
        with ThreadPoolExecutor(6) as pool:
            started = time.monotonic()
            results = list(pool.map(lambda _: (queue_of_two.predict({"inputs": POSITIVE}), time.monotonic()), range(6)))
        statuses = sorted(status for (status, _), _ in results)
        assert statuses.count(200) >= 2 and statuses.count(429) >= 1 and set(statuses) <= {200, 429}, statuses
        refused = [at - started for (status, _), at in results if status == 429]
        assert max(refused) < 0.45, "a refusal comes at once, not after the wait"
        assert queue_of_two.predict({"inputs": POSITIVE})[0] == 200
    finally:
        assert queue_of_two.stop() == 0


def test_a_queue_smaller_than_a_request_is_refused_at_start():
    """Such a queue would answer a full-size request 429 forever, a refusal no retry gets past."""
    result = subprocess.run(
        [sys.executable, "-m", "hfx.serve", "--model", "nowhere", "--max-queue", "8"],
        cwd=ROOT,
        env=stage_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "--max-queue 8 is below --max-client-batch-size 32" in result.stderr


def test_max_batch_size_caps_every_model_call_and_the_metric_counts_inputs_per_call(exported_model):
    capped = Server(exported_model, "--max-batch-size", 2, "--format", "fp32")
    try:
        texts = [POSITIVE, NEGATIVE] * 4
        status, results = capped.predict({"inputs": texts})
        assert status == 200 and [r[0]["label"] for r in results] == ["pos", "neg"] * 4
        calls, inputs = capped.metric("hfx_batch_size_count"), capped.metric("hfx_batch_size_sum")
        at_most_two = next(
            float(line.split()[-1])
            for line in capped.get("/metrics")[1].decode().splitlines()
            if line.startswith('hfx_batch_size_bucket{le="2.0",')
        )
        assert inputs == 8 and calls >= 4 and at_most_two == calls, (calls, at_most_two)
    finally:
        assert capped.stop() == 0


def test_sigterm_during_a_burst_finishes_every_accepted_request_and_exits_0(exported_model):
    """Thirty requests sit in the batcher's queue when SIGTERM comes: each gets its answer, and the server exits 0.
    A thread started is not a request accepted (a slow machine may not have sent it yet), so the signal waits
    until the server holds all thirty: a long --max-wait-ms keeps them queued."""
    burst = Server(exported_model, "--max-wait-ms", 4000, ready="/ready")  # warm: no request gets a 503
    outcomes = {}

    def send(i):
        try:
            outcomes[i] = burst.predict({"inputs": POSITIVE if i % 2 else NEGATIVE})[0]
        except OSError as error:  # refused or reset: a connection the server never accepted, or closed
            outcomes[i] = repr(error)

    before = [threading.Thread(target=send, args=(i,)) for i in range(30)]
    for thread in before:
        thread.start()
    deadline = time.monotonic() + 30
    while (queued := burst.metric("hfx_queue_depth")) < 30 and time.monotonic() < deadline:
        time.sleep(0.005)
    burst.process.send_signal(signal.SIGTERM)
    assert queued == 30, f"only {queued} of 30 requests reached the queue within its 4 s wait"
    after = [threading.Thread(target=send, args=(i,)) for i in range(30, 40)]
    for thread in after:
        thread.start()
    for thread in before + after:
        thread.join(60)
    assert burst.process.wait(timeout=60) == 0, burst.log()[-2000:]
    accepted = [outcomes[i] for i in range(30)]
    assert accepted == [200] * 30, f"requests accepted before SIGTERM: {accepted}"
    assert not [o for i, o in outcomes.items() if i >= 30 and isinstance(o, int) and o != 200], outcomes


@settings(max_examples=200, deadline=None)
@given(request_bodies())
def test_every_generated_body_gets_an_answer_below_500(server, body):
    status, answer = server.request("POST", "/predict", json.dumps(body).encode())
    assert status < 500, (body, answer)


def test_parallel_calls_give_each_text_the_answer_it_gets_alone(exported_model):
    """Under concurrent load, two int8 model calls at a time (one ONNX Runtime thread each) answer each text as
    the same server does when the text comes alone; /info says how the cores are shared."""
    texts = [POSITIVE, NEGATIVE, "an ok film", "the cast was fine but the ending dragged on and on", "superb"] * 4
    parallel = Server(exported_model, "--parallel-calls", 2, "--threads", 1, "--preprocess-threads", 1)
    try:
        plan = json.loads(parallel.get("/info")[1])["threads"]
        assert {k: plan[k] for k in ("preprocess", "parallel_calls", "onnx")} == {
            "preprocess": 1,
            "parallel_calls": 2,
            "onnx": 1,
        }
        alone = {text: parallel.predict({"inputs": text})[1] for text in set(texts)}
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda text: parallel.predict({"inputs": text}), texts))
        assert [answer for _, answer in answers] == [alone[text] for text in texts]
    finally:
        assert parallel.stop() == 0
