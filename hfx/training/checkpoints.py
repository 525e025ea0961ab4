"""Resume state of an interrupted finetune: checkpoints stamped with the run they belong to."""

import hashlib
import json
import shutil
from pathlib import Path

from hfx.training.params import Params


def run_fingerprint(params: Params, processed: str) -> str:
    """Identifies one training run: its params and the exact tokenized data it reads."""
    digest = hashlib.sha256(
        json.dumps([params.task, params.model.model_dump(), params.finetune.model_dump()], sort_keys=True).encode()
    )
    for path in sorted(Path(processed).rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(processed).as_posix().encode())
            with open(path, "rb") as f:
                digest.update(hashlib.file_digest(f, "sha256").digest())
    return digest.hexdigest()


def resumable_checkpoint(checkpoints: Path, fingerprint: str) -> str | None:
    """The latest complete checkpoint of this same run, if an earlier attempt was interrupted.

    Checkpoints of any other run (other params or data) are stale and removed.
    """
    stamp = checkpoints / "run_fingerprint.txt"
    if not stamp.is_file() or stamp.read_text() != fingerprint:
        shutil.rmtree(checkpoints, ignore_errors=True)
        checkpoints.mkdir(parents=True)
        stamp.write_text(fingerprint)
        return None
    # trainer_state.json is written last: a checkpoint without it was cut short.
    complete = [d for d in checkpoints.glob("checkpoint-*") if (d / "trainer_state.json").is_file()]
    return str(max(complete, key=lambda d: int(d.name.rsplit("-", 1)[1]))) if complete else None
