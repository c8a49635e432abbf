"""A Ray pod's preStop hook: the search takes its SIGTERM path before the pod goes.

KubeRay runs a Ray pod's container as ``/bin/bash -c -- 'ulimit ...; ray start ... --block'``,
so a pod's SIGTERM reaches ``ray start``, which drains and stops the node's Ray processes within
seconds; the search's driver (the RayJob's entrypoint, a child of Ray's job supervisor on the
head) and its trials never see the signal, and nothing records that the search was cut short.
KubeRay deletes the Ray cluster on a Kueue suspension and on ``aegis cancel`` (its own
``rayjob_controller.go`` advises a preStop hook for this), and the kubelet runs a container's
preStop hook before it sends the SIGTERM. So this hook, in every Ray pod of a RayJob:

- sends SIGTERM to the search's driver in this container (the process whose arguments carry the
  RayJob's ``hydra.sweep.dir=<sweep dir>``; only the head has one), which is the local search's
  SIGTERM path (``aegis.tune.search``): Ray Tune saves the search, stops the trials at the epoch
  they are in (each has its last epoch's ``last.ckpt`` and reported it), the driver records them
  ``interrupted`` and exits 130;
- waits until that driver has exited and no trial of the sweep dir is still running on this
  node (a worker pod waits for the head's driver to stop its trials, so that they end as
  interrupted rather than as crashed when the worker's Ray stops under them);
- returns within the termination grace period (``AEGIS_TERMINATION_GRACE_S``) less a margin
  for Ray's own shutdown, whatever it found, and always with status 0: the kubelet kills the
  container at the grace period's end anyway, and a failed hook is only an event.

Rerunning the same RayJob (Kueue resuming it, or the same command) continues the search in its
sweep dir: finished trials are not redone, interrupted ones continue from their last epoch.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Iterable, Optional

from aegis.core.context import quote_override
from aegis.core.rank_notes import grace_period_s

# Kept back from the grace period for the kubelet's SIGTERM and Ray's own drain and shutdown.
SHUTDOWN_MARGIN_S = 5.0
POLL_S = 0.2


def driver_token(sweep_dir: str) -> str:
    """The argument that marks the search's driver: the RayJob's entrypoint pins the sweep dir
    with exactly this override (``aegis.launch.rayjob.render.search_overrides``)."""
    return f"hydra.sweep.dir={quote_override(sweep_dir)}"


def _argv(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _parent(pid: int) -> Optional[int]:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def search_drivers(sweep_dir: str, proc: Path = Path("/proc")) -> list[int]:
    """The pids of this container's search drivers for ``sweep_dir``: processes with one argument
    equal to the pinned override (the shell that runs the entrypoint has it only inside a longer
    string), less any that is an ancestor of another (a wrapper that passes the words on): the
    signal goes to the search itself."""
    token, me = driver_token(sweep_dir), os.getpid()
    found = [int(e.name) for e in proc.iterdir()
             if e.name.isdigit() and int(e.name) != me and token in _argv(int(e.name))]
    ancestors = set()
    for pid in found:
        parent = _parent(pid)
        while parent and parent not in ancestors and parent != 1:
            ancestors.add(parent)
            parent = _parent(parent)
    return [pid for pid in found if pid not in ancestors]


def running_trials(sweep_dir: Path) -> list[Path]:
    """Trial run dirs whose record says a process on this node is still training it."""
    from aegis.core.lifecycle import process_alive
    from aegis.core.files import read_json

    here = socket.gethostname()
    busy = []
    for summary in sweep_dir.glob("*/summary.json"):
        record = read_json(summary) or {}
        pid = record.get("pid")
        if record.get("status") == "running" and record.get("host") == here and isinstance(pid, int) \
                and process_alive(pid, here):
            busy.append(summary.parent)
    return busy


def _alive(pids: Iterable[int]) -> list[int]:
    from aegis.core.lifecycle import process_alive

    return [pid for pid in pids if process_alive(pid, None)]


def stop_search(sweep_dir: str, budget_s: Optional[float] = None) -> tuple[list[int], list[int], list[Path]]:
    """SIGTERM this container's search drivers for ``sweep_dir``, then wait for them and for this
    node's trials, at most ``budget_s`` (the grace period less ``SHUTDOWN_MARGIN_S``).
    Returns (drivers signalled, drivers still alive, trials still running) at the end."""
    budget = grace_period_s() - SHUTDOWN_MARGIN_S if budget_s is None else budget_s
    deadline = time.monotonic() + max(0.0, budget)
    drivers = search_drivers(sweep_dir)
    for pid in drivers:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    while True:
        left, busy = _alive(drivers), running_trials(Path(sweep_dir))
        if (not left and not busy) or time.monotonic() >= deadline:
            return drivers, left, busy
        time.sleep(POLL_S)


def main(argv: Optional[list[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m aegis.tune.prestop <the search's sweep dir>", file=sys.stderr)
        return 0  # a hook's status only makes an event; never block the pod's end on it
    started = time.monotonic()
    drivers, left, busy = stop_search(args[0])
    took = time.monotonic() - started
    line = (f"[aegis preStop] {len(drivers)} search driver(s) signalled in {took:.1f}s; "
            f"still running: {len(left)} driver(s), {len(busy)} trial(s)")
    print(line)
    # The kubelet keeps a hook's output only when the hook fails; the pod's log (PID 1's output,
    # KubeRay's `ray start`) is where a user looks.
    if "start" in _argv(1) and any(Path(word).name == "ray" for word in _argv(1)):
        try:
            with open("/proc/1/fd/1", "w") as out:
                print(line, file=out)
        except OSError:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
