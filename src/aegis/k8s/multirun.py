"""Multirun on a cluster: submit every job of a sweep, then follow them all at once.

Hydra's basic launcher runs a sweep's jobs one after another in this process; a
cluster launcher that followed each job before returning would run the sweep serially.
So in a multirun the Kubernetes launchers only submit and park the handle here, and
the ``FollowSubmittedJobs`` Hydra callback (configured in conf/hydra/default.yaml)
follows all of them concurrently when the sweep has been submitted, prints each
outcome and exits non-zero if any job failed.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, Optional

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

CALLBACK = "aegis.k8s.multirun.FollowSubmittedJobs"
_pending: list[Any] = []  # aegis.k8s.launcher.Submitted


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


def defer(handle: Any) -> None:
    _pending.append(handle)


def follow_all(handles: list[Any], out: Optional[Any] = None) -> int:
    """Follow every handle concurrently; the worst exit code (0 when all succeeded)."""
    from aegis.k8s.follow import Follower
    from aegis.k8s.launcher import detach

    out = out or sys.stdout
    followers, codes, errors = [], {}, {}

    def one(i: int, follower: Follower) -> None:
        try:
            codes[i] = follower.run()
        except Exception as exc:  # one job's API trouble must not hide the others
            errors[i] = exc
            codes[i] = 1

    threads = []
    for i, handle in enumerate(handles):
        plan = handle.plan
        follower = Follower(handle.cluster, handle.target(), poll_s=float(plan.settings.get("poll_interval_s", 2.0)),
                            pending_timeout_s=plan.settings.get("pending_timeout_s"),
                            prefix=f"[{plan.name}] ")
        followers.append(follower)
        t = threading.Thread(target=one, args=(i, follower), daemon=True)
        t.start()
        threads.append(t)
    try:
        for t in threads:
            while t.is_alive():
                t.join(0.2)
    except KeyboardInterrupt:
        for follower, handle in zip(followers, handles):
            follower.interrupt()
            print(detach(handle), file=sys.stderr)
        return 130
    print("[k8s] sweep outcome:", file=sys.stderr)
    for i, handle in enumerate(handles):
        plan = handle.plan
        what = "succeeded" if codes.get(i) == 0 else f"failed (exit code {codes.get(i)})"
        if i in errors:
            what += f": {errors[i]}"
        print(f"[k8s]   {plan.kind} {plan.namespace}/{plan.name} (run {plan.run_id}): {what}", file=sys.stderr)
    return max(codes.values(), default=0)


class FollowSubmittedJobs(Callback):
    """Hydra callback: after a sweep is submitted, follow its cluster jobs together."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not _pending:
            return
        handles = list(_pending)
        _pending.clear()
        code = follow_all(handles)
        if code:
            sys.exit(code)
