"""An HTTP service for exported models: `python -m hfx.serve --model models/export`.

FastAPI on uvicorn, ONNX Runtime (int8 by default) and a fast tokenizer or Pillow; no torch. Routes follow
Hugging Face text-embeddings-inference where they apply: POST /predict, GET /health, /ready, /info, /metrics
(Prometheus), /docs; with several models (`--model NAME=PATH`, repeated), GET /models and POST
/models/{name}/predict. An image model also takes the image itself as the body of POST /predict (any
`Content-Type` but JSON), as the Hub's inference API does. Concurrent requests are batched dynamically
(hfx/serving/batcher.py); the event loop only moves bytes: parsing, image decoding and tokenization run in
preprocessing threads and model calls in worker threads, sized together from the cores
(hfx/serving/threads.py). A full queue answers 429 at once; bad input is a 4xx with a one-line JSON error,
never a 500. For operators: an API key, CORS origins, JSON logs, a request id and timing headers on every
answer, readiness after warmup and while draining, and a reload of every folder on SIGHUP.
"""

import argparse
import os
import signal
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from fastapi import FastAPI, Request
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware

from hfx.serving.access import RequireKey, cors_options
from hfx.serving.batcher import Rejected
from hfx.serving.folder import FORMATS, ModelError
from hfx.serving.lifecycle import DrainingServer, lifespan_of
from hfx.serving.requests import error
from hfx.serving.routes import ROUTES, admin, router
from hfx.serving.served_models import Batching, ModelSet
from hfx.serving.telemetry import TIMING_HEADERS, Metrics, RequestLog, configure_logging
from hfx.serving.threads import plan_threads, quiet_other_pools


@dataclass
class Settings:
    model: list[str] = field(default_factory=lambda: ["models/export"])  # PATH or NAME=PATH, one per model
    format: str = "int8"
    host: str = "127.0.0.1"
    port: int = 8000
    max_batch_size: int = 32  # inputs per model call, at most
    max_batch_tokens: int = 16384  # padded tokens per model call, at most (rows x the longest), as TEI
    max_wait_ms: float = 0.0  # extra wait for more texts when the model is idle (0: run what is queued)
    max_client_batch_size: int = 32  # texts per request, as TEI
    max_top_k: int = 20  # answers a question answering request may ask for (top_k); each costs a search per window
    max_body_bytes: int = 2_000_000  # as TEI
    max_queue: int = 512  # inputs waiting for a model; beyond, 429 (at least --max-client-batch-size)
    threads: int = 0  # ONNX Runtime threads per model call; 0: the cores shared among --parallel-calls
    parallel_calls: int = 0  # model calls running at once per model; 0: see hfx/serving/threads.py
    preprocess_threads: int = 0  # threads parsing and tokenizing requests; 0: one per four cores (at least one)
    default_model: str | None = None  # the model /predict answers with; default: the first
    api_key: str | None = None  # every route but /health needs `Authorization: Bearer <key>`
    cors_allow_origin: list[str] = field(default_factory=list)  # browser origins that may call the service
    json_logs: bool = False
    drain_s: float = 0.0  # on SIGTERM: /ready answers 503 this long before the server stops taking requests

    def folders(self) -> dict[str, str]:
        """{name: folder}: NAME=PATH as given, a bare PATH named after its folder."""
        named = {}
        for spec in self.model:
            name, sep, path = spec.partition("=")
            name, path = (name, path) if sep else (os.path.basename(os.path.normpath(spec)), spec)
            if name in named:
                raise ModelError(f"--model: the name '{name}' is given twice; name each model: --model NAME=PATH")
            named[name] = path
        return named


