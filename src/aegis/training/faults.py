"""The injected fault (``fault=raise|exit|kill|hang``): a Lightning callback on one rank.

It exists so that a user can rehearse a failure before a long run (is the gang restarted,
does it resume, does the alert name the rank?) and so that our tests can make one. It is
added to the trainer only when a fault is configured (``fault_callbacks``), fires on
global rank ``fault.rank`` at the first training batch whose global step is at least
``fault.step``, and says what it is about to do in that rank's log first, so that the
log's last lines explain the failure even when the process leaves no other record.

``fault.once`` (the default): the rank writes ``fault.json`` in the run dir before it
fires, and a later attempt of the same run dir that finds it (the same kind, rank and
step) does not fire again: ``launcher.max_restarts=1 fault=kill`` restarts, resumes from
``last.ckpt`` and finishes.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig

log = logging.getLogger("aegis.training")

MARKER = "fault.json"


class InjectedFault(RuntimeError):
    """The exception of ``fault=raise``: unmistakably a drill, never a real bug."""


def fault_callbacks(cfg: DictConfig, run_dir: Path) -> list[Callback]:
    """The fault's callback when ``cfg.fault`` asks for one; nothing otherwise."""
    fault = cfg.get("fault")
    if fault is None or fault.get("kind", "none") == "none":
        return []
    return [FaultInjection(fault, run_dir)]


def _identity(fault: DictConfig) -> dict[str, Any]:
    return {"kind": str(fault.kind), "rank": int(fault.rank), "step": int(fault.step)}


def already_fired(fault: DictConfig, run_dir: Path) -> bool:
    """True when this run dir records that this same fault fired in an earlier attempt."""
    try:
        fired = json.loads((run_dir / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(fired, dict) and {k: fired.get(k) for k in ("kind", "rank", "step")} == _identity(fault)


class FaultInjection(Callback):
    def __init__(self, fault: DictConfig, run_dir: Path) -> None:
        self.fault = fault
        self.run_dir = run_dir
        self.armed = True

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        fault = self.fault
        if not self.armed or trainer.global_rank != fault.rank or trainer.global_step < fault.step:
            return
        self.armed = False
        if fault.once:
            if already_fired(fault, self.run_dir):
                log.info("fault=%s already fired in an earlier attempt of this run dir (fault.once=true): not again.",
                         fault.kind)
                return
            self._mark()
        self.fire(trainer.global_step)

    def _mark(self) -> None:
        record = {**_identity(self.fault), "fired_at": time.time(), "pid": os.getpid()}
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            temp = self.run_dir / f".{MARKER}.{os.getpid()}.tmp"
            temp.write_text(json.dumps(record))
            os.replace(temp, self.run_dir / MARKER)
        except OSError as exc:  # the drill still fires; a restart would fire it again
            log.warning("Could not record the fault in %s: %s", self.run_dir / MARKER, exc)

    def fire(self, step: int) -> None:
        fault = self.fault
        where = f"rank {fault.rank} at global step {step}"
        if fault.kind == "raise":
            log.error("Injected fault: %s raises InjectedFault (fault=raise).", where)
            raise InjectedFault(str(fault.message))
        if fault.kind == "exit":
            log.error("Injected fault: %s exits with code %d (fault=exit).", where, fault.exit_code)
            _flush()
            sys.exit(int(fault.exit_code))
        if fault.kind == "kill":
            log.error("Injected fault: %s sends itself SIGKILL (fault=kill).", where)
            _flush()
            os.kill(os.getpid(), signal.SIGKILL)
        if fault.kind == "hang":
            log.error("Injected fault: %s stops responding (fault=hang); the other ranks' collectives "
                      "time out after strategy.timeout_s.", where)
            _flush()
            _hang()


def _flush() -> None:
    """The log line above must reach the rank's log file before the process goes."""
    for handler in logging.getLogger().handlers + log.handlers:
        try:
            handler.flush()
        except Exception:
            pass
    sys.stdout.flush()
    sys.stderr.flush()


def _hang() -> None:
    """Sleep for good, deaf to SIGTERM as a process stuck in a driver call is: only SIGKILL
    (torchrun's, after its shutdown timeout) ends it, or Ctrl-C at a terminal."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while True:
        time.sleep(3600)
