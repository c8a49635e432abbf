"""A multirun of jobs that run elsewhere: submit every job of the sweep, then follow them together.

Hydra's basic launcher runs a sweep's jobs one after another in this process; a launcher
that followed each job before returning would run the sweep serially. In a multirun
such a launcher submits, then ``defer``s a function that follows its job; the
``FollowDeferredJobs`` callback (conf/hydra/default.yaml) runs them all concurrently
once the sweep is submitted, prints each outcome and exits with the worst exit code.
(The Kubernetes launchers have their own follower: ``aegis.k8s.multirun``.)
"""

from __future__ import annotations

import sys
import threading
from typing import Any, Callable

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

CALLBACK = "aegis.launch.deferred.FollowDeferredJobs"
_pending: list[tuple[str, Callable[[], int]]] = []


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


def defer(label: str, follow: Callable[[], int]) -> None:
    _pending.append((label, follow))


def follow_all(jobs: list[tuple[str, Callable[[], int]]]) -> int:
    """Run every follower in its own thread; the worst exit code (0 when all succeeded)."""
    codes: dict[int, int] = {}

    def one(i: int, follow: Callable[[], int]) -> None:
        try:
            codes[i] = follow()
        except Exception as exc:  # one job's trouble must not hide the others
            print(f"{jobs[i][0]}: could not follow: {exc}", file=sys.stderr)
            codes[i] = 1

    threads = [threading.Thread(target=one, args=(i, follow), daemon=True) for i, (_, follow) in enumerate(jobs)]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)
    except KeyboardInterrupt:
        print("Stopped following; the jobs go on (python -m aegis list).", file=sys.stderr)
        return 130
    print("Sweep outcome:", file=sys.stderr)
    for i, (label, _) in enumerate(jobs):
        code = codes.get(i, 1)
        print(f"  {label}: {'succeeded' if code == 0 else f'failed (exit code {code})'}", file=sys.stderr)
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
