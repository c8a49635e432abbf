"""A PyTorchJob's restart budget, kept by its pods: the bound the Training Operator never enforces.

Under ``restartPolicy: ExitCode`` the Training Operator v1.9.4 recreates a pod whose ``pytorch``
container exited 128-255 (143 after a checkpoint, 137 for the OOM killer) or never ran (a failed
init container: the operator's placeholder exit code counts as retryable), and it never reaches
``runPolicy.backoffLimit`` (``pkg/controller.v1/common/job.go`` counts restarts of running pods
only; upstream kubeflow/trainer#2045). A pod OOM-killed on every attempt is recreated forever.

So each pod counts its own starts on the shared outputs volume, in a folder of the run dir that
belongs to one submission (``AEGIS_ATTEMPTS_DIR``: ``<run dir>/pod-attempts/<job>-<token>``, a new
token per submission, so resubmitting a run starts a new budget): one file per pod object,
``<pod name>.<pod uid>.json``, created when the pod's first container starts (the
``prefetch-data`` init container, or the training container's gang supervisor). The operator
recreates a replica under the same pod name with a new uid, and a gang restart recreates every
replica once, so a replica's file count is the number of attempts of the gang, not one per rank.
An attempt whose supervisor was told to stop (SIGTERM to the pod: a deletion, an eviction, a
preemption, a Kueue suspension) is marked ``stopped`` and not counted, as the Job controller's
``DisruptionTarget`` rule does.

When a pod starts attempt ``AEGIS_MAX_ATTEMPTS + 1`` (``launcher.max_restarts + 1`` allowed):

- the training container exits with ``SPENT_EXIT_CODE`` (3, below 128: not retried, so the
  operator fails the PyTorchJob) after one sentence saying so, before torchrun starts;
- the ``prefetch-data`` init container (``python -m aegis.launch.restart_budget -- <its
  command>``) skips its download and exits 0, leaving the training container to end the job:
  an init container that failed again would only be recreated again.

Pure standard library: this runs on every pod's start path, before torch is imported.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

MAX_ATTEMPTS_ENV = "AEGIS_MAX_ATTEMPTS"
ATTEMPTS_DIR_ENV = "AEGIS_ATTEMPTS_DIR"
POD_NAME_ENV = "AEGIS_POD_NAME"  # the downward API's metadata.name
POD_UID_ENV = "AEGIS_POD_UID"  # the downward API's metadata.uid: a recreated pod keeps its name, not its uid
ATTEMPTS_FOLDER = "pod-attempts"  # in the run dir
SPENT_EXIT_CODE = 3  # 1-127: the Training Operator does not retry it, and fails the PyTorchJob


@dataclass(frozen=True)
class PodAttempt:
    """This pod's start, as counted in ``folder``."""

    folder: Path
    pod: str
    uid: str
    max_attempts: int
    number: int  # this pod's attempts so far, this one included, stopped ones left out

    @property
    def path(self) -> Path:
        return self.folder / f"{self.pod}.{self.uid}.json"

    @property
    def spent(self) -> bool:
        return self.number > self.max_attempts

    def sentence(self) -> str:
        restarts = self.max_attempts - 1
        return (f"The restart budget of this PyTorchJob is spent: pod {self.pod} was started {self.number} times "
                f"(attempts counted in {self.folder}), and launcher.max_restarts={restarts} allows "
                f"{self.max_attempts}, so it stops with exit code {SPENT_EXIT_CODE}, which the Training Operator "
                "does not retry; the run dir keeps last.ckpt, and resubmitting the same command resumes with a new "
                "budget (raise launcher.max_restarts, or launcher.resources.memory for an OOM-killed pod).")

    def end(self, exit_code: int, *, stopped: bool) -> None:
        """Record how this attempt ended; ``stopped``: the pod itself was told to stop (SIGTERM
        from the kubelet), which does not spend the budget. Never raises."""
        record = {"pod": self.pod, "uid": self.uid, "started_at": _started_at(self.path), "ended_at": time.time(),
                  "exit_code": exit_code, "stopped": bool(stopped)}
        _write(self.path, record)


def begin(env: Optional[dict[str, str]] = None) -> Optional[PodAttempt]:
    """Count this pod's start (once per pod object, whichever container comes first); None when
    no budget was rendered (not a PyTorchJob pod) or the folder cannot be written (the budget is
    a safety net: it never stops a run by failing itself)."""
    env = os.environ if env is None else env
    folder, pod, uid = env.get(ATTEMPTS_DIR_ENV), env.get(POD_NAME_ENV), env.get(POD_UID_ENV)
    try:
        max_attempts = int(env.get(MAX_ATTEMPTS_ENV, ""))
    except ValueError:
        return None
    if not folder or not pod or not uid or max_attempts < 1:
        return None
    path = Path(folder) / f"{pod}.{uid}.json"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        pass  # this pod's init container counted it already
    except OSError as exc:
        print(f"aegis: cannot count this pod's attempts in {folder} ({exc.strerror or exc}); "
              "launcher.max_restarts is not enforced for it.", file=sys.stderr)
        return None
    else:
        with os.fdopen(fd, "w") as out:
            json.dump({"pod": pod, "uid": uid, "started_at": time.time()}, out)
    return PodAttempt(Path(folder), pod, uid, max_attempts, _counted(Path(folder), pod))


def _counted(folder: Path, pod: str) -> int:
    """This pod name's attempts: its files, less those whose pod was told to stop."""
    number = 0
    for path in folder.glob(f"{pod}.*.json"):  # worker-1.<uid>.json, never worker-10.<uid>.json
        try:
            record = json.loads(path.read_text() or "{}")
        except (OSError, ValueError):
            record = {}  # being written, or torn: a start all the same
        number += not (isinstance(record, dict) and record.get("stopped") is True)
    return number


def _started_at(path: Path) -> Optional[float]:
    try:
        return json.loads(path.read_text()).get("started_at")
    except (OSError, ValueError, AttributeError):
        return None


def _write(path: Path, record: dict) -> None:
    try:
        temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temp.write_text(json.dumps(record))
        os.replace(temp, path)
    except OSError:
        pass


def refuse(attempt: Optional[PodAttempt]) -> Optional[int]:
    """The training container's start: the exit code when the budget is spent (after its
    sentence on stderr), else None."""
    if attempt is None or not attempt.spent:
        return None
    print(f"Error: {attempt.sentence()}", file=sys.stderr, flush=True)
    return SPENT_EXIT_CODE


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m aegis.launch.restart_budget -- COMMAND...``: an init container's wrapper.
    Counts the pod's start, then runs COMMAND in its place; when the budget is spent, skips it
    and exits 0, so that the training container refuses and the PyTorchJob fails."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        print("usage: python -m aegis.launch.restart_budget [--] COMMAND [ARGS...]", file=sys.stderr)
        return 2
    attempt = begin()
    if attempt is not None and attempt.spent:
        print(f"aegis: {attempt.sentence()} This init container skips its work; the training container ends "
              "the job.", file=sys.stderr, flush=True)
        return 0
    try:
        os.execvp(args[0], args)
    except OSError as exc:
        print(f"Error: cannot start {args[0]!r}: {exc.strerror or exc}.", file=sys.stderr)
        return 127
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
