"""What the HTTP service tells its operator: Prometheus metrics, a request id and timing headers on every answer,
and one log line per request (JSON with --json-logs). A log line never holds an input or a credential."""

import json
import logging
import re
import time
import uuid
from datetime import UTC, datetime
from types import SimpleNamespace

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LOG = logging.getLogger("hfx.serve")
REQUEST_ID = re.compile(r"[\w.:-]{1,128}")  # an id a client sends is echoed only if it is this safe to log
TIMING_HEADERS = ("x-compute-time", "x-tokenization-time", "x-queue-time", "x-inference-time")  # as TEI, in ms
SECONDS = (  # latency histogram buckets, in seconds
    0.001,
    0.002,
    0.005,
    0.01,
    0.02,
    0.05,
    0.1,
    0.2,
    0.5,
    1,
    2,
    5,
)


class Metrics:
    """The service's Prometheus metrics; the model ones carry a `model` label."""

    def __init__(self):
        self.registry = CollectorRegistry()
        registry = self.registry
        self.requests = Counter(
            "hfx_requests", "HTTP requests by route and status", ["route", "status"], registry=registry
        )
        self.latency = Histogram(
            "hfx_request_duration_seconds", "HTTP request latency", ["route"], registry=registry, buckets=SECONDS
        )
        self.rejected = Counter("hfx_rejected_requests", "requests refused, by reason", ["reason"], registry=registry)
        self.batch_size = Histogram(
            "hfx_batch_size",
            "inputs per model call",
            ["model"],
            registry=registry,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
        )
        self.batch_tokens = Histogram(
            "hfx_batch_tokens",
            "padded tokens per model call (rows x the longest row; an image counts 1)",
            ["model"],
            registry=registry,
            buckets=(16, 64, 256, 1024, 4096, 16384, 65536),
        )
        self.inference = Histogram(
            "hfx_inference_duration_seconds", "model call latency", ["model"], registry=registry, buckets=SECONDS
        )
        self.queue_time = Histogram(
            "hfx_queue_duration_seconds",
            "a request's wait for the model",
            ["model"],
            registry=registry,
            buckets=SECONDS,
        )
        self.queue_depth = Gauge("hfx_queue_depth", "inputs waiting for the model", ["model"], registry=registry)

    def for_model(self, name: str) -> SimpleNamespace:
        """The model metrics with their `model` label set, as one model's batcher records them."""
        names = ("batch_size", "batch_tokens", "inference", "queue_time", "queue_depth")
        return SimpleNamespace(**{metric: getattr(self, metric).labels(name) for metric in names})


def request_id(headers: list[tuple[bytes, bytes]]) -> str:
    """The client's `x-request-id` when it is a safe token, else a new one."""
    for name, value in headers:
        if name == b"x-request-id":
            given = value.decode("latin-1")
            return given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
    return uuid.uuid4().hex


def route_of(scope, routes: set[str]) -> str:
    """The route's template (`/models/{name}/predict`), so a label never holds what a client typed."""
    matched = getattr(scope.get("route"), "path", None) or scope["path"]  # refused before routing: the path
    return matched if matched in routes else "other"


def log_line(record: dict, as_json: bool) -> str:
    if as_json:
        return json.dumps(record, separators=(",", ":"))
    extra = " ".join(
        f"{key}={value}" for key, value in record.items() if key not in {"time", "method", "route", "status"}
    )
    return f"{record['time']} {record['method']} {record['route']} {record['status']} {extra}"


class RequestLog:
    """Plain ASGI middleware (the cheapest kind), outermost: gives each request an id, adds the id and the
    timings the route recorded (`scope["state"]["timing"]`, ms) to the answer's headers, counts the request
    for /metrics and logs one line."""

    def __init__(self, app, metrics: Metrics, routes: set[str], json_logs: bool):
        self.app, self.metrics, self.routes, self.json_logs = app, metrics, routes, json_logs

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), [500]
        rid = request_id(scope["headers"])
        state = scope.setdefault("state", {})
        state["request_id"] = rid

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                timing = state.get("timing") or {}
                extra = [(b"x-request-id", rid.encode())] + [
                    (name.encode(), f"{timing[name]:.3f}".encode()) for name in TIMING_HEADERS if name in timing
                ]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            elapsed = time.perf_counter() - start
            route = route_of(scope, self.routes)
            self.metrics.requests.labels(route, str(status[0])).inc()
            self.metrics.latency.labels(route).observe(elapsed)
            if "rejected" in state:  # set where a request is refused: Unauthorized, Overloaded, Validation...
                self.metrics.rejected.labels(state["rejected"]).inc()
            record = {
                "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "request_id": rid,
                "method": scope["method"],
                "route": route,
                "status": status[0],
                **state.get("log", {}),
                **{
                    name.removeprefix("x-").replace("-", "_") + "_ms": round(v, 3)
                    for name, v in (state.get("timing") or {}).items()
                },
                "duration_ms": round(1000 * elapsed, 3),
            }
            LOG.info(log_line(record, self.json_logs))


def configure_logging() -> None:
    """One line per record on stderr, as written by `log_line`."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    LOG.addHandler(handler)
    LOG.setLevel(logging.INFO)
    LOG.propagate = False
