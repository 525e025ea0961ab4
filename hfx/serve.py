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
import asyncio
import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware

from hfx.serving.access import RequireKey, cors_options, has_key
from hfx.serving.batcher import Rejected
from hfx.serving.folder import FORMATS, ModelError
from hfx.serving.models import Batching, ModelSet, ServedModel
from hfx.serving.requests import PredictRequest, answer, error, read_body
from hfx.serving.telemetry import LOG, TIMING_HEADERS, Metrics, RequestLog, configure_logging
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


def model_entry(served: ServedModel) -> dict:
    info = served.model.info
    return {
        "name": served.name,
        "task": info.task,
        "labels": info.labels,
        "folder": str(info.folder),
        "ready": served.ready,
    }


PREDICT_BODY = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": PredictRequest.model_json_schema()}}}
}


def create_app(settings: Settings) -> FastAPI:
    metrics = Metrics()
    batching = Batching(settings.max_batch_size, settings.max_batch_tokens, settings.max_queue, settings.max_wait_ms)
    plan = plan_threads(settings.preprocess_threads, settings.parallel_calls, settings.threads)
    models = ModelSet(settings.folders(), settings.format, plan, batching, metrics, settings.default_model)
    default = models.models[models.default]
    preprocess = ThreadPoolExecutor(max_workers=plan.preprocess, thread_name_prefix="preprocess")

    async def reload() -> list[str]:
        errors = await models.reload()
        for message in errors:
            print(f"serve: reload kept the old model of {message}", flush=True)
        return errors

    reloads = set()  # SIGHUP's reloads in flight, held so that none is collected before it ends

    def reload_on_signal() -> None:
        task = asyncio.ensure_future(reload())
        reloads.add(task)
        task.add_done_callback(reported)

    def reported(task: asyncio.Task) -> None:
        reloads.discard(task)
        if not task.cancelled() and task.exception() is not None:
            LOG.error("serve: reload failed, the old models answer on: %s", task.exception())

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.draining = False
        loop = asyncio.get_running_loop()
        try:  # SIGHUP reloads every folder (the main thread's loop only)
            loop.add_signal_handler(signal.SIGHUP, reload_on_signal)
        except (NotImplementedError, RuntimeError, ValueError):
            pass
        warmup = asyncio.create_task(models.start())  # /health answers while the models warm; /ready waits
        yield
        for task in (warmup, *reloads):  # uvicorn has finished every request in flight by now
            task.cancel()
        await asyncio.gather(warmup, *reloads, return_exceptions=True)
        await models.stop()
        preprocess.shutdown()

    info = default.model.info
    app = FastAPI(title="hfx", description=f"{info.task} with {info.name} ({settings.format})", lifespan=lifespan)
    app.state.threads = plan
    if settings.api_key:
        app.add_middleware(RequireKey, key=settings.api_key)
    if settings.cors_allow_origin:  # outside the key check: a browser's preflight carries no key
        app.add_middleware(CORSMiddleware, **cors_options(settings.cors_allow_origin, TIMING_HEADERS))
    app.add_middleware(RequestLog, metrics=metrics, routes=ROUTES, json_logs=settings.json_logs)

    @app.exception_handler(Rejected)
    async def rejected(request: Request, exc: Rejected):
        request.state.rejected = exc.kind
        return error(exc.status, str(exc), exc.kind)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        return error(exc.status_code, str(exc.detail), "Http")

    async def respond(request: Request, served: ServedModel) -> JSONResponse:
        body = await read_body(request, settings.max_body_bytes)
        content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        answered = await answer(served, body, content_type, settings, preprocess)
        request.state.log, request.state.timing = answered.log, answered.timing
        return JSONResponse(answered.body)

    @app.post("/predict", openapi_extra=PREDICT_BODY)
    async def predict(request: Request):
        """Per input, labels with scores, best first (text and image classification) or entity spans (token
        classification): one result for an input, a list of them for a list of inputs. Image models also take
        one image as the raw body (`Content-Type: image/png`, `image/jpeg`...). Answered by the default model."""
        return await respond(request, default)

    @app.post("/models/{name}/predict", openapi_extra=PREDICT_BODY)
    async def predict_with(name: str, request: Request):
        """/predict, answered by the model named `name` (GET /models lists them)."""
        if name not in models.models:
            raise Rejected(404, f"no model named '{name}'; models: {', '.join(models.models)}", "NotFound")
        return await respond(request, models.models[name])

    @app.get("/models")
    async def list_models():
        return {"default": models.default, "models": [model_entry(served) for served in models.models.values()]}

    logged_problems = [None]  # what /health last logged, so that a probe every few seconds logs a change once

    @app.get("/health")
    async def health(request: Request):
        """Liveness: 503 when a model cannot answer (its batcher stopped, or a file it reads is gone). It needs no
        key: without one it says only what failed; the models and files go to the log (and to a caller with the
        key)."""
        problems = [p for p in (served.problem() for served in models.models.values()) if p]
        if not problems:
            return {"status": "ok"}
        detail = "; ".join(full for _, full in problems)
        if detail != logged_problems[0]:
            LOG.warning("serve: unhealthy: %s", detail)
            logged_problems[0] = detail
        said = (
            detail if has_key(request, settings.api_key) else "; ".join(dict.fromkeys(short for short, _ in problems))
        )
        return JSONResponse({"status": "unhealthy", "error": said}, status_code=503)

    @app.get("/ready")
    async def ready():
        """Readiness: 503 until every model is warm, while draining after SIGTERM, and when unhealthy."""
        problems = [full for _, full in filter(None, (served.problem() for served in models.models.values()))]
        warming = [served.name for served in models.models.values() if not served.ready]
        reason = (
            "draining"
            if app.state.draining
            else "; ".join(problems) or (f"warming up: {', '.join(warming)}" if warming else None)
        )
        if reason:
            return JSONResponse({"status": "unready", "reason": reason}, status_code=503)
        return {"status": "ready"}

    @app.get("/info")
    async def describe():
        model = default.model
        return {
            "model_id": model.info.name,
            "model_folder": str(model.info.folder),
            "task": model.info.task,
            "labels": model.info.labels,
            "format": settings.format,
            "max_input_length": model.info.max_length,
            "test_metrics": model.info.test_metrics,
            "temperature": model.info.temperature,
            **({"thresholds": dict(zip(model.info.labels, model.info.thresholds))} if model.info.thresholds else {}),
            "models": list(models.models),
            "auth": bool(settings.api_key),
            "threads": asdict(plan),
            **{k: v for k, v in asdict(settings).items() if k.startswith("max_")},
        }

    @app.get("/metrics")
    async def prometheus():
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    if settings.api_key:  # without a key anyone could make the server reload

        @app.post("/admin/reload")
        async def admin_reload():
            """Every model's folder read again, warmed and swapped in; requests in flight finish on the old one."""
            errors = await reload()
            if errors:  # the folder cannot be loaded as it is now; the old model goes on answering
                return error(422, f"reload kept the old model of {'; '.join(errors)}", "Reload")
            return {"reloaded": list(models.models)}

    return app


