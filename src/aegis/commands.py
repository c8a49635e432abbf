"""``aegis`` (or ``python -m aegis``): the life of runs after they were started.

    aegis list                                  recent runs: id, launcher, state, age, key metric, job
    aegis status RUN [--json]                   the state word first, then per-replica detail
    aegis logs RUN [--follow] [--replica R]     a replica's log (rank0 / the master by default); --follow
                                                waits for the end and exits with the job's code
    aegis cancel RUN                            SIGTERM a local run or gang (it checkpoints); delete a cluster job
    aegis show RUN | models:/NAME@ALIAS         lineage: commit, reproduce command, launch, image, data, versions
    aegis data ls                               cached datasets (paths.dataset_cache): entry, size, age, source
    aegis data rm ENTRY... | --all              evict cached datasets

Every command reads only the run dir (``job.json``, ``summary.json``, logs) and whatever
the job's launcher reaches from there; no torch, no Hydra composition. Errors are one
sentence and exit 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from aegis.data.cli import add_commands as add_data_commands
from aegis.data.cli import default_cache
from aegis.errors import AegisError, error_lines
from aegis.core.lifecycle import JobRef, JobStatus, State
from aegis.core.registry import IN_PROCESS
from aegis.runs import RunDir, default_root, find_run, iter_runs

_KEY_METRICS = ("test/acc", "val/acc", "test/loss", "val/loss")


def _ref(run: RunDir) -> JobRef:
    """The run's job; a run dir without ``job.json`` (a search trial, an older run) is read
    as a local process that has ended. Its run dir is where ``job.json`` was found, whatever
    the file says: what ``cancel`` writes goes there and nowhere else."""
    ref = JobRef.read(run.path)
    if ref is None:
        return JobRef(launcher=IN_PROCESS, run_id=run.run_id, run_dir=str(run.path))
    return dataclasses.replace(ref, run_dir=str(run.path))


def _launcher(ref: JobRef):
    from aegis.core.registry import get_launcher

    return get_launcher(ref.launcher)


def _status(ref: JobRef) -> JobStatus:
    return _launcher(ref).status(ref)


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def _key_metric(status: JobStatus) -> str:
    metrics = status.details.get("metrics") or {}
    for name in _KEY_METRICS:
        if name in metrics:
            return f"{name}={metrics[name]:.4f}"
    return ""


def cmd_list(args: argparse.Namespace) -> int:
    runs = sorted(iter_runs(args.root), key=lambda r: r.modified, reverse=True)
    if not args.all:
        runs = runs[: args.limit]
    if not runs:
        print(f"no runs under {args.root}", file=sys.stderr)
        return 0
    rows = [("RUN ID", "LAUNCHER", "STATE", "AGE", "METRIC", "JOB")]
    now = time.time()
    for run in runs:
        ref = _ref(run)
        try:
            launcher = _launcher(ref)
            status = launcher.status(ref)
            state, metric, job = status.state.value, _key_metric(status), launcher.describe(ref)
        except AegisError as exc:  # an unreachable cluster must not hide the other runs
            state, metric, job = "unreachable", str(exc)[:40], ""
        rows.append((run.run_id, ref.launcher, state, _age(now - run.modified), metric, job))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    run = find_run(args.run, args.root)
    ref = _ref(run)
    status = _status(ref)
    if args.json:
        print(json.dumps({"run_id": run.run_id, "run_dir": str(run.path), "launcher": ref.launcher,
                          "job": _launcher(ref).describe(ref), **status.as_dict()}, indent=2, default=str))
        return 0
    print(status.state.value)
    where = _launcher(ref).describe(ref)
    lines = [("run", f"{run.run_id} (launcher {ref.launcher}{', ' + where if where else ''})"),
             ("run dir", str(run.path))]
    if status.reason:
        lines.append(("reason", status.reason))
    if status.exit_code is not None:
        lines.append(("exit code", str(status.exit_code)))
    for replica in status.replicas:
        extra = ", ".join(x for x in (f"exit {replica.exit_code}" if replica.exit_code is not None else "",
                                      replica.reason or "", f"node {replica.node}" if replica.node else "") if x)
        lines.append(("replica", f"{replica.name} {replica.state.value}" + (f" ({extra})" if extra else "")))
    metrics = status.details.get("metrics") or {}
    if metrics:
        lines.append(("metrics", " ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items()))))
    for key in ("progress", "epochs_completed", "global_step", "tracking_run_id"):
        if status.details.get(key) is not None:
            lines.append((key.replace("_", " "), str(status.details[key])))
    for label, value in lines:
        print(f"{label:<18}{value}")
    _print_failure(status)
    return 0


def _print_failure(status: JobStatus, out=None) -> None:
    """The failure's paragraph (``aegis.failures.record.Failure``) when the launcher found one: which
    rank or pod, why, its last log lines."""
    if status.details.get("failure"):
        from aegis.failures.record import Failure

        print(Failure.from_dict(status.details["failure"]).paragraph(), file=out or sys.stdout)


def cmd_logs(args: argparse.Namespace) -> int:
    """With ``--follow``: the job followed to its end from any terminal, for every launcher,
    built from ``logs`` and ``status`` alone; the exit code is the job's, as if it had been
    started in this terminal."""
    ref = _ref(find_run(args.run, args.root))
    launcher = _launcher(ref)
    printed = 0
    try:
        for line in launcher.logs(ref, replica=args.replica, follow=args.follow):
            print(line, flush=args.follow)
            printed += 1
    except KeyboardInterrupt:
        return 130
    if not args.follow:
        if not printed:
            _say_why_no_log(launcher, ref)
        return 0
    status = launcher.status(ref)
    print(f"run {ref.run_id} {status.state.value}" + (f": {status.reason}" if status.reason else ""), file=sys.stderr)
    _print_failure(status, sys.stderr)
    return job_exit_code(status)


def _say_why_no_log(launcher, ref: JobRef) -> None:
    """A run in its first seconds has written no log line yet (it is importing torch, reading
    its data): one line on stderr says so, rather than nothing at all."""
    try:
        state = launcher.status(ref).state
    except AegisError:
        return
    if not state.terminal:
        print(f"run {ref.run_id} is {state.value} and has logged nothing yet (it is starting: importing, "
              f"reading its data); python -m aegis logs {ref.run_id} --follow waits for its lines.", file=sys.stderr)
    else:
        print(f"run {ref.run_id} is {state.value} and left no log lines.", file=sys.stderr)


def job_exit_code(status: JobStatus) -> int:
    return status.exit_status()


def cmd_cancel(args: argparse.Namespace) -> int:
    run = find_run(args.run, args.root)
    if not run.path.resolve().is_relative_to(args.root):
        raise AegisError(f"{run.path} is not under the outputs root {args.root}: cancel acts only on runs there "
                         "(--root DIR or AEGIS_OUTPUT_ROOT sets it; python -m aegis list shows its runs).")
    ref = _ref(run)
    launcher = _launcher(ref)
    launcher.cancel(ref)
    print(f"cancel requested for {run.run_id}", file=sys.stderr)
    if args.wait:
        deadline = time.time() + args.timeout
        while time.time() < deadline:
            state = launcher.status(ref).state
            if state.terminal:
                print(state.value)
                return 0 if state in (State.cancelled, State.preempted, State.succeeded) else 1
            time.sleep(0.2)
        print(f"Error: run {run.run_id} did not stop within {args.timeout:g} s; see python -m aegis status "
              f"{run.run_id}.", file=sys.stderr)
        return 1
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from aegis.show import print_shown, show

    print_shown(show(args.target, args.root, args.tracking_uri), as_json=args.json)
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="aegis", description="List, inspect, follow and cancel Aegis runs.")
    top.add_argument("--root", type=Path, default=None,
                     help="where runs live (default: $AEGIS_OUTPUT_ROOT, else ./outputs)")
    sub = top.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="recent runs")
    listing.add_argument("--limit", type=int, default=20)
    listing.add_argument("--all", action="store_true")
    listing.set_defaults(fn=cmd_list)
    status = sub.add_parser("status", help="a run's state")
    status.add_argument("run", help="run id, unique prefix, or run dir")
    status.add_argument("--json", action="store_true")
    status.set_defaults(fn=cmd_status)
    logs = sub.add_parser("logs", help="a run's log")
    logs.add_argument("run")
    logs.add_argument("--follow", "-f", action="store_true")
    logs.add_argument("--replica", default=None, help="rank1, worker-1, a pod name ... (default: the primary)")
    logs.set_defaults(fn=cmd_logs)
    cancel = sub.add_parser("cancel", help="stop a run (it checkpoints) or delete its cluster job")
    cancel.add_argument("run")
    cancel.add_argument("--no-wait", dest="wait", action="store_false", help="return once the request is sent")
    cancel.add_argument("--timeout", type=float, default=120.0)
    cancel.set_defaults(fn=cmd_cancel)
    shown = sub.add_parser("show", help="what produced a run or a registered model version (its lineage)")
    shown.add_argument("target", help="run id, unique prefix, run dir, MLflow run id, models:/NAME@ALIAS or "
                                      "models:/NAME/VERSION")
    shown.add_argument("--tracking-uri", default=None,
                       help="the MLflow store (default: the run's tracking.json, else $MLFLOW_TRACKING_URI, "
                            "else <root>/mlflow.db)")
    shown.add_argument("--json", action="store_true")
    shown.set_defaults(fn=cmd_show)
    data = sub.add_parser("data", help="the dataset cache: ls, rm")
    data.add_argument("--cache", type=Path, default=None,
                      help="the cache dir (default: $AEGIS_DATASET_CACHE, else <root>/dataset-cache)")
    add_data_commands(data.add_subparsers(dest="data_command", required=True), with_fetch=False)
    _global_options_anywhere(sub)
    return top


def _global_options_anywhere(sub: "argparse._SubParsersAction") -> None:
    """``aegis list --root DIR`` as well as ``aegis --root DIR list``: each subcommand (and
    ``data``'s own) accepts ``--root`` too. Its default is SUPPRESS, so that a subcommand that
    was not given it leaves the top-level value as it is."""
    parsers = list(sub.choices.values())
    while parsers:
        command = parsers.pop()
        if not any("--root" in action.option_strings for action in command._actions):
            command.add_argument("--root", type=Path, default=argparse.SUPPRESS,
                                 help="where runs live (default: $AEGIS_OUTPUT_ROOT, else ./outputs)")
        for action in command._actions:
            if isinstance(action, argparse._SubParsersAction):
                parsers.extend(action.choices.values())


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "data":
        args.cache = (args.cache or default_cache(args.root)).resolve()
    args.root = (args.root or default_root()).resolve()
    try:
        return args.fn(args)
    except AegisError as exc:
        for line in error_lines(exc):  # one line per problem of a ConfigErrors
            print(line, file=sys.stderr)
        return 1
    except BrokenPipeError:  # `aegis logs RUN | head`
        return 0
