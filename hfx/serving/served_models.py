"""The models one HTTP service answers with: each loaded from its folder, with its own batcher (queue, worker
threads and metrics label), warmed up before it counts as ready, and swapped for a fresh load of its folder on
reload without dropping a request."""

import asyncio
from contextlib import contextmanager
from dataclasses import dataclass, field

from hfx.serving.batcher import Batcher
from hfx.serving.folder import FORMATS, ModelError
from hfx.serving.loaded_model import LoadedModel
from hfx.serving.threads import ThreadPlan


@dataclass
class Batching:
    max_batch_size: int
    max_batch_tokens: int
    max_queue: int
    max_wait_ms: float


@dataclass
class ModelLoad:
    """One load of a model's folder, with the batcher that runs it. `users` counts the requests holding it, so a
    reload retires it only once the last of them has its answer."""

    model: LoadedModel
    batcher: Batcher
    runner: asyncio.Task = field(repr=False)
    users: int = 0

    @contextmanager
    def use(self):
        self.users += 1
        try:
            yield self
        finally:
            self.users -= 1

    async def retire(self) -> None:
        while self.users:
            await asyncio.sleep(0.005)
        self.runner.cancel()
        self.batcher.close()


@dataclass
class ServedModel:
    name: str
    folder: str
    loaded: LoadedModel  # the first load; `current` runs it once the service has started
    current: ModelLoad | None = None
    ready: bool = False

    @property
    def model(self) -> LoadedModel:
        return self.current.model if self.current else self.loaded

    def problem(self) -> tuple[str, str] | None:
        """Why the model cannot answer, or None: (what failed, for anyone; the same with the model's name and
        files, for its operator). Its batcher stopped, or a file it reads is gone."""
        if self.current is not None and self.current.runner.done():
            return "batcher stopped", f"model '{self.name}': its batcher stopped"
        model = self.model
        needed = [FORMATS[model.format], model.handler.processor_file, "config.json"]
        missing = [name for name in needed if not (model.info.folder / name).is_file()]
        if missing:
            return "model files missing", f"model '{self.name}': {', '.join(missing)} missing from {model.info.folder}"
        return None


class ModelSet:
    """Named models, the first (or `default`) answering /predict."""

    def __init__(
        self, folders: dict[str, str], fmt: str, threads: ThreadPlan, batching: Batching, metrics, default=None
    ):
        self.format, self.threads, self.batching, self.metrics = fmt, threads, batching, metrics
        self.models = {name: ServedModel(name, folder, self.load(folder)) for name, folder in folders.items()}
        self.reloading = asyncio.Lock()
        self.default = default or next(iter(self.models))
        if self.default not in self.models:
            raise ModelError(f"--default-model '{self.default}' is not one of the models: {', '.join(self.models)}")

    def load(self, folder: str) -> LoadedModel:
        return LoadedModel(folder, self.format, self.threads.onnx)

    async def warmed(self, name: str, model: LoadedModel) -> ModelLoad:
        """A batcher for `model`, running, and the model warmed up in its worker thread (a model that fails its
        warm-up leaves no batcher behind)."""
        b = self.batching
        batcher = Batcher(
            model,
            b.max_batch_size,
            b.max_batch_tokens,
            b.max_queue,
            b.max_wait_ms,
            self.metrics.for_model(name),
            self.threads.parallel_calls,
        )
        load = ModelLoad(model, batcher, asyncio.create_task(batcher.run()))
        try:
            await warm(batcher, model)
        except BaseException:
            await load.retire()
            raise
        return load

    async def start(self) -> None:
        """Each model warmed up in turn; a model is ready once it is warm. A reload that comes meanwhile waits."""
        async with self.reloading:
            for served in self.models.values():
                served.current = await self.warmed(served.name, served.loaded)
                served.ready = True

    async def reload(self) -> list[str]:
        """Each folder read again and warmed in the background while the old model answers; then swapped in.
        Requests already queued finish on the old model. A folder that fails to load keeps its old model. One
        reload at a time, and none before the first warm-up has ended (it waits for it)."""
        errors = []
        async with self.reloading:
            for served in self.models.values():
                try:
                    fresh = await asyncio.to_thread(self.load, served.folder)
                    load = await self.warmed(served.name, fresh)
                except Exception as exc:  # noqa: BLE001 - whatever is wrong with the folder, the old model answers on
                    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                    errors.append(f"{served.name}: {reason}")
                    continue
                old, served.current = served.current, load
                served.ready = True
                if old is not None:  # None: its first warm-up failed; this load takes its place
                    await old.retire()
        return errors

    async def stop(self) -> None:
        for served in self.models.values():
            if served.current is not None:
                await served.current.retire()


async def warm(batcher: Batcher, model: LoadedModel) -> None:
    """The model run once on rows of a few lengths, in its own worker thread, so the first request does not pay
    for ONNX Runtime's first-call setup."""
    await asyncio.get_running_loop().run_in_executor(batcher.worker, model, model.handler.warmup_rows())