ROUTES = {
    "/predict",
    "/models/{name}/predict",
    "/models",
    "/health",
    "/ready",
    "/info",
    "/metrics",
    "/admin/reload",
    "/docs",
    "/openapi.json",
}


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


class DrainingServer:
    """uvicorn's Server, told that on SIGTERM /ready answers 503 for --drain-s seconds before it stops taking
    requests, so a load balancer stops sending them first (Kubernetes' readiness probe)."""

    def __init__(self, app, settings: Settings):
        import uvicorn

        config = uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            loop="uvloop",
            http="httptools",
            access_log=False,  # RequestLog writes one line per request
            log_level="warning",
            timeout_graceful_shutdown=30,
        )
        self.server, self.app, self.drain_s = uvicorn.Server(config), app, settings.drain_s
        handle_exit = self.server.handle_exit

        def drain_then_exit(sig, frame):
            if sig == signal.SIGTERM and self.drain_s > 0 and not app.state.draining:
                app.state.draining = True
                self.server._captured_signals.append(sig)  # re-raised after shutdown: exit code 0 (main)
                threading.Timer(self.drain_s, lambda: setattr(self.server, "should_exit", True)).start()
                return
            app.state.draining = True
            handle_exit(sig, frame)

        self.server.handle_exit = drain_then_exit

    def run(self) -> None:
        self.server.run()


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
    DrainingServer(app, settings).run()


if __name__ == "__main__":
    main()
