"""How the service shares the machine's cores between its threads, decided once at start.

- The event loop only moves bytes.
- Preprocessing threads parse, decode images and tokenize. The `tokenizers` library releases the GIL while it
  encodes, so they run beside the loop. Its own thread pool is turned off (TOKENIZERS_PARALLELISM=false): a
  request holds a few texts, and one more pool would fight ONNX Runtime for the same cores.
- ONNX Runtime runs each model call on every core: model calls are most of the work. Its threads busy-wait
  between operators, as they do by default; turning that off, or giving it one core fewer, served fewer
  requests at every concurrency (docs/benchmarks.md, "How the server uses the cores").
"""

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class ThreadPlan:
    cores: int  # the cores this process may run on (its CPU affinity, as a container's cpuset limits it)
    preprocess: int  # threads that turn request bodies into model rows
    parallel_calls: int  # model calls that run at once, per model
    onnx: int  # ONNX Runtime intra-op threads per model call

    def describe(self) -> str:
        plural = lambda n, word: f"{n} {word}{'s' * (n > 1)}"  # noqa: E731
        return (
            f"{self.cores} cores: {plural(self.preprocess, 'preprocessing thread')},"
            f" {plural(self.parallel_calls, 'model call')} at a time per model,"
            f" each on {plural(self.onnx, 'ONNX Runtime thread')}"
        )


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def plan_threads(preprocess: int = 0, parallel_calls: int = 0, onnx: int = 0, cores: int | None = None) -> ThreadPlan:
    """0 means "size it from the cores": every core for the model calls, and one preprocessing thread per four
    cores (tokenizing an SST-2 sentence takes about 0.1 ms, its int8 model call a few ms)."""
    cores = cores or available_cores()
    parallel_calls = parallel_calls or 1
    return ThreadPlan(cores, preprocess or max(1, cores // 4), parallel_calls, onnx or max(1, cores // parallel_calls))


def quiet_other_pools() -> None:
    """Keep the libraries that would start thread pools of their own from adding threads to the plan's."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
