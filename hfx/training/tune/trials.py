"""One trial of `hfx tune`: the trial's params set on a DVC experiment that runs in DVC's own copy of the project,
and its scores told to the study. One trial at a time runs as `dvc exp run --temp`; several at once go through
DVC's experiment queue (`dvc exp run --queue`, `dvc queue start -j N`). The user's workspace is never touched."""

import json
import os
import re
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState

from hfx.training.params import StageError
from hfx.training.tune.reporting import TRIALS_ENV, trial_file, write_trial_file


@dataclass(frozen=True)
class Search:
    """What every trial of one `hfx tune` run shares."""

    root: Path  # the project
    study: optuna.Study
    storage: str  # as another process opens it
    pruner: str
    metric: str  # the validation score the study optimises
    until: str  # the last stage a trial runs
    folder: Path  # tune.folder, absolute: trial files and logs
    validation_file: str  # paths.train_logs/metrics.json: the kept checkpoint's validation scores
    test_file: str  # paths.eval_metrics
    jobs: int = 1  # trials at once

    @property
    def trials_folder(self) -> Path:
        return self.folder / "trials"

    def log(self, name: str) -> Path:
        path = self.folder / "logs" / f"{name}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path


def experiment_name(study: str, number: int) -> str:
    return f"{study}-t{number:04d}"


def prepared(search: Search, trial: optuna.Trial) -> tuple[str, list[str]]:
    """The trial's experiment name and its `-S key=value` arguments, with the file through which its finetune
    stage finds the trial."""
    name = experiment_name(search.study.study_name, trial.number)
    link = {"study": search.study.study_name, "storage": search.storage, "number": trial.number}
    write_trial_file(search.trials_folder, name, {**link, "pruner": search.pruner, "metric": search.metric})
    trial.set_user_attr("experiment", name)
    # ++: set the key even where params.yaml leaves it to the schema's default
    return name, [arg for key, value in trial.params.items() for arg in ("-S", f"++{key}={json.dumps(value)}")]


def run_trial(search: Search, trial: optuna.Trial) -> optuna.trial.FrozenTrial:
    """Runs the trial as `dvc exp run --temp -n <study>-tNNNN -S key=value ... <until>` and tells the study how
    it ended."""
    name, overrides = prepared(search, trial)
    command = ["dvc", "exp", "run", "--temp", "-n", name, *overrides, search.until]
    with search.log(name).open("w") as out:
        experiment = subprocess.Popen(
            command, cwd=search.root, stdout=out, stderr=subprocess.STDOUT, env=trial_env(search.trials_folder)
        )
        try:
            experiment.wait()
        except KeyboardInterrupt:  # Ctrl-C reached DVC too: let it remove its copy of the project
            experiment.wait(timeout=60)
            raise
    return told(search, trial, name, succeeded=experiment.returncode == 0)


