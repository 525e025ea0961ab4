"""An HTTP service for an exported model: `python -m hfx.serve --model models/export`.

FastAPI on uvicorn, ONNX Runtime (int8 by default) and a fast tokenizer or Pillow; no torch. Routes follow
Hugging Face text-embeddings-inference where they apply: POST /predict, GET /health, /info, /metrics
(Prometheus), /docs. An image model also takes the image itself as the body of POST /predict (any
`Content-Type` but JSON), as the Hub's inference API does. Concurrent requests are batched dynamically: while
the model runs one batch, the next one gathers (up to --max-batch-size inputs), is padded to its own longest
row and runs in a single worker thread, so the cores are never oversubscribed. The event loop only moves bytes:
parsing, image decoding and tokenization run in one more thread. A full queue answers 429 at once; bad input is
a 4xx with a one-line JSON error, never a 500.
"""

import argparse
import asyncio
import os
import signal
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError
from starlette.exceptions import HTTPException

from hfx.serving.folder import FORMATS, ModelError
from hfx.serving.handlers import InputError, TooLarge
from hfx.serving.model import LoadedModel


@dataclass
class Settings:
    model: str = "models/export"
    format: str = "int8"
    host: str = "127.0.0.1"
    port: int = 8000
    max_batch_size: int = 32  # inputs per model call, at most
    max_wait_ms: float = 0.0  # extra wait for more texts when the model is idle (0: run what is queued)
    max_client_batch_size: int = 32  # texts per request, as TEI
    max_body_bytes: int = 2_000_000  # as TEI
    max_queue: int = 512  # inputs waiting for the model; beyond, 429 (at least --max-client-batch-size)
    threads: int = 0  # ONNX Runtime threads; 0: one per available core


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    inputs: object = Field(
        description="a text, or a list of texts (image models: base64-encoded images)", examples=["a moving film"]
    )
    raw_scores: StrictBool = Field(False, description="logits instead of probabilities (text classification)")
    truncate: StrictBool = Field(True, description="cut texts to the max input length; false: 413 instead")
    top_k: StrictInt | None = Field(None, ge=1, description="the k best labels (text classification; default: all)")


class Rejected(Exception):
    def __init__(self, status: int, message: str, kind: str):
        super().__init__(message)
        self.status, self.kind = status, kind


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "hfx_requests", "HTTP requests by route and status", ["route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "hfx_request_duration_seconds",
            "HTTP request latency",
            ["route"],
            registry=self.registry,
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5),
        )
        self.batch_size = Histogram(
            "hfx_batch_size", "inputs per model call", registry=self.registry, buckets=(1, 2, 4, 8, 16, 32, 64, 128)
        )
        self.inference = Histogram(
            "hfx_inference_duration_seconds",
            "model call latency",
            registry=self.registry,
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1),
        )
        self.queue_depth = Gauge("hfx_queue_depth", "texts waiting for the model", registry=self.registry)