def create_app(settings: Settings) -> FastAPI:
    """The service: its models loaded (a folder that cannot be served is a ModelError), the thread plan, the
    middleware (outermost last: the request log, CORS, the key) and the routes (hfx/serving/routes.py). The
    models warm up once the app starts (hfx/serving/lifecycle.py)."""
    metrics = Metrics()
    batching = Batching(settings.max_batch_size, settings.max_batch_tokens, settings.max_queue, settings.max_wait_ms)
    plan = plan_threads(settings.preprocess_threads, settings.parallel_calls, settings.threads)
    models = ModelSet(settings.folders(), settings.format, plan, batching, metrics, settings.default_model)
    preprocess = ThreadPoolExecutor(max_workers=plan.preprocess, thread_name_prefix="preprocess")
    info = models.models[models.default].model.info
    app = FastAPI(
        title="hfx",
        description=f"{info.task} with {info.name} ({settings.format})",
        lifespan=lifespan_of(models, preprocess),
    )
    app.state.settings, app.state.models, app.state.metrics, app.state.threads = settings, models, metrics, plan
    app.state.preprocess, app.state.draining, app.state.logged_problems = preprocess, False, None
    if settings.api_key:
        app.add_middleware(RequireKey, key=settings.api_key)
    if settings.cors_allow_origin:  # outside the key check: a browser's preflight carries no key
        app.add_middleware(CORSMiddleware, **cors_options(settings.cors_allow_origin, TIMING_HEADERS))
    app.add_middleware(RequestLog, metrics=metrics, routes=ROUTES, json_logs=settings.json_logs)
    app.add_exception_handler(Rejected, rejected)
    app.add_exception_handler(HTTPException, http_error)
    app.include_router(router)
    if settings.api_key:
        app.include_router(admin)
    return app


async def rejected(request: Request, exc: Rejected):
    request.state.rejected = exc.kind
    return error(exc.status, str(exc), exc.kind)


async def http_error(request: Request, exc: HTTPException):
    return error(exc.status_code, str(exc.detail), "Http")


def parse_args(argv=None, prog: str = "python -m hfx.serve") -> Settings:
    defaults = Settings()
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model",
        action="append",
        metavar="[NAME=]PATH",
        help="an exported model folder; repeat as NAME=PATH to serve several (default: models/export)",
    )
    parser.add_argument("--format", default=defaults.format, choices=[f for f in FORMATS if f != "pytorch"])
    for name, value in asdict(defaults).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) or name == "host":
            parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    parser.add_argument("--default-model", help="the model POST /predict answers with (default: the first)")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("HFX_API_KEY"),
        help="require `Authorization: Bearer <key>` on every route but /health (default: $HFX_API_KEY)",
    )
    parser.add_argument(
        "--cors-allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="a browser origin allowed to call the service, e.g. https://app.example.com (repeatable)",
    )
    parser.add_argument("--json-logs", action="store_true", help="one JSON line per request (default: one plain line)")
    args = vars(parser.parse_args(argv))
    args["model"] = args["model"] or defaults.model
    settings = Settings(**args)
    limits = (
        settings.max_batch_size,
        settings.max_batch_tokens,
        settings.max_client_batch_size,
        settings.max_queue,
        settings.max_top_k,
    )
    if min(*limits, settings.max_body_bytes) < 1:
        parser.error("the --max-* limits must be at least 1")
    if settings.max_queue < settings.max_client_batch_size:
        parser.error(
            f"--max-queue {settings.max_queue} is below --max-client-batch-size"
            f" {settings.max_client_batch_size}: a full-size request could never be queued"
        )
    if settings.api_key is not None and len(settings.api_key) < 16:
        parser.error("--api-key (or HFX_API_KEY) must be at least 16 characters; `openssl rand -hex 32` makes one")
    return settings


def main(argv=None, prog: str = "python -m hfx.serve") -> None:
    quiet_other_pools()
    settings = parse_args(argv, prog)
    configure_logging()
    try:
        app = create_app(settings)
    except ModelError as exc:
        raise SystemExit(f"error: {exc}") from None
    names = ", ".join(f"{name}={path}" for name, path in settings.folders().items())
    print(
        f"serve: {names} ({app.description}) on http://{settings.host}:{settings.port}, docs at /docs"
        + (", API key required" if settings.api_key else ""),
        flush=True,
    )
    print(f"serve: {app.state.threads.describe()}", flush=True)
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again under the handler it found: with
    # this one, a finished shutdown exits 0, as process managers expect of a clean stop.
    signal.signal(signal.SIGTERM, lambda *_: None)
    DrainingServer(app, settings.host, settings.port, settings.drain_s).run()


if __name__ == "__main__":
    main()
