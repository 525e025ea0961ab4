"""`hfx serve` as a user starts it: a real uvicorn on a free loopback port, through tests/no_torch.py so that any
import of torch ends it; and request bodies of every shape for the property tests."""

import base64
import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from hypothesis import strategies as st

from tests.project import ROOT, stage_env

POSITIVE, NEGATIVE = "the film was brilliant and superb", "the plot was dull and tedious"


class Server:
    """A real server on a free port; its log (one line per request) goes to a file, which a pipe nobody reads
    would fill up and block on."""

    def __init__(self, model, *args, env: dict | None = None, ready: str = "/health"):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_file = tempfile.NamedTemporaryFile("w+", prefix="hfx-serve-", suffix=".log")
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "tests/no_torch.py"),
                "-m",
                "hfx.serve",
                *(["--model", str(model)] if model else []),
                "--port",
                str(self.port),
                *map(str, args),
            ],
            cwd=ROOT,
            env={**stage_env(), **(env or {})},
            stdout=subprocess.PIPE,
            stderr=self.log_file,
            text=True,
        )
        deadline = time.monotonic() + 120  # a loaded CI machine can take a while to import
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log()
            try:
                if self.get(ready)[0] == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("the server did not start within 120 s")

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        request = urllib.request.Request(
            self.url + path, data=body, method=method, headers={"Content-Type": "application/json", **(headers or {})}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def get(self, path: str):
        return self.request("GET", path)

    def predict(self, payload) -> tuple[int, object]:
        status, body = self.request("POST", "/predict", json.dumps(payload).encode())
        return status, json.loads(body)

    def metric(self, name: str) -> float:
        text = self.get("/metrics")[1].decode()
        return sum(
            float(line.split()[-1])
            for line in text.splitlines()
            if line.startswith(name + " ") or line.startswith(name + "{")
        )

    def log(self) -> str:
        return Path(self.log_file.name).read_text()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)


def request_bodies(image_like: bool = False):
    """JSON bodies of every shape: any JSON value, or an object with `inputs` and the options, of any types.
    `image_like` adds strings an image model half-accepts: base64, data URLs with and without their comma."""
    strings = st.text(max_size=20)
    if image_like:
        strings = st.one_of(
            strings,
            st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode()),
            st.sampled_from(["data:", "data:image/png;base64", "data:image/png;base64,", "data:,"]),
            st.binary(max_size=40).map(lambda b: "data:image/png;base64," + base64.b64encode(b).decode()),
        )
    scalars = st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), strings
    )
    values = st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
        max_leaves=8,
    )
    requests = st.fixed_dictionaries(
        {"inputs": values}, optional={"top_k": values, "raw_scores": values, "truncate": values, "extra": values}
    )
    return st.one_of(values, requests)