class Batcher:
    """Groups the rows of concurrent requests into model calls of at most --max-batch-size rows, one call at a
    time, off the event loop. A request larger than that is split across calls."""

    def __init__(self, model: LoadedModel, settings: Settings, metrics: Metrics):
        self.model, self.settings, self.metrics = model, settings, metrics
        self.waiting: deque = deque()  # (rows, future): each at most max_batch_size rows
        self.pending = 0
        self.wakeup = asyncio.Event()
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")

    async def submit(self, rows: list) -> list[np.ndarray]:
        if len(rows) > self.settings.max_queue:
            raise Rejected(
                413,
                f"{len(rows)} inputs, more than the queue ever holds ({self.settings.max_queue}); send fewer at a time",
                "PayloadTooLarge",
            )
        if self.pending + len(rows) > self.settings.max_queue:
            raise Rejected(
                429,
                f"the queue is full ({self.pending} inputs waiting, max {self.settings.max_queue}); retry later",
                "Overloaded",
            )
        loop, size = asyncio.get_running_loop(), self.settings.max_batch_size
        futures = []
        for start in range(0, len(rows), size):
            futures.append(loop.create_future())
            self.waiting.append((rows[start : start + size], futures[-1]))
        self.pending += len(rows)
        self.metrics.queue_depth.set(self.pending)
        self.wakeup.set()
        return [logits for part in await asyncio.gather(*futures) for logits in part]

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self.wakeup.wait()
            self.wakeup.clear()
            if self.settings.max_wait_ms and self.pending < self.settings.max_batch_size:
                await asyncio.sleep(self.settings.max_wait_ms / 1000)
            while self.waiting:
                batch = [self.waiting.popleft()]
                size = len(batch[0][0])
                while self.waiting and size + len(self.waiting[0][0]) <= self.settings.max_batch_size:
                    batch.append(self.waiting.popleft())
                    size += len(batch[-1][0])
                rows = [row for item, _ in batch for row in item]
                start = time.perf_counter()
                try:
                    logits = await loop.run_in_executor(self.worker, self.model, rows, self.metrics.batch_size.observe)
                except Exception as exc:  # noqa: BLE001 - the requests in this batch get it; the server goes on
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    logits = None
                self.metrics.inference.observe(time.perf_counter() - start)
                self.pending -= len(rows)
                self.metrics.queue_depth.set(self.pending)
                offset = 0
                for item, future in batch:
                    if logits is not None and not future.done():
                        future.set_result(logits[offset : offset + len(item)])
                    offset += len(item)


class CountRequests:
    """Requests by route and status, and their latency, for /metrics (plain ASGI: the cheapest middleware)."""

    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), [500]

        async def send_and_record(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            route = scope["path"] if scope["path"] in ROUTES else "other"
            self.metrics.requests.labels(route, str(status[0])).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - start)


def error(status: int, message: str, kind: str) -> JSONResponse:
    return JSONResponse({"error": message, "error_type": kind}, status_code=status)


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise Rejected(413, f"the body is {int(declared):,} bytes, over the limit of {limit:,}", "PayloadTooLarge")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise Rejected(413, f"the body is over the limit of {limit:,} bytes", "PayloadTooLarge")
    return bytes(body)


