"""A real S3-compatible server on loopback: moto's server app, served by werkzeug in a thread.

moto keeps its buckets in this process, so `stop()` then `start()` is a server that went away and came back
with its data, as a real one would. `die_after("PUT", n)` makes the server fail object upload n + 1 and shut down,
so every later request is refused: a server that crashed in the middle of `dvc push` (GET: of `dvc pull`).
"""

import logging
import threading

import boto3
from moto import settings
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "hfx-test",
    "AWS_SECRET_ACCESS_KEY": "hfx-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


class S3Server:
    def __init__(self):
        self._moto = DomainDispatcherApplication(create_backend_app)
        self._server = None
        self._thread = None
        self.port = None
        self.requests = {"PUT": 0, "GET": 0}  # object uploads and downloads since the last die_after()
        self._die_after = None  # (method, count)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "S3Server":
        # Port 0 the first time; the same port after a restart so clients' config still points at it.
        self._server = make_server(
            "127.0.0.1", self.port or 0, self._app, threaded=True, request_handler=MotoRequestHandler
        )
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
            self._server = None

    @property
    def running(self) -> bool:
        return self._server is not None

    def die_after(self, method: str, n: int | None) -> None:
        self.requests = {"PUT": 0, "GET": 0}
        self._die_after = (method, n) if n is not None else None

    def require_valid_credentials(self, required: bool) -> None:
        """moto accepts any key unless told to authenticate; then only keys its IAM knows pass."""
        settings.INITIAL_NO_AUTH_ACTION_COUNT = 0 if required else float("inf")

    def client(self):
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name="us-east-1",
        )

    def objects(self, bucket: str, prefix: str = "") -> dict[str, tuple]:
        """key -> (etag, last modified) of every object under prefix."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return {o["Key"]: (o["ETag"], o["LastModified"]) for page in pages for o in page.get("Contents", [])}

    def _app(self, environ, start_response):
        method = environ["REQUEST_METHOD"]
        is_object = environ.get("PATH_INFO", "/").count("/") > 1  # /bucket/key, not /bucket
        if is_object and method in self.requests:
            self.requests[method] += 1
            if (
                self._die_after is not None
                and self._die_after[0] == method
                and self.requests[method] > self._die_after[1]
            ):
                self._die_after = None
                threading.Thread(target=self.stop).start()
                raise ConnectionAbortedError("S3 test server dies mid-transfer")  # werkzeug answers 500
        return self._moto(environ, start_response)
