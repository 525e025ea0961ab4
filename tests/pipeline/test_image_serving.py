"""`predict` and `serve` on an exported image model (tests/pipeline/conftest.py's image_repo): pixels as transformers'
processor makes them, files, folders and tables of paths, raw and base64 bodies, bad and oversized images."""

import io

import numpy as np
import pytest
from PIL import Image as PILImage

from tests.corpora import png


def write_images(folder, rng, labels):
    """PNGs drawn as the training images were: dark, bright or striped."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, label in enumerate(labels):
        pixels = rng.integers(0, 60, (28, 28)).astype(np.uint8)
        if label == 1:
            pixels += 150
        elif label == 2:
            pixels[:, ::4] = 255
        paths.append(folder / f"{i}-{label}.png")
        PILImage.fromarray(pixels).save(paths[-1])
    return paths


def test_predict_labels_files_a_folder_and_a_csv_of_paths_as_the_pipeline_does(image_repo, tmp_path):
    import json
    import subprocess
    import sys

    import pandas as pd

    from tests.project import ROOT, stage_env
    from tests.references import pipeline_as_served

    repo, result = image_repo
    export = repo / "models/export"
    paths = write_images(tmp_path / "images", np.random.default_rng(5), [0, 1, 2, 1])
    (tmp_path / "images" / "broken.png").write_bytes(png("L")[:30])

    def predict(*args):
        out = subprocess.run(
            [
                sys.executable,
                str(ROOT / "tests/no_torch.py"),
                "-m",
                "hfx.predict",
                *map(str, args),
                "--model",
                export,
                "--format",
                "fp32",
            ],
            cwd=ROOT,
            env=stage_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        return [json.loads(line) for line in out.stdout.splitlines()], out.stderr

    expected = pipeline_as_served("image-classification", export)([str(p) for p in paths])
    files, _ = predict(*paths)
    assert [row["image"] for row in files] == [str(p) for p in paths]
    assert (
        [row["label"] for row in files] == [e[0]["label"] for e in expected] == ["dark", "bright", "striped", "bright"]
    )
    assert all(abs(row["score"] - e[0]["score"]) < 1e-4 for row, e in zip(files, expected))
    folder, warnings = predict(tmp_path / "images")  # sorted paths; the cut-short file is reported and skipped
    assert [row["label"] for row in folder] == ["dark", "bright", "striped", "bright"]
    assert "broken.png cannot be decoded" in warnings or "broken.png is not an image" in warnings
    table = tmp_path / "images.csv"
    pd.DataFrame({"id": [1, 2], "file": ["images/0-0.png", "images/2-2.png"]}).to_csv(table, index=False)
    rows, _ = predict(table, "--image-column", "file", "--output", tmp_path / "labelled.csv")
    assert pd.read_csv(tmp_path / "labelled.csv")[["id", "label"]].values.tolist() == [[1, "dark"], [2, "striped"]]


def test_serve_takes_raw_and_base64_images_and_answers_bad_ones_with_a_4xx(image_repo, tmp_path):
    import base64
    import json

    from tests.served import Server

    repo, result = image_repo
    dark, bright = (path.read_bytes() for path in write_images(tmp_path, np.random.default_rng(6), [0, 1]))
    server = Server(repo / "models/export")
    try:
        status, body = server.request("POST", "/predict", dark, headers={"Content-Type": "image/png"})
        assert status == 200 and json.loads(body)[0]["label"] == "dark"
        status, batch = server.predict(
            {
                "inputs": [
                    base64.b64encode(bright).decode(),
                    "data:image/png;base64," + base64.b64encode(dark).decode(),
                ],
                "top_k": 1,
            }
        )
        assert status == 200 and [r[0]["label"] for r in batch] == ["bright", "dark"]
        huge = io.BytesIO()
        PILImage.new("L", (8000, 6000)).save(huge, format="PNG")  # 48M pixels, a few kB of PNG
        big = io.BytesIO()
        PILImage.new("L", (6000, 5000)).save(big, format="PNG")
        for payload, headers, expected in (
            (b"not an image", {"Content-Type": "image/png"}, 422),
            (b"", {"Content-Type": "image/jpeg"}, 422),
            (dark[:40], {"Content-Type": "image/png"}, 422),
            (huge.getvalue(), {"Content-Type": "image/png"}, 413),
            (json.dumps({"inputs": "%%% not base64"}).encode(), {}, 422),
            (json.dumps({"inputs": [base64.b64encode(b"text").decode()]}).encode(), {}, 422),
            (json.dumps({"inputs": 3}).encode(), {}, 422),
            (json.dumps({"inputs": "data:image/png;base64"}).encode(), {}, 422),  # no comma
            (
                json.dumps(
                    {"inputs": ["data:image/png;base64," + base64.b64encode(big.getvalue()).decode()] * 2}
                ).encode(),
                {},
                413,
            ),
        ):  # 30M pixels each: together over the 40M of a request
            status, answer = server.request("POST", "/predict", payload, headers=headers)
            assert status == expected, (payload[:20], answer)
            assert "\n" not in json.loads(answer)["error"]
        info = json.loads(server.get("/info")[1])
        assert info["task"] == "image-classification" and info["labels"] == ["dark", "bright", "striped"]
        assert server.get("/health")[0] == 200
    finally:
        assert server.stop() == 0


def test_health_answers_at_once_while_the_largest_request_is_decoded(image_repo):
    """32 bilevel PNGs of 6000x6000 pixels fit in the 2 MB body limit. The request is refused once its images
    pass 40M pixels together, and whatever is decoded is decoded off the event loop: /health answers within
    100 ms throughout."""
    import base64
    import json
    import threading
    import time

    from tests.served import Server

    repo, _ = image_repo
    sheet = io.BytesIO()
    PILImage.new("1", (6000, 6000)).save(sheet, format="PNG")
    body = json.dumps({"inputs": [base64.b64encode(sheet.getvalue()).decode()] * 32}).encode()
    assert len(body) < 2_000_000
    server = Server(repo / "models/export")
    try:
        outcome = {}
        sender = threading.Thread(target=lambda: outcome.update(answer=server.request("POST", "/predict", body)))
        sender.start()
        waits = []
        while sender.is_alive() or not waits:
            start = time.perf_counter()
            assert server.get("/health")[0] == 200
            waits.append(time.perf_counter() - start)
            time.sleep(0.01)
        sender.join()
        status, answer = outcome["answer"]
        assert status == 413 and "pixels a request" in json.loads(answer)["error"]
        assert max(waits) < 0.1, f"/health took {max(waits) * 1000:.0f} ms while the request was read"
    finally:
        assert server.stop() == 0


@pytest.fixture(scope="module")
def image_server(image_repo):
    from tests.served import Server

    running = Server(image_repo[0] / "models/export", "--max-client-batch-size", 4)
    yield running
    assert running.stop() == 0


def test_every_generated_body_gets_an_answer_below_500_from_an_image_model(image_server):
    """Generated bodies, with strings shaped like base64 images and data URLs: never a 500."""
    import json

    from hypothesis import given, settings

    from tests.served import request_bodies

    @settings(max_examples=150, deadline=None)
    @given(request_bodies(image_like=True))
    def check(body):
        status, answer = image_server.request("POST", "/predict", json.dumps(body).encode())
        assert status < 500, (body, answer)

    check()
    assert image_server.get("/health")[0] == 200


@pytest.mark.parametrize("fmt", ["pytorch", "fp32", "int8"])
def test_predict_over_the_test_images_gets_exactly_the_accuracy_export_reports(image_repo, tmp_path, fmt):
    """The test split's images as files a user has, through `python -m hfx.predict` on their folder."""
    import json
    import subprocess
    import sys

    import pandas as pd

    from tests.project import ROOT, stage_env

    repo, _ = image_repo
    test = pd.read_parquet(repo / "data/raw/test.parquet")
    for i, image in enumerate(test["image"]):
        (tmp_path / f"{i:05d}.png").write_bytes(image["bytes"])
    result = subprocess.run(
        [sys.executable, "-m", "hfx.predict", str(tmp_path), "--model", str(repo / "models/export"), "--format", fmt],
        cwd=ROOT,
        env=stage_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    predicted = [json.loads(line)["label"] for line in result.stdout.splitlines()]
    accuracy = float(np.mean([p == gold for p, gold in zip(predicted, test["label"])]))
    assert len(predicted) == len(test)
    assert accuracy == json.loads((repo / "metrics/export.json").read_text())["accuracy"][fmt]
    if fmt == "pytorch":  # evaluate scores the fine-tuned folder through the same serving code
        assert accuracy == json.loads((repo / "metrics/eval.json").read_text())["accuracy"]
