"""Helpers the tests share: run train.py as users do, find run dirs, read summaries.

Every test writes under its own tmp dir (``paths.root`` via AEGIS_OUTPUT_ROOT), so
tests never see each other's run dirs or MLflow stores. (A module, not conftest.py:
tests/k8s has a conftest of its own, and ``import conftest`` would be ambiguous.)
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional

import pytest
import yaml


REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
TRAIN = REPO / "train.py"


# The upstream CRDs (PyTorchJob, TrainJob, RayJob) beside the checkout, as DESIGN.md describes.
SCHEMAS = REPO.parent / "shared" / "schemas"


@functools.lru_cache(maxsize=None)
def _parsed(path: Path) -> dict:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ~0.3 s for the RayJob CRD, not ~2.2 s
    return yaml.load(path.read_text(), Loader=loader)


def crd_schema(file: str, version: str) -> dict:
    """The ``openAPIV3Schema`` of ``version`` in the upstream CRD ``SCHEMAS/file``, parsed once per
    test process and shared: read it, or copy it before changing it."""
    [served] = [v for v in _parsed(SCHEMAS / file)["spec"]["versions"] if v["name"] == version]
    return served["schema"]["openAPIV3Schema"]


# socketserver's shutdown() waits up to one poll of serve_forever: its default 0.5 s, per server per test.
SERVER_POLL_S = 0.02


def serve(server: Any) -> threading.Thread:
    """Serve ``server`` (a socketserver) on a daemon thread that ``server.shutdown()`` stops at once."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": SERVER_POLL_S}, daemon=True)
    thread.start()
    return thread


def tier_table(cases: list, default: Iterable[int] | Callable[[Any], bool],
               ids: Optional[Callable[[Any], str]] = None) -> list:
    """A table of ``python train.py`` cases (about a second of CPU each) split between tiers:
    the ``default`` cases (one for each place a refusal comes from: their positions, or a test
    of the case) run in the README suite, every other one in the slow tier, which CI runs after
    it. A case that moves keeps its sentence checked end to end, one tier later. ``ids``: each
    case's test id (pytest's own by default)."""
    keep = {i for i, case in enumerate(cases) if default(case)} if callable(default) else set(default)
    assert keep and keep <= set(range(len(cases))), "a default case that is not in the table"
    values = [case if isinstance(case, tuple) else (case,) for case in cases]  # one argname: the case itself
    return [pytest.param(*value, id=None if ids is None else ids(case), marks=() if i in keep else pytest.mark.slow)
            for i, (case, value) in enumerate(zip(cases, values))]


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


@contextlib.contextmanager
def delaying_proxy(upstream_port: int, path_part: str, delay_s: float) -> Iterator[int]:
    """An HTTP proxy to ``127.0.0.1:upstream_port`` that holds every request whose path holds
    ``path_part`` for ``delay_s`` first (a slow tracking server); yields its port."""
    import http.client
    import http.server

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _forward(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if path_part in self.path:
                time.sleep(delay_s)
            upstream = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
            upstream.request(self.command, self.path, body=body or None, headers=headers)
            answer = upstream.getresponse()
            data = answer.read()
            self.send_response(answer.status)
            for key, value in answer.getheaders():
                if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            upstream.close()

        do_GET = do_POST = do_PATCH = do_DELETE = _forward

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    serve(server)
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
