"""The HTTP service's life: the models warmed up while /health already answers, every folder reloaded on
SIGHUP, and on SIGTERM a drain (/ready answers 503 for --drain-s seconds while requests are still answered, so a
load balancer stops sending them first), then uvicorn's graceful stop."""

import asyncio
import signal
import threading
from contextlib import asynccontextmanager

from hfx.serving.served_models import ModelSet
from hfx.serving.telemetry import LOG


async def reload_models(models: ModelSet) -> list[str]:
    """Every folder loaded again and swapped in; a folder that fails keeps its old model, and is named here."""
    errors = await models.reload()
    for message in errors:
        print(f"serve: reload kept the old model of {message}", flush=True)
    return errors


def lifespan_of(models: ModelSet, preprocess):
    """The app's lifespan: warm-up in the background, SIGHUP reloads, and at the end every task and thread
    stopped (uvicorn has finished every request in flight by then)."""
    reloads = set()  # SIGHUP's reloads in flight, held so that none is collected before it ends

    def reload_on_signal() -> None:
        task = asyncio.ensure_future(reload_models(models))
        reloads.add(task)
        task.add_done_callback(reported)

    def reported(task: asyncio.Task) -> None:
        reloads.discard(task)
        if not task.cancelled() and task.exception() is not None:
            LOG.error("serve: reload failed, the old models answer on: %s", task.exception())

    @asynccontextmanager
    async def lifespan(app):
        app.state.draining = False
        loop = asyncio.get_running_loop()
        try:  # the main thread's loop only
            loop.add_signal_handler(signal.SIGHUP, reload_on_signal)
        except (NotImplementedError, RuntimeError, ValueError):
            pass
        warmup = asyncio.create_task(models.start())  # /health answers while the models warm; /ready waits
        yield
        for task in (warmup, *reloads):
            task.cancel()
        await asyncio.gather(warmup, *reloads, return_exceptions=True)
        await models.stop()
        preprocess.shutdown()

    return lifespan


class DrainingServer:
    """uvicorn's Server, told that on SIGTERM /ready answers 503 for `drain_s` seconds before it stops taking
    requests, so a load balancer stops sending them first (Kubernetes' readiness probe)."""

    def __init__(self, app, host: str, port: int, drain_s: float):
        import uvicorn

        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            loop="uvloop",
            http="httptools",
            access_log=False,  # RequestLog writes one line per request
            log_level="warning",
            timeout_graceful_shutdown=30,
        )
        self.server, self.app, self.drain_s = uvicorn.Server(config), app, drain_s
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
