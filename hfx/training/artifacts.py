"""Writing stage outputs so that a failed or killed stage never leaves a half-written one.

Every output is built in a `<name>.partial` sibling and renamed into place only when complete.
"""

import hashlib
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextmanager
def atomic_dir(path: str | Path):
    """Yield an empty temporary folder; on success it replaces `path`, on failure it is removed."""
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    _remove(partial)
    partial.mkdir(parents=True)
    try:
        yield partial
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    _remove(path)
    partial.rename(path)


@contextmanager
def atomic_file(path: str | Path):
    """Yield a temporary file path; on success it replaces `path`, on failure it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    try:
        yield partial
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, path)


def save_datasets(splits, out: Path) -> None:
    """`DatasetDict.save_to_disk`, with each split's fingerprint a hash of its own bytes: `datasets` stores a
    random one, which would give identical data a new DVC hash on every run and rerun everything downstream.
    Likewise the split's name, which a map over several processes drops."""
    splits.save_to_disk(str(out))
    for name in splits:
        state_file = Path(out) / name / "state.json"
        state = read_json(state_file)
        digest = hashlib.sha256()
        for data_file in state["_data_files"]:
            with open(state_file.parent / data_file["filename"], "rb") as f:
                digest.update(hashlib.file_digest(f, "sha256").digest())
        state["_fingerprint"] = digest.hexdigest()[:16]
        state["_split"] = name
        state_file.write_text(json.dumps(state, indent=2, sort_keys=True))


def write_json(path: str | Path, data: dict) -> None:
    with atomic_file(path) as partial:
        partial.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def read_json(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())
