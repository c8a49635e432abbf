"""Training progress in a Kubeflow TrainJob's own status (``status.trainerStatus``).

Why: with Kubeflow Trainer v2.2+ and its ``TrainJobStatus`` feature gate, ``kubectl get
trainjob``, the Kubeflow SDK and dashboards read a run's progress, ETA and metrics from the
TrainJob itself instead of its logs; ``aegis status RUN`` shows them too. Rank 0 posts them;
nothing runs at all where the controller did not inject its endpoint.

The request, as Kubeflow Trainer v2.3.0 serves it (same in v2.2.0/v2.2.1):

- ``pkg/runtime/framework/plugins/trainjobstatus/trainjobstatus.go`` injects into every trainer
  container ``KUBEFLOW_TRAINER_SERVER_URL`` (the full HTTPS URL, path included:
  ``https://<webhook service>.<ns>.svc:<port>/apis/trainer.kubeflow.org/v1alpha1/namespaces/
  <ns>/trainjobs/<name>/status``), and two *file paths*: ``KUBEFLOW_TRAINER_SERVER_CA_CERT``
  (``/var/run/secrets/kubeflow/trainer/ca.crt``, the webhook CA from a ConfigMap) and
  ``KUBEFLOW_TRAINER_SERVER_TOKEN`` (``.../token``, a projected service-account token with the
  TrainJob's own audience and ``expirationSeconds: 3600``: the kubelet rotates it, so it is
  re-read before every post).
- ``pkg/statusserver/server.go`` routes ``POST`` on that path; ``auth.go`` wants
  ``Authorization: Bearer <token>``; the body is ``UpdateTrainJobStatusRequest``
  (``pkg/apis/trainer/v1alpha1/trainjob_types.go``): ``{"trainerStatus": {"progressPercentage":
  int32 0-100, "estimatedRemainingSeconds": int32 >= 0, "metrics": [{"name": str 1-64,
  "value": str 1-64}] (at most 256), "lastUpdatedTime": RFC 3339}}``; 200 echoes the body, an
  error is a ``metav1.Status`` JSON (401/403 token, 422 invalid, 404, 500); bodies over 64 kB
  are refused.
- ``docs/user-guides/trainjob-progress.md`` (v2.3.0) asks clients to post at most once every
  5 s and never to let reporting break training.

So: hooks only note the newest state (no I/O, a few microseconds, nothing at all on steps
between reports); one daemon thread posts the newest state at most once per ``interval_s``
with a short timeout; each kind of failure (a hanging or refusing endpoint, an HTTP error, an
unreadable token or CA file) is one warning line for the whole run, and training goes on. The
last state is flushed at the end of training (and of the test after it), waiting about one
timeout at most, and not at all while the endpoint is known to hang (its last post timed out).
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import lightning.pytorch as L

log = logging.getLogger("aegis.training")

ENV_URL = "KUBEFLOW_TRAINER_SERVER_URL"  # the endpoint itself
ENV_CA_CERT = "KUBEFLOW_TRAINER_SERVER_CA_CERT"  # a file path
ENV_TOKEN = "KUBEFLOW_TRAINER_SERVER_TOKEN"  # a file path; the file rotates

INTERVAL_S = 5.0  # the user guide's "at most once every 5 seconds"
TIMEOUT_S = 3.0
MAX_METRICS = 256  # trainjob_types.go: metrics MaxItems
MAX_FIELD = 64  # trainjob_types.go: a metric's name and value, MaxLength each
INT32_MAX = 2**31 - 1


@dataclass(frozen=True)
class Endpoint:
    url: str
    ca_file: Path
    token_file: Path

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Optional["Endpoint"]:
        """The controller's endpoint when all three variables are set; None when none is (not
        a TrainJob, or the gate is off); one warning and None when only some are."""
        values = {name: env.get(name) or "" for name in (ENV_URL, ENV_CA_CERT, ENV_TOKEN)}
        if not any(values.values()):
            return None
        missing = [name for name, value in values.items() if not value]
        if missing:
            log.warning("Not reporting progress to the TrainJob's status: %s is set but %s is not (Kubeflow "
                        "Trainer's TrainJobStatus plugin sets all three).",
                        ", ".join(n for n in values if n not in missing), ", ".join(missing))
            return None
        return cls(values[ENV_URL], Path(values[ENV_CA_CERT]), Path(values[ENV_TOKEN]))


def rfc3339(unix: float) -> str:
    return datetime.fromtimestamp(unix, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def metric_list(metrics: Mapping[str, float]) -> list[dict[str, str]]:
    """Epoch-level scalars as the API wants them: name/value strings within 64 characters,
    finite values only, at most 256, sorted by name."""
    out = []
    for name in sorted(metrics):
        value = metrics[name]
        if name.endswith(("_step", "_epoch")) or not math.isfinite(value) or not 0 < len(name) <= MAX_FIELD:
            continue
        out.append({"name": name, "value": f"{value:.6g}"})
    return out[:MAX_METRICS]


def trainer_status(progress: Optional[int], remaining_s: Optional[float], metrics: Mapping[str, float],
                   observed_unix: float) -> dict[str, Any]:
    """The ``trainerStatus`` object; unknown progress or ETA are left out (the API's "unknown")."""
    status: dict[str, Any] = {}
    if progress is not None:
        status["progressPercentage"] = max(0, min(100, int(progress)))
    if remaining_s is not None and math.isfinite(remaining_s):
        status["estimatedRemainingSeconds"] = max(0, min(INT32_MAX, int(round(remaining_s))))
    listed = metric_list(metrics)
    if listed:
        status["metrics"] = listed
    status["lastUpdatedTime"] = rfc3339(observed_unix)
    return status


class _Failed(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class StatusPoster:
    """Posts the newest ``trainerStatus`` from a daemon thread, at most once per ``interval_s``.

    ``offer`` never blocks on the network: it replaces the pending state and wakes the thread.
    States offered faster than the interval are coalesced (the newest wins). ``flush`` posts the
    pending state at once, without waiting out the interval, and waits at most ``wait_s``.
    """

    def __init__(self, endpoint: Endpoint, *, interval_s: float = INTERVAL_S, timeout_s: float = TIMEOUT_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.endpoint = endpoint
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.clock = clock
        self._cond = threading.Condition()
        self._pending: Optional[dict[str, Any]] = None
        self._in_flight = False
        self._urgent = False  # a flush asked: post the pending state without waiting the interval
        self._last_attempt = -math.inf
        self._thread: Optional[threading.Thread] = None
        self._hung = False  # the last attempt timed out: a flush does not wait for the endpoint
        self._warned: set[str] = set()
        self.posted = 0  # answered 2xx
        self.failed = 0

    def offer(self, status: dict[str, Any]) -> None:
        with self._cond:
            self._pending = status
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="aegis-trainjob-status", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def flush(self, wait_s: Optional[float] = None) -> bool:
        """Post what is pending now; True when nothing is left pending or in flight."""
        wait_s = self.timeout_s + 0.5 if wait_s is None else wait_s
        with self._cond:
            self._urgent = True
            self._cond.notify_all()
            done = self._cond.wait_for(lambda: self._pending is None and not self._in_flight,
                                       timeout=0 if self._hung else wait_s)
            if not done:
                self._hung = True
            return done

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._pending is None:
                        self._urgent = False
                        if not self._cond.wait(timeout=60):  # idle a minute: the thread ends, offer restarts it
                            if self._pending is None:
                                self._thread = None
                                return
                        continue
                    delay = self._last_attempt + self.interval_s - self.clock()
                    if self._urgent or delay <= 0:
                        break
                    self._cond.wait(timeout=delay)
                status, self._pending, self._in_flight = self._pending, None, True
                self._last_attempt = self.clock()
            try:
                self._post(status)
                self.posted += 1
                self._hung = False
            except _Failed as failure:
                self.failed += 1
                self._hung = failure.kind == "timeout"
                self._warn_once(failure.kind, str(failure))
            except Exception as exc:  # never let reporting end the thread silently, nor training
                self.failed += 1
                self._warn_once("unexpected", f"posting failed: {type(exc).__name__}: {exc}")
            finally:
                with self._cond:
                    self._in_flight = False
                    self._cond.notify_all()

    def _warn_once(self, kind: str, message: str) -> None:
        if kind in self._warned:
            return
        self._warned.add(kind)
        log.warning("TrainJob progress not reported: %s; training goes on (further failures of this kind are not "
                    "logged).", message)

    def _post(self, status: dict[str, Any]) -> None:
        endpoint = self.endpoint
        try:
            token = endpoint.token_file.read_text().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise _Failed("token", f"cannot read the token file {endpoint.token_file} ({ENV_TOKEN}): "
                                   f"{getattr(exc, 'strerror', None) or exc}") from None
        if not token:
            raise _Failed("token", f"the token file {endpoint.token_file} ({ENV_TOKEN}) is empty")
        try:  # re-read like the token: the webhook certificate, and so this CA, rotates too
            context = ssl.create_default_context(cafile=str(endpoint.ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise _Failed("ca", f"cannot load the CA file {endpoint.ca_file} ({ENV_CA_CERT}): "
                                f"{getattr(exc, 'strerror', None) or exc}") from None
        body = json.dumps({"trainerStatus": status}).encode()
        request = urllib.request.Request(endpoint.url, data=body, method="POST", headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        # No proxy: the endpoint is a cluster-internal Service, never reached through an egress proxy.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                             urllib.request.HTTPSHandler(context=context))
        try:
            with opener.open(request, timeout=self.timeout_s) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            raise _Failed(f"http {exc.code if exc.code < 500 else '5xx'}",
                          f"{endpoint.url} answered {exc.code}{_status_message(exc)}") from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, (TimeoutError, socket.timeout)):
                raise _Failed("timeout", f"{endpoint.url} did not answer within {self.timeout_s:g} s") from None
            if isinstance(reason, ssl.SSLError):
                raise _Failed("tls", f"TLS with {endpoint.url} failed ({reason}); the CA is {endpoint.ca_file}") \
                    from None
            raise _Failed("unreachable", f"cannot reach {endpoint.url}: {reason}") from None
        except (TimeoutError, socket.timeout):
            raise _Failed("timeout", f"{endpoint.url} did not answer within {self.timeout_s:g} s") from None
        except (OSError, ValueError) as exc:  # a reset mid-answer, a broken reply, a bad URL
            raise _Failed("unreachable", f"posting to {endpoint.url} failed: {exc}") from None


def _status_message(exc: urllib.error.HTTPError) -> str:
    """The ``metav1.Status`` message the status server sends with an error, when readable."""
    try:
        message = json.loads(exc.read(4096) or b"{}").get("message")
    except Exception:
        return ""
    return f" ({message})" if message else ""


class TrainerProgress(L.Callback):
    """Rank 0's progress, ETA and epoch metrics, offered to a ``StatusPoster``.

    Progress is optimizer steps over ``trainer.estimated_stepping_batches`` (a resumed run
    counts its restored steps), 100 once training ended normally (max epochs or steps, early
    stopping, ``max_time``); the ETA extrapolates this attempt's own step rate. Metrics are
    the ones Aegis logs per epoch (``trainer.callback_metrics`` after validation, without the
    ``_step``/``_epoch`` twins), and the test metrics once the test after fit ran.
    """

    def __init__(self, poster: StatusPoster, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.poster = poster
        self.clock = clock
        self.wall = wall
        self._active = False
        self._due = math.inf  # when a step may next offer a state: nothing before training starts
        self._total: Optional[float] = None
        self._start_step = 0
        self._start_time = 0.0
        self._step = 0
        self._done = False
        self.metrics: dict[str, float] = {}

    # -- the state
    def _progress(self) -> tuple[Optional[int], Optional[float]]:
        if self._done:
            return 100, 0.0
        total = self._total
        if not total or not math.isfinite(total):
            return None, None
        progress = int(100 * min(self._step, total) // total)
        steps = self._step - self._start_step
        elapsed = self.clock() - self._start_time
        remaining = (total - self._step) * elapsed / steps if steps > 0 and elapsed > 0 else None
        return min(progress, 99), remaining  # 100 is for a training that ended

    def _offer(self) -> None:
        progress, remaining = self._progress()
        self.poster.offer(trainer_status(progress, remaining, self.metrics, self.wall()))
        self._due = self.clock() + self.poster.interval_s

    def _read_metrics(self, trainer: L.Trainer) -> None:
        for name, value in trainer.callback_metrics.items():
            try:
                self.metrics[name] = float(value)
            except (TypeError, ValueError):
                continue

    # -- Lightning hooks
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._active = trainer.is_global_zero
        if not self._active:
            return
        try:
            self._total = float(trainer.estimated_stepping_batches)
        except Exception:  # an iterable dataset without a length and no max_steps: progress unknown
            self._total = None
        self._start_step = self._step = trainer.global_step
        self._start_time = self.clock()
        self._done = False
        self._offer()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if self.clock() < self._due:  # every step but one per interval stops here
            return
        if self._active:
            self._step = trainer.global_step
            self._offer()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._active or trainer.sanity_checking:
            return
        self._step = trainer.global_step
        self._read_metrics(trainer)
        self._offer()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._active:
            return
        self._step = trainer.global_step
        self._done = True
        self._read_metrics(trainer)
        self._offer()
        self._due = math.inf
        self.poster.flush()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if not self._active:
            return
        self._step = trainer.global_step
        self._offer()  # how far it got (a preempted run resumes from there), not 100
        self._due = math.inf
        self.poster.flush()

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._active:
            return
        self._read_metrics(trainer)
        self._offer()
        self._due = math.inf
        self.poster.flush()


def trainer_progress_callbacks(rank_zero: bool, env: Optional[Mapping[str, str]] = None, *,
                               interval_s: float = INTERVAL_S, timeout_s: float = TIMEOUT_S) -> list[L.Callback]:
    """``[TrainerProgress]`` on rank 0 of a TrainJob whose controller injected the status
    endpoint; ``[]`` everywhere else (no thread, no hook)."""
    if not rank_zero:
        return []
    endpoint = Endpoint.from_env(os.environ if env is None else env)
    if endpoint is None:
        return []
    log.info("Reporting progress to the TrainJob's status at %s (at most once every %g s).", endpoint.url, interval_s)
    return [TrainerProgress(StatusPoster(endpoint, interval_s=interval_s, timeout_s=timeout_s))]
