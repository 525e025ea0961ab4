"""A request to the HTTP service, from its body to its answer: the JSON schema, the size limits, the parsing,
decoding and tokenizing that run in a preprocessing thread, the model call, and the results. Every refusal is a
`Rejected` (4xx) with one line."""

import asyncio
import time
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse

from hfx.serving.batcher import Rejected
from hfx.serving.handlers.interface import Handler
from hfx.serving.input_errors import InputError, TooLarge
from hfx.serving.loaded_model import LoadedModel, all_windows, merged


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    inputs: object = Field(
        description="a text, or a list of texts (image models: base64-encoded images; question answering:"
        ' {"question": ..., "context": ...})',
        examples=["a moving film"],
    )
    raw_scores: StrictBool = Field(False, description="logits instead of probabilities (text classification)")
    truncate: StrictBool = Field(True, description="cut texts to the max input length; false: 413 instead")
    top_k: StrictInt | None = Field(
        None, ge=1, description="the k best labels (text classification; default: all) or answers (question answering)"
    )
    max_answer_len: StrictInt | None = Field(
        None, ge=1, description="question answering: the longest answer in tokens (default: the model's)"
    )


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


def prepare(model: LoadedModel, limits, body: bytes, content_type: str) -> tuple:
    """(the request, its items, whether it sent a single one, their model rows), or Rejected (4xx). `limits`: the
    server's settings (max_client_batch_size, max_top_k). Runs in the preprocessing thread: parsing, decoding and
    tokenizing take time in proportion to the body."""
    handler, task = model.handler, model.info.task
    try:
        if content_type != "application/json" and hasattr(handler, "read_bytes"):
            return prepared(model, PredictRequest(inputs=""), [handler.read_bytes(body, "the body")], True)
        query = PredictRequest.model_validate_json(body)
        count = len(query.inputs) if isinstance(query.inputs, list) else 1
        if count > limits.max_client_batch_size:  # before anything is decoded
            raise Rejected(
                413, f"batch of {count} inputs, over the limit of {limits.max_client_batch_size}", "Validation"
            )
        unused = sorted(query.model_fields_set - handler.options - {"inputs", "truncate"})
        if unused:
            raise Rejected(
                422,
                f"{unused[0]} does not apply to a {task} model; it takes inputs and truncate"
                + "".join(f", {name}" for name in sorted(handler.options)),
                "Validation",
            )
        for name in sorted(handler.capped_options & query.model_fields_set):
            value = getattr(query, name)
            if value is not None and value > limits.max_top_k:  # the work a request may ask for grows with it
                raise Rejected(
                    422,
                    f"{name}: {value} is over this server's limit of {limits.max_top_k} (--max-top-k)",
                    "Validation",
                )
        return prepared(model, query, *handler.parse(query.inputs))
    except ValidationError as exc:
        raise Rejected(422, validation_message(exc), "Validation") from None
    except TooLarge as exc:
        raise Rejected(413, str(exc), "PayloadTooLarge") from None
    except InputError as exc:
        raise Rejected(422, str(exc), "Validation") from None


def prepared(model: LoadedModel, query: PredictRequest, items: list, single: bool) -> tuple:
    handler = model.handler
    rows = handler.encode(items)
    if not query.truncate:
        too_long = [i for i, row in enumerate(rows) if handler.truncated(row)]
        if too_long:
            raise Rejected(
                413,
                f"inputs[{too_long[0]}] is longer than the max input length of {model.info.max_length}"
                " tokens; send truncate: true to cut it",
                "Validation",
            )
    return query, items, single, rows


def decoded(handler: Handler, window_logits: list, rows: list, items: list, options: dict) -> list:
    """Each item's result from its windows' logits."""
    logits = merged(handler, window_logits, rows, items)
    try:
        return [handler.decode(*answer, **options) for answer in zip(logits, rows, items)]
    except InputError as exc:  # an input the handler could not answer after all: the request's fault, not the server's
        raise Rejected(422, str(exc), "Validation") from None


@dataclass
class Answered:
    """A request's answer: the JSON body, what its log line adds, and its timing headers (ms)."""

    body: object
    log: dict
    timing: dict


async def answer(served, body: bytes, content_type: str, limits, preprocess) -> Answered:
    """One request to `served` (a ServedModel) answered by one load of its folder, the one current when it
    arrived: parsed, tokenized, batched and decoded by that load alone, so a reload meanwhile never mixes two
    models' tokenizers, settings or weights. Parsing, tokenizing and decoding run on `preprocess` (an executor),
    the model in its batcher; the event loop only waits."""
    started = time.perf_counter()
    current = served.current
    if current is None:
        raise Rejected(503, f"model '{served.name}' is warming up; retry shortly (GET /ready says when)", "Unready")
    loop = asyncio.get_running_loop()
    with current.use() as pinned:  # a reload retires this model only once this request is done
        model = pinned.model
        query, items, single, rows = await loop.run_in_executor(preprocess, prepare, model, limits, body, content_type)
        tokenized = time.perf_counter()
        handler = model.handler
        windows = all_windows(handler, rows)  # a long text read in windows runs as several rows
        window_logits, timing = await pinned.batcher.submit(windows)
        options = {name: getattr(query, name) for name in query.model_fields_set & handler.options}
        # Off the event loop: decoding a long context's answer spans is real work.
        results = await loop.run_in_executor(preprocess, decoded, handler, window_logits, rows, items, options)
    return Answered(
        body=results[0] if single else results,
        log={"model": served.name, "rows": len(windows), "tokens": sum(handler.length(w) for w in windows)},
        timing={
            "x-tokenization-time": 1000 * (tokenized - started),
            "x-queue-time": 1000 * timing.queue,
            "x-inference-time": 1000 * timing.inference,
            "x-compute-time": 1000 * (time.perf_counter() - started),
        },
    )