def queue_trial(search: Search, trial: optuna.Trial) -> str:
    """Queues the trial (`dvc exp run --queue`) and makes sure `search.jobs` queue workers run; its name."""
    name, overrides = prepared(search, trial)
    env = trial_env(search.trials_folder)  # the workers started here pass it to the stages they run
    for command in (
        ["dvc", "exp", "run", "--queue", "-n", name, *overrides, search.until],
        ["dvc", "queue", "start", "-j", str(search.jobs)],  # starts only the workers that are not running
    ):
        done = subprocess.run(command, cwd=search.root, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise StageError(f"{' '.join(command[:4])} failed: {(done.stderr or done.stdout).strip()[-300:]}")
    return name


def queue_states(root: Path) -> dict[str, str]:
    """Each queued experiment's state by name: Queued, Running, Success or Failed (`dvc queue status`)."""
    status = subprocess.run(["dvc", "queue", "status"], cwd=root, capture_output=True, text=True)
    if status.returncode != 0:
        raise StageError(f"dvc queue status failed: {status.stderr.strip()[-300:]}")
    rows = [line.split() for line in status.stdout.splitlines()[1:]]
    return {row[1]: row[-1] for row in rows if len(row) >= 4}


def stop_queued(root: Path, names: list[str]) -> None:
    """Stops queued trials that can no longer report (`dvc queue kill`)."""
    if names:
        subprocess.run(["dvc", "queue", "kill", *names], cwd=root, capture_output=True)


def queued_trial_told(search: Search, trial: optuna.Trial, name: str, state: str) -> optuna.trial.FrozenTrial:
    """A queued trial's end, told to the study; its log is DVC's log of the queued run."""
    logs = subprocess.run(["dvc", "queue", "logs", name], cwd=search.root, capture_output=True, text=True)
    search.log(name).write_text(logs.stdout + logs.stderr)
    return told(search, trial, name, succeeded=state == "Success")


def told(search: Search, trial: optuna.Trial, name: str, succeeded: bool) -> optuna.trial.FrozenTrial:
    """Tells the study how the trial ended: complete with its validation score (its test score beside it),
    pruned, or failed with the stage's one-line reason."""
    trial_file(search.trials_folder, name).unlink(missing_ok=True)
    if "pruned_at_validation" in stored(search.study, trial.number).user_attrs:  # the stage set it
        return search.study.tell(trial, state=TrialState.PRUNED)
    if not succeeded:
        trial.set_user_attr("reason", failure_reason(search.log(name)))
        return search.study.tell(trial, state=TrialState.FAIL)
    try:
        validation = experiment_json(search.root, name, search.validation_file).get("eval", {}).get(search.metric)
        test = experiment_json(search.root, name, search.test_file).get(search.metric)
    except (subprocess.CalledProcessError, json.JSONDecodeError, StopIteration):
        validation = test = None
    if validation is None:
        trial.set_user_attr("reason", f"{search.validation_file} has no validation {search.metric}")
        return search.study.tell(trial, state=TrialState.FAIL)
    trial.set_user_attr("test", test)
    return search.study.tell(trial, validation)


def trial_env(trials_folder: Path) -> dict:
    return {**os.environ, TRIALS_ENV: str(trials_folder), "DVC_NO_ANALYTICS": "1"}


def failure_reason(log: Path) -> str:
    """The stage's own one-line error if it printed one; else the last exception a traceback named (out of
    memory, say); else the log's last line."""
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    ours = [line for line in lines if line.startswith("error: ")]
    raised = [line for line in lines if re.match(r"^[\w.]+(Error|Exception)\b.*:", line)]
    return (ours[:1] or raised[-1:] or lines[-1:] or ["no output"])[0].removeprefix("error: ")[:300]


def experiment_names(root: Path, study: str) -> list[tuple[str, int]]:
    """The experiments named after `study`'s trials on the commit checked out, with their trial numbers."""
    head = git(root, "rev-parse", "HEAD")
    refs = git(root, "for-each-ref", "--format=%(refname)", f"refs/exps/{head[:2]}/{head[2:]}/").split()
    names = [ref.rsplit("/", 1)[1] for ref in refs]
    return [(n, int(n.rsplit("-t", 1)[1])) for n in names if re.fullmatch(rf"{re.escape(study)}-t\d{{4,}}", n)]


def experiment_json(root: Path, name: str, path: str) -> dict:
    """A JSON file as the experiment `name` committed it (found by name: HEAD may have moved since)."""
    refs = git(root, "for-each-ref", "--format=%(refname)", "refs/exps/").split()
    ref = next(ref for ref in refs if ref.rsplit("/", 1)[1] == name)
    return json.loads(git(root, "show", f"{ref}:{path}"))


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()


def stored(study: optuna.Study, number: int) -> optuna.trial.FrozenTrial:
    """The trial as the storage holds it now (the finetune stage writes to it from its own process)."""
    return next(t for t in study.get_trials(deepcopy=False) if t.number == number)


def runner() -> str:
    """Who runs a trial: this machine and process, so that a later run knows which running trials are dead."""
    return f"{socket.gethostname()}:{os.getpid()}"


def fail_interrupted(search: Search) -> int:
    """Trials that a killed `hfx tune` on this machine left running can never finish: marked failed (their trial
    files removed), so that the study goes on. Trials that another machine or a live process runs are left
    alone."""
    study, stale = search.study, []
    for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        host, _, pid = frozen.user_attrs.get("runner", "").partition(":")
        if host == socket.gethostname() and pid.isdigit() and not alive(int(pid)):
            study._storage.set_trial_user_attr(frozen._trial_id, "reason", "interrupted: hfx tune stopped during it")
            study.tell(frozen.number, state=TrialState.FAIL, skip_if_finished=True)
            trial_file(search.trials_folder, experiment_name(study.study_name, frozen.number)).unlink(missing_ok=True)
            stale.append(frozen.number)
    return len(stale)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid != os.getpid()  # a trial recorded under this very pid is an earlier process's