def validation_message(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return (
        f"{where}: {first['msg']}" if first["type"] != "json_invalid" else f"the body is not valid JSON: {first['msg']}"
    )


def create_app(settings: Settings) -> FastAPI:
    model = LoadedModel(settings.model, settings.format, settings.threads or None)
    handler, info, metrics = model.handler, model.info, Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.batcher = Batcher(model, settings, metrics)
        app.state.reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="read")
        task = asyncio.create_task(app.state.batcher.run())
        yield
        task.cancel()  # uvicorn has finished every request in flight by now
        app.state.batcher.worker.shutdown()
        app.state.reader.shutdown()

    app = FastAPI(title="hfx", description=f"{info.task} with {info.name} ({settings.format})", lifespan=lifespan)

    app.add_middleware(CountRequests, metrics=metrics)

    @app.exception_handler(Rejected)
    async def rejected(request: Request, exc: Rejected):
        return error(exc.status, str(exc), exc.kind)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        return error(exc.status_code, str(exc.detail), "Http")

    @app.post(
        "/predict",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": PredictRequest.model_json_schema()}},
            }
        },
    )
    async def predict(request: Request):
        """Per input, labels with scores, best first (text and image classification) or entity spans (token
        classification): one result for an input, a list of them for a list of inputs. Image models also take
        one image as the raw body (`Content-Type: image/png`, `image/jpeg`...)."""
        body = await read_body(request, settings.max_body_bytes)
        content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        # Parsing, decoding and tokenizing take time in proportion to the body: never on the event loop.
        query, items, single, rows = await asyncio.get_running_loop().run_in_executor(
            request.app.state.reader, prepare, body, content_type
        )
        logits = await request.app.state.batcher.submit(rows)
        options = {name: getattr(query, name) for name in query.model_fields_set & handler.options}
        results = [handler.decode(*row, **options) for row in zip(logits, rows, items)]
        return JSONResponse(results[0] if single else results)

    def prepare(body: bytes, content_type: str) -> tuple:
        """(the request, its items, whether it sent a single one, their model rows), or Rejected (4xx)."""
        try:
            if content_type != "application/json" and hasattr(handler, "read_bytes"):
                return prepared(PredictRequest(inputs=""), [handler.read_bytes(body, "the body")], True)
            query = PredictRequest.model_validate_json(body)
            count = len(query.inputs) if isinstance(query.inputs, list) else 1
            if count > settings.max_client_batch_size:  # before anything is decoded
                raise Rejected(
                    413, f"batch of {count} inputs, over the limit of {settings.max_client_batch_size}", "Validation"
                )
            unused = sorted(query.model_fields_set - handler.options - {"inputs", "truncate"})
            if unused:
                raise Rejected(
                    422,
                    f"{unused[0]} does not apply to a {info.task} model; it takes inputs and truncate"
                    + "".join(f", {name}" for name in sorted(handler.options)),
                    "Validation",
                )
            return prepared(query, *handler.parse(query.inputs))
        except ValidationError as exc:
            raise Rejected(422, validation_message(exc), "Validation") from None
        except TooLarge as exc:
            raise Rejected(413, str(exc), "PayloadTooLarge") from None
        except InputError as exc:
            raise Rejected(422, str(exc), "Validation") from None

    def prepared(query: PredictRequest, items: list, single: bool) -> tuple:
        rows = handler.encode(items)
        if not query.truncate:
            too_long = [i for i, row in enumerate(rows) if handler.truncated(row)]
            if too_long:
                raise Rejected(
                    413,
                    f"inputs[{too_long[0]}] is longer than the max input length of {info.max_length}"
                    " tokens; send truncate: true to cut it",
                    "Validation",
                )
        return query, items, single, rows

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.get("/info")
    async def describe():
        return {
            "model_id": info.name,
            "model_folder": str(info.folder),
            "task": info.task,
            "labels": info.labels,
            "format": settings.format,
            "max_input_length": info.max_length,
            "test_metrics": info.test_metrics,
            "temperature": info.temperature,
            **{k: v for k, v in asdict(settings).items() if k.startswith("max_")},
        }

    @app.get("/metrics")
    async def prometheus():
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


ROUTES = {"/predict", "/health", "/info", "/metrics", "/docs", "/openapi.json"}


def parse_args(argv=None, prog: str = "python -m hfx.serve") -> Settings:
    defaults = Settings()
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=defaults.model, help="an exported model folder")
    parser.add_argument("--format", default=defaults.format, choices=[f for f in FORMATS if f != "pytorch"])
    for name, value in asdict(defaults).items():
        if name not in ("model", "format"):
            parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    settings = Settings(**vars(parser.parse_args(argv)))
    if min(settings.max_batch_size, settings.max_client_batch_size, settings.max_body_bytes, settings.max_queue) < 1:
        parser.error("the --max-* limits must be at least 1")
    if settings.max_queue < settings.max_client_batch_size:
        parser.error(
            f"--max-queue {settings.max_queue} is below --max-client-batch-size"
            f" {settings.max_client_batch_size}: a full-size request could never be queued"
        )
    return settings


def main(argv=None, prog: str = "python -m hfx.serve") -> None:
    import uvicorn

    os.environ.setdefault("OMP_NUM_THREADS", "1")  # ONNX Runtime sets its own threads; keep others from adding more
    settings = parse_args(argv, prog)
    try:
        app = create_app(settings)
    except ModelError as exc:
        raise SystemExit(f"error: {exc}") from None
    print(
        f"serve: {settings.model} ({app.description}) on http://{settings.host}:{settings.port}, docs at /docs",
        flush=True,
    )
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again under the handler it found: with
    # this one, a finished shutdown exits 0, as process managers expect of a clean stop.
    signal.signal(signal.SIGTERM, lambda *_: None)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=30,
    )


if __name__ == "__main__":
    main()
