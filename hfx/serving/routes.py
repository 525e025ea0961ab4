"""The HTTP service's routes, as text-embeddings-inference has them where they apply: POST /predict, GET /health,
/ready, /info, /metrics, /models and POST /models/{name}/predict; POST /admin/reload with an API key only.

Each reads the service's parts from `app.state`, set by `hfx.serve.create_app`: `models` (a ModelSet),
`settings`, `preprocess` (the preprocessing threads), `metrics`, `threads` (the thread plan) and `draining`.
"""

from dataclasses import asdict

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from hfx.serving.access import has_key
from hfx.serving.batcher import Rejected
from hfx.serving.lifecycle import reload_models
from hfx.serving.requests import PredictRequest, answer, error, read_body
from hfx.serving.served_models import ServedModel
from hfx.serving.telemetry import LOG

router = APIRouter()
admin = APIRouter()  # only with an API key: without one anyone could make the server reload

PREDICT_BODY = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": PredictRequest.model_json_schema()}}}
}
# Every route's template: a metrics label or log field never holds a path a client made up.
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


async def respond(request: Request, served: ServedModel) -> JSONResponse:
    state = request.app.state
    body = await read_body(request, state.settings.max_body_bytes)
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    answered = await answer(served, body, content_type, state.settings, state.preprocess)
    request.state.log, request.state.timing = answered.log, answered.timing
    return JSONResponse(answered.body)


@router.post("/predict", openapi_extra=PREDICT_BODY)
async def predict(request: Request):
    """Per input, labels with scores, best first (text and image classification) or entity spans (token
    classification): one result for an input, a list of them for a list of inputs. Image models also take
    one image as the raw body (`Content-Type: image/png`, `image/jpeg`...). Answered by the default model."""
    models = request.app.state.models
    return await respond(request, models.models[models.default])


@router.post("/models/{name}/predict", openapi_extra=PREDICT_BODY)
async def predict_with(name: str, request: Request):
    """/predict, answered by the model named `name` (GET /models lists them)."""
    models = request.app.state.models
    if name not in models.models:
        raise Rejected(404, f"no model named '{name}'; models: {', '.join(models.models)}", "NotFound")
    return await respond(request, models.models[name])


def model_entry(served: ServedModel) -> dict:
    info = served.model.info
    return {
        "name": served.name,
        "task": info.task,
        "labels": info.labels,
        "folder": str(info.folder),
        "ready": served.ready,
    }


@router.get("/models")
async def list_models(request: Request):
    models = request.app.state.models
    return {"default": models.default, "models": [model_entry(served) for served in models.models.values()]}


@router.get("/health")
async def health(request: Request):
    """Liveness: 503 when a model cannot answer (its batcher stopped, or a file it reads is gone). It needs no
    key: without one it says only what failed; the models and files go to the log (once per change) and to a
    caller with the key."""
    state = request.app.state
    problems = [p for p in (served.problem() for served in state.models.models.values()) if p]
    if not problems:
        return {"status": "ok"}
    detail = "; ".join(full for _, full in problems)
    if detail != state.logged_problems:
        LOG.warning("serve: unhealthy: %s", detail)
        state.logged_problems = detail
    said = detail if has_key(request, state.settings.api_key) else "; ".join(dict.fromkeys(s for s, _ in problems))
    return JSONResponse({"status": "unhealthy", "error": said}, status_code=503)


@router.get("/ready")
async def ready(request: Request):
    """Readiness: 503 until every model is warm, while draining after SIGTERM, and when unhealthy."""
    state = request.app.state
    served = state.models.models.values()
    problems = "; ".join(full for _, full in filter(None, (model.problem() for model in served)))
    warming = [model.name for model in served if not model.ready]
    reason = "draining" if state.draining else problems or (f"warming up: {', '.join(warming)}" if warming else None)
    if reason:
        return JSONResponse({"status": "unready", "reason": reason}, status_code=503)
    return {"status": "ready"}


@router.get("/info")
async def describe(request: Request):
    state = request.app.state
    settings, models = state.settings, state.models
    info = models.models[models.default].model.info
    return {
        "model_id": info.name,
        "model_folder": str(info.folder),
        "task": info.task,
        "labels": info.labels,
        "format": settings.format,
        "max_input_length": info.max_length,
        "test_metrics": info.test_metrics,
        "temperature": info.temperature,
        **({"thresholds": dict(zip(info.labels, info.thresholds))} if info.thresholds else {}),
        "models": list(models.models),
        "auth": bool(settings.api_key),
        "threads": asdict(state.threads),
        **{k: v for k, v in asdict(settings).items() if k.startswith("max_")},
    }


@router.get("/metrics")
async def prometheus(request: Request):
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@admin.post("/admin/reload")
async def admin_reload(request: Request):
    """Every model's folder read again, warmed and swapped in; requests in flight finish on the old one."""
    models = request.app.state.models
    errors = await reload_models(models)
    if errors:  # the folder cannot be loaded as it is now; the old model goes on answering
        return error(422, f"reload kept the old model of {'; '.join(errors)}", "Reload")
    return {"reloaded": list(models.models)}
