"""Helpers the tests share: run train.py as users do, find run dirs, read summaries.

Every test writes under its own tmp dir (``paths.root`` via AEGIS_OUTPUT_ROOT), so
tests never see each other's run dirs or MLflow stores. (A module, not conftest.py:
tests/k8s has a conftest of its own, and ``import conftest`` would be ambiguous.)
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterable, Iterator, Optional


REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
TRAIN = REPO / "train.py"


def run_train(
    args: Iterable[str],
    root: Path,
    *,
    env: Optional[dict[str, str]] = None,
    timeout: float = 300,
    entry: Optional[list[str]] = None,
) -> subprocess.CompletedProcess:
    """``python train.py ARGS`` with outputs under ``root``; returns the finished process."""
    full_env = {**os.environ, "AEGIS_OUTPUT_ROOT": str(root), "PYTHONUNBUFFERED": "1", **(env or {})}
    full_env.pop("MLFLOW_TRACKING_URI", None)
    command = (entry or [sys.executable, str(TRAIN)]) + list(args)
    return subprocess.run(command, cwd=REPO, env=full_env, capture_output=True, text=True, timeout=timeout)


def sigint_as_at_a_terminal() -> None:
    """``preexec_fn`` for a child that a test sends SIGINT: the child starts with SIGINT's
    default action whatever this process inherited (a non-interactive shell's ``&`` starts
    its jobs with SIGINT ignored, and Python keeps an ignored SIGINT ignored)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_dirs(root: Path) -> list[Path]:
    """Every run dir under ``root`` (single runs and multirun jobs): those with Hydra's record."""
    return sorted(p.parent for p in root.rglob(".hydra"))


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


@contextlib.contextmanager
def mlflow_server(folder: Path) -> Iterator[int]:
    """A real ``mlflow server`` on a free local port (SQLite store and artifacts in ``folder``),
    up until the block ends; yields its port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("mlflow")), "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{folder / 'server.db'}", "--default-artifact-root",
         str(folder / "server-artifacts")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "mlflow server did not start"
                time.sleep(0.5)
        yield port
    finally:
        server.terminate()
        server.wait(timeout=30)
