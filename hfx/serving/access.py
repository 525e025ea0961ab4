"""Who may call the HTTP service: an API key (`Authorization: Bearer <key>`) on every route but the liveness
probe, and the browser origins allowed to call it (CORS)."""

import hmac
import json

OPEN_ROUTES = frozenset({"/health"})  # a liveness probe needs no key
UNAUTHORIZED = json.dumps(
    {"error": "missing or wrong API key: send Authorization: Bearer <key>", "error_type": "Unauthorized"}
).encode()


def bearer_token(headers: list[tuple[bytes, bytes]]) -> bytes:
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            return token.strip() if scheme.lower() == b"bearer" else b""
    return b""


def has_key(request, key: str | None) -> bool:
    """Whether a request may see what the key guards: it carries the key, or the server has none."""
    return key is None or hmac.compare_digest(bearer_token(request.scope["headers"]), key.encode())


class RequireKey:
    """Plain ASGI middleware: a request without the key gets 401 and the same one-line JSON error, whether the
    key is missing or wrong. The comparison takes the same time however much of the key matches."""

    def __init__(self, app, key: str):
        self.app, self.key = app, key.encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] in OPEN_ROUTES:
            return await self.app(scope, receive, send)
        if hmac.compare_digest(bearer_token(scope["headers"]), self.key):
            return await self.app(scope, receive, send)
        scope.setdefault("state", {})["rejected"] = "Unauthorized"
        headers = [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]
        await send({"type": "http.response.start", "status": 401, "headers": headers})
        await send({"type": "http.response.body", "body": UNAUTHORIZED})


def cors_options(origins: list[str], exposed: tuple[str, ...]) -> dict:
    """Starlette's CORSMiddleware settings: the given origins may call every route, send the key and read the
    request id and timing headers."""
    return {
        "allow_origins": origins,
        "allow_methods": ["GET", "POST"],
        "allow_headers": ["Authorization", "Content-Type", "X-Request-Id"],
        "expose_headers": ["x-request-id", *exposed],
        "max_age": 600,
    }
