"""Training on several processes and machines through PyTorch's own launcher, `torchrun`.

With `finetune.processes` x `finetune.nodes` above 1, the finetune stage starts itself again under `torchrun`
(`python -m torch.distributed.run`) and the Trainer runs DDP in each worker: `gloo` on CPUs, `nccl` on GPUs.
Rank 0 alone writes the outputs. On several machines each one runs the same stage with `NODE_RANK` (0 on the
machine that keeps the outputs), `MASTER_ADDR` and `MASTER_PORT` (where rank 0 listens) in its environment.
"""

import os
import subprocess
import sys
from pathlib import Path

import torch
from transformers import TrainerCallback
from transformers.trainer_utils import rotate_checkpoints

from hfx.training.checkpoints import resumable_checkpoint, run_fingerprint
from hfx.training.params import Finetune, Params, ParamsError, StageError

RESUME_ENV = "HFX_RESUME_FROM"  # the checkpoint the launcher found, for every worker to resume from


def world_size(ft: Finetune) -> int:
    return ft.processes * ft.nodes


def in_worker() -> bool:
    """Whether this process was started by torchrun."""
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def is_main_process() -> bool:
    """Rank 0 of the whole job (or the only process): the one that writes."""
    return int(os.environ.get("RANK", "0")) == 0


def is_first_node() -> bool:
    """The machine that keeps the outputs and the resume checkpoints (the only one on a single machine)."""
    return os.environ.get("NODE_RANK", "0") == "0"


def backend() -> str:
    return "nccl" if torch.cuda.is_available() else "gloo"


def per_process_batch(ft: Finetune) -> int:
    """finetune.batch_size is the global batch (rows per optimizer step, over every process): the same steps
    and learning-rate schedule whatever the process count."""
    processes = world_size(ft)
    if ft.batch_size % processes:
        raise ParamsError(
            f"finetune.batch_size: {ft.batch_size} rows per step do not split evenly over"
            f" {processes} processes (finetune.processes x finetune.nodes); use a multiple of {processes}"
        )
    return ft.batch_size // processes


def torchrun_command(ft: Finetune, module: str) -> list[str]:
    """The launcher command for `python -m <module>`: standalone on one machine, a static rendezvous at
    MASTER_ADDR:MASTER_PORT across machines."""
    per_process_batch(ft)  # a bad split fails here, before any worker starts
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc-per-node={ft.processes}",
        f"--nnodes={ft.nodes}",
        "--max-restarts=0",
    ]
    if ft.nodes == 1:
        command.append("--standalone")
    else:
        missing = [name for name in ("NODE_RANK", "MASTER_ADDR", "MASTER_PORT") if not os.environ.get(name)]
        if missing:
            raise ParamsError(
                f"finetune.nodes: {ft.nodes} machines need {', '.join(missing)} in the environment"
                " of each (NODE_RANK 0 on the machine that keeps the outputs; README, 'Many processes,"
                " GPUs and machines')"
            )
        command += [
            f"--node-rank={os.environ['NODE_RANK']}",
            f"--master-addr={os.environ['MASTER_ADDR']}",
            f"--master-port={os.environ['MASTER_PORT']}",
        ]
    return command + ["-m", module]


def launch(ft: Finetune, module: str, resume_from: str | None) -> None:
    """Run `module` under torchrun and wait. torchrun stops every worker when one fails; the stage then fails
    with one line, and no output has been written (rank 0 writes only at the end)."""
    env = {**os.environ, RESUME_ENV: resume_from or ""}
    result = subprocess.run(torchrun_command(ft, module), env=env)
    if result.returncode != 0:
        raise StageError(
            f"finetune: a training process failed (torchrun exit {result.returncode}); see its"
            " output above. Nothing was written; the next run resumes from the last checkpoint"
        )


def ran_under_torchrun(params: Params, module: str) -> bool:
    """With finetune.processes x finetune.nodes above 1, in the process the user started: settle the resume
    state once (the first machine), run `module` under torchrun, wait for its workers and return True; the
    workers train. Anywhere else (one process, or a worker): False, and the caller trains."""
    if world_size(params.finetune) == 1 or in_worker():
        return False
    paths = params.paths
    resume_from = (
        resumable_checkpoint(Path(paths.checkpoints), run_fingerprint(params, paths.processed))
        if is_first_node()
        else None
    )
    launch(params.finetune, module, resume_from)
    return True


def checkpoint_to_resume(params: Params, args) -> str | None:
    """The checkpoint of this same run that an interrupted training left, if any: in a worker, the one the
    first machine's launcher settled on (`ran_under_torchrun`)."""
    paths = params.paths
    if world_size(params.finetune) > 1:  # a worker: ran_under_torchrun has returned in the launcher
        resume_from = agreed_checkpoint(args, os.environ.get(RESUME_ENV) or None)
    else:
        resume_from = resumable_checkpoint(Path(paths.checkpoints), run_fingerprint(params, paths.processed))
    if resume_from and os.environ.get("LOCAL_RANK", "0") == "0":  # once per machine
        print(f"finetune: resuming from {resume_from}")
    return resume_from


def agreed_checkpoint(args, resume_from: str | None) -> str | None:
    """The checkpoint the first machine's launcher settled on, for every process of every machine (the other
    launchers cannot see it): no rank runs another schedule. Each machine must read it where the first wrote
    it, so paths.checkpoints must be a folder every machine shares; one line where it is not. Call after the
    workers have started (torchrun)."""
    args.device  # noqa: B018 - the TrainingArguments join the process group on first use
    chosen = [resume_from]
    torch.distributed.broadcast_object_list(chosen, src=0)
    if chosen[0] and not (Path(chosen[0]) / "trainer_state.json").is_file():
        raise StageError(
            f"finetune: machine NODE_RANK={os.environ.get('NODE_RANK', '0')} cannot read {chosen[0]},"
            " the checkpoint the first machine resumes from; put paths.checkpoints on a folder every"
            " machine shares, at the same path (README, 'Many processes, GPUs and machines')"
        )
    return chosen[0]


class RotateOnEveryMachine(TrainerCallback):
    """Machine 0's rank 0 alone rotates checkpoints, but every process saves its random state into them: on a
    machine whose checkpoint folder is its own, old checkpoint folders would pile up. Its first process keeps
    the ones machine 0 keeps, by the Trainer's own rule: the newest save_total_limit, the latest and the best.
    In a folder shared with machine 0 both apply the same rule, and a folder already gone is skipped."""

    def on_save(self, args, state, control, **kwargs):
        if not is_first_node() and os.environ.get("LOCAL_RANK", "0") == "0":
            rotate_checkpoints(args.output_dir, args.save_total_limit, state.best_model_checkpoint)
