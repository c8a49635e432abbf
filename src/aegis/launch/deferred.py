"""A multirun of jobs that run elsewhere: submit every job of the sweep, then follow them together.

Hydra's basic launcher runs a sweep's jobs one after another in this process; a launcher
that followed each job before returning would run the sweep serially. In a multirun
such a launcher (SLURM, the Kubernetes kinds) submits, then ``defer``s a function that
follows its job; the ``FollowDeferredJobs`` callback (conf/hydra/default.yaml) runs them
all concurrently once the sweep is submitted, prints each outcome and exits with the worst
exit code. Ctrl-C stops following, never the jobs: each says how to reattach.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from typing import Any, Callable, Optional

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

CALLBACK = "aegis.launch.deferred.FollowDeferredJobs"


@dataclass(frozen=True)
class Deferred:
    label: str  # how the outcome names the job: "run lr-0 (SLURM job 12)", "PyTorchJob ns/name (run r)"
    follow: Callable[[], int]  # to the job's end; its exit code
    interrupt: Optional[Callable[[], None]] = None  # stop a follow() in flight (Ctrl-C)
    reattach: Optional[Callable[[], str]] = None  # after Ctrl-C: how to find the job again


_pending: list[Deferred] = []


def deferring() -> bool:
    """True in a multirun whose Hydra config carries the follow-all callback."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return False
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return False
    return any(getattr(cb, "get", lambda *_: None)("_target_") == CALLBACK for cb in (hydra_cfg.callbacks or {}).values())


def defer(label: str, follow: Callable[[], int], interrupt: Optional[Callable[[], None]] = None,
          reattach: Optional[Callable[[], str]] = None) -> None:
    _pending.append(Deferred(label, follow, interrupt, reattach))


def follow_all(jobs: list[Deferred]) -> int:
    """Run every follower in its own thread; the worst exit code (0 when all succeeded)."""
    codes: dict[int, int] = {}
    errors: dict[int, Exception] = {}

    def one(i: int, follow: Callable[[], int]) -> None:
        try:
            codes[i] = follow()
        except Exception as exc:  # one job's trouble must not hide the others
            errors[i] = exc
            codes[i] = 1

    threads = [threading.Thread(target=one, args=(i, job.follow), daemon=True) for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)
    except KeyboardInterrupt:
        for job in jobs:
            if job.interrupt is not None:
                job.interrupt()
        hints = [job.reattach() for job in jobs if job.reattach is not None]
        for hint in hints or ["Stopped following; the jobs go on (python -m aegis list)."]:
            print(hint, file=sys.stderr)
        return 130
    print("Sweep outcome:", file=sys.stderr)
    for i, job in enumerate(jobs):
        code = codes.get(i, 1)
        what = "succeeded" if code == 0 else f"failed (exit code {code})"
        if i in errors:
            what += f": could not follow: {errors[i]}"
        print(f"  {job.label}: {what}", file=sys.stderr)
    return max(codes.values(), default=0)


class FollowDeferredJobs(Callback):
    """Hydra callback: after a sweep is submitted, follow its deferred jobs together."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not _pending:
            return
        jobs = list(_pending)
        _pending.clear()
        code = follow_all(jobs)
        if code:
            sys.exit(code)
