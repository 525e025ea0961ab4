"""A request to the HTTP service, from its body to model rows: the JSON schema, the size limits, and the parsing,
decoding and tokenizing that run in a preprocessing thread. Every refusal is a `Rejected` (4xx) with one line."""

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse

from hfx.serving.batcher import Rejected
from hfx.serving.input_errors import InputError, TooLarge


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


def prepare(served, max_client_batch_size: int, body: bytes, content_type: str) -> tuple:
    """(the request, its items, whether it sent a single one, their model rows), or Rejected (4xx). Runs in the
    preprocessing thread: parsing, decoding and tokenizing take time in proportion to the body."""
    handler, task = served.model.handler, served.model.info.task
    try:
        if content_type != "application/json" and hasattr(handler, "read_bytes"):
            return prepared(served, PredictRequest(inputs=""), [handler.read_bytes(body, "the body")], True)
        query = PredictRequest.model_validate_json(body)
        count = len(query.inputs) if isinstance(query.inputs, list) else 1
        if count > max_client_batch_size:  # before anything is decoded
            raise Rejected(413, f"batch of {count} inputs, over the limit of {max_client_batch_size}", "Validation")
        unused = sorted(query.model_fields_set - handler.options - {"inputs", "truncate"})
        if unused:
            raise Rejected(
                422,
                f"{unused[0]} does not apply to a {task} model; it takes inputs and truncate"
                + "".join(f", {name}" for name in sorted(handler.options)),
                "Validation",
            )
        return prepared(served, query, *handler.parse(query.inputs))
    except ValidationError as exc:
        raise Rejected(422, validation_message(exc), "Validation") from None
    except TooLarge as exc:
        raise Rejected(413, str(exc), "PayloadTooLarge") from None
    except InputError as exc:
        raise Rejected(422, str(exc), "Validation") from None


def prepared(served, query: PredictRequest, items: list, single: bool) -> tuple:
    handler = served.model.handler
    rows = handler.encode(items)
    if not query.truncate:
        too_long = [i for i, row in enumerate(rows) if handler.truncated(row)]
        if too_long:
            raise Rejected(
                413,
                f"inputs[{too_long[0]}] is longer than the max input length of {served.model.info.max_length}"
                " tokens; send truncate: true to cut it",
                "Validation",
            )
    return query, items, single, rows
