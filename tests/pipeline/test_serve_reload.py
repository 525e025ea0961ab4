"""A reload of the served models, in process with the server's own parts (ModelSet, batchers, the request path):
a request that meets a reload is answered by one model whole, and a reload that comes during the first warm-up
waits for it. The order of events is forced (a preprocessing thread held shut), not left to timing."""

import asyncio
import json
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from hfx.serve import Settings
from hfx.serving.batcher import Rejected
from hfx.serving.loaded_model import LoadedModel
from hfx.serving.requests import answer
from hfx.serving.served_models import Batching, ModelSet
from hfx.serving.telemetry import Metrics
from hfx.serving.threads import plan_threads

NEW_WORDS = ["zyzzyva", "quokka", "xylophone"]  # not in the tiny model's vocabulary: pieces or [UNK] there


TEXT = "the quokka film was a zyzzyva of xylophone"


SETTINGS = (plan_threads(1, 1, 1), Batching(32, 16384, 512, 0.0))  # a ModelSet's threads and batching


def model_set(folder: Path, kind=ModelSet) -> ModelSet:
    return kind({"m": str(folder)}, "fp32", *SETTINGS, Metrics())


def with_more_words(exported: Path, dest: Path) -> Path:
    """The exported folder with a larger vocabulary: NEW_WORDS added to its tokenizer, the embeddings grown to
    match (new rows at random), and its fp32 ONNX written again. Its ids for TEXT run past the old model's."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from hfx.training.onnx_export import export_onnx

    shutil.copytree(exported, dest)
    tokenizer = AutoTokenizer.from_pretrained(exported)
    tokenizer.add_tokens(NEW_WORDS)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(exported, attn_implementation="eager").eval()
    model.resize_token_embeddings(len(tokenizer))
    tokenizer.save_pretrained(dest)
    model.save_pretrained(dest)
    sample = dict(tokenizer(["a film"], return_tensors="pt"))
    axes = {name: {0: "batch", 1: "sequence"} for name in sample}
    export_onnx(model, sample, axes, dest / "model.onnx", {0: "batch"})
    return dest


@pytest.fixture(scope="module")
def two_models(exported_model, tmp_path_factory) -> tuple[Path, Path]:
    """(the tiny run's folder, the same with a larger vocabulary)."""
    return exported_model, with_more_words(exported_model, tmp_path_factory.mktemp("bigger") / "bigger")


def scores(result: list[dict]) -> dict[str, float]:
    return {entry["label"]: entry["score"] for entry in result}


def replace_folder(folder: Path, source: Path) -> None:
    for path in source.iterdir():
        shutil.copy2(path, folder / path.name)


def test_a_request_that_meets_a_reload_is_prepared_batched_and_decoded_by_one_model(two_models, tmp_path):
    old, new = two_models
    assert (
        LoadedModel(new, "fp32").handler.encode([TEXT])[0].ids != LoadedModel(old, "fp32").handler.encode([TEXT])[0].ids
    )
    expected = {folder: scores(LoadedModel(folder, "fp32").predict([TEXT])[0]) for folder in (old, new)}
    folder = Path(shutil.copytree(old, tmp_path / "model"))
    body = json.dumps({"inputs": [TEXT]}).encode()

    async def scenario():
        models = model_set(folder)
        await models.start()
        served = models.models["m"]
        first = served.current
        preprocess = ThreadPoolExecutor(max_workers=1)
        gate = threading.Event()
        preprocess.submit(gate.wait)  # the preprocessing thread is busy until the reload has swapped the model
        try:
            during = asyncio.create_task(answer(served, body, "application/json", Settings(), preprocess))
            await asyncio.sleep(0.1)  # it holds the model current when it arrived and waits for the thread
            assert first.users == 1
            replace_folder(folder, new)
            reloading = asyncio.create_task(models.reload())
            while served.current is first:
                await asyncio.sleep(0.01)
            gate.set()
            answered = await during
            assert await reloading == []
            after = await answer(served, body, "application/json", Settings(), preprocess)
        finally:
            gate.set()
            preprocess.shutdown()
            await models.stop()
        return scores(answered.body[0]), scores(after.body[0])

    during, after = asyncio.run(scenario())
    assert during == pytest.approx(expected[old])  # the old model's answer, start to end
    assert after == pytest.approx(expected[new])
    assert during != pytest.approx(expected[new])


class FirstWarmUpHeld(ModelSet):
    """The server's ModelSet, its first warm-up held until `release` is set, so that a reload surely comes
    during it."""

    def __init__(self, *args):
        super().__init__(*args)
        self.release, self.loads = asyncio.Event(), 0

    async def warmed(self, name, model):
        self.loads += 1
        if self.loads == 1:
            await self.release.wait()
        return await super().warmed(name, model)


def test_a_reload_during_the_first_warm_up_waits_for_it_and_is_not_lost(two_models, tmp_path):
    old, new = two_models
    folder = Path(shutil.copytree(old, tmp_path / "model"))

    async def scenario():
        models = model_set(folder, FirstWarmUpHeld)
        served = models.models["m"]
        starting = asyncio.create_task(models.start())
        await asyncio.sleep(0)  # the warm-up has begun
        replace_folder(folder, new)
        reloading = asyncio.create_task(models.reload())
        await asyncio.sleep(2)  # far longer than the tiny model takes to load
        assert not reloading.done() and served.current is None  # it waits for the first warm-up
        models.release.set()
        errors = await reloading
        await starting
        batchers = [  # those running, not those being cancelled
            task for task in asyncio.all_tasks() if "Batcher.run" in repr(task.get_coro()) and not task.cancelling()
        ]
        try:
            return errors, served.ready, served.current.model, batchers, served.current.runner
        finally:
            await models.stop()

    errors, ready, model, batchers, runner = asyncio.run(scenario())
    assert errors == [] and ready
    assert model.handler.tokenizer.get_vocab_size() == LoadedModel(new, "fp32").handler.tokenizer.get_vocab_size()
    assert batchers == [runner]  # the first warm-up's batcher was retired: none left running astray


def test_a_folder_that_loads_but_fails_its_warm_up_keeps_the_old_model_and_no_stray_batcher(exported_model, tmp_path):
    folder = Path(shutil.copytree(exported_model, tmp_path / "model"))

    async def scenario():
        models = model_set(folder)
        await models.start()
        served = models.models["m"]
        first = served.current
        tokenizer = json.loads((folder / "tokenizer.json").read_text())
        tokenizer["model"]["vocab"]["film"] = 10_000  # the warm-up's word, past the model's embeddings
        (folder / "tokenizer.json").write_text(json.dumps(tokenizer))
        errors = await models.reload()
        await asyncio.sleep(0)
        batchers = [
            task for task in asyncio.all_tasks() if "Batcher.run" in repr(task.get_coro()) and not task.cancelling()
        ]
        try:
            return errors, served.current is first, batchers == [first.runner]
        finally:
            await models.stop()

    errors, kept, one_batcher = asyncio.run(scenario())
    assert len(errors) == 1 and errors[0].startswith("m: ") and "out of data bounds" in errors[0]
    assert kept and one_batcher


def test_a_request_before_the_first_warm_up_is_refused_with_503(exported_model):
    async def scenario():
        models = model_set(exported_model)
        with pytest.raises(Rejected) as refused:
            await answer(models.models["m"], b'{"inputs": "a film"}', "application/json", Settings(), None)
        return refused.value

    refused = asyncio.run(scenario())
    assert refused.status == 503 and "warming up" in str(refused)
