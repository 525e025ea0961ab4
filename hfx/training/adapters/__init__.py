"""Task adapters: everything the stages need to know about one task, behind one interface (docs/design.md).

A task's adapter is the module named after the task here (`question-answering.py`), which hfx/tasks.py names
and imports by that name: nothing else imports it, so a change to it reruns only the runs of its task (dvc.yaml
lists it by `${task}`). What several adapters share is named by what it does: `common.py`, `text_inputs.py`
(text tasks), `single_label.py` (one label per input). A stage imports only its own task's adapter: the others
pull in what that task alone needs (image processors, question answering, seqeval), seconds of start-up in every
stage of every run.
"""

from functools import cache

from hfx.tasks import TASKS
from hfx.training.adapters.interface import TaskAdapter


def adapter_module(name: str) -> str:
    """The module of task `name`'s adapter."""
    return TASKS[name].adapter.partition(":")[0]


@cache
def get_adapter(name: str) -> TaskAdapter:
    """The adapter of task `name` (one instance per process; adapters hold no state)."""
    return TASKS[name].adapter_class()()


__all__ = ["TaskAdapter", "adapter_module", "get_adapter"]
