"""What one test session builds once for all its workers: a folder made by the first worker that asks."""

import json
import shutil
from collections.abc import Callable
from pathlib import Path


def built_once(tmp_path_factory, worker_id: str, name: str, build: Callable[[Path], dict]) -> tuple[Path, dict]:
    """(folder, what `build(folder)` returned), built once per test session whichever worker asks first: the
    others wait on its lock and read the same folder, which every test treats as read-only (pytest-xdist's recipe
    for session fixtures). `build` returns JSON."""
    if worker_id == "master":  # no workers
        folder = tmp_path_factory.mktemp(name)
        return folder, build(folder)
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp().parent  # shared by the workers of this session
    folder, done = root / name, root / f"{name}.json"
    with FileLock(str(root / f"{name}.lock")):
        if not done.is_file():
            shutil.rmtree(folder, ignore_errors=True)  # a worker whose build failed left it half-made
            folder.mkdir(exist_ok=True)
            done.write_text(json.dumps(build(folder)))
    return folder, json.loads(done.read_text())
