"""Talking to an MLflow tracking server (``http(s)://``) without being held hostage by it.

MLflow's client retries every request 7 times with a backoff factor of 2 and waits up to 120 s
for each answer (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``, ``..._BACKOFF_FACTOR``, ``..._TIMEOUT``):
with the server gone for good, a run stalled 12 minutes in three rounds of that, the terminal
showing nothing but urllib3's "Retrying" warnings, before it failed. Here:

- ``bound_requests`` sets those variables (only those the user has not set) so that one call
  gives up within ``BOUND_S`` seconds, and keeps urllib3's per-retry warnings off the terminal;
- ``probe`` asks the server once, at once, before the run's first real call, and says in one
  warning line that it does not answer (and how long the wait is bounded to); a server that
  answers 401/403 is reported as the credentials' problem (``credentials_sentence``), by the
  run and by ``aegis show``.

No torch or Lightning import: ``aegis show`` uses it too.
"""

from __future__ import annotations

import base64
import logging
import os
from typing import Any, Optional
from urllib.parse import urlsplit

from aegis.redact import mask_credentials

log = logging.getLogger("aegis.training")

# What Aegis sets when the user has not: 2 retries (1 s, then 2 s apart), 10 s per attempt.
BOUNDS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}
PROBE_TIMEOUT_S = 5.0
CREDENTIAL_VARS = "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN)"


def is_server(uri: Optional[str]) -> bool:
    return bool(uri) and str(uri).split(":", 1)[0].lower() in ("http", "https")


def bound_s() -> float:
    """The longest one MLflow call waits for an unreachable server, under the current settings."""
    try:
        retries = int(os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES", BOUNDS["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]))
        factor = float(os.environ.get("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
                                      BOUNDS["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"]))
        timeout = float(os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT", BOUNDS["MLFLOW_HTTP_REQUEST_TIMEOUT"]))
    except ValueError:
        return float("nan")
    return (retries + 1) * timeout + sum(min(120.0, factor * 2 ** n) for n in range(retries))


def bound_requests(uri: Optional[str]) -> None:
    """For a tracking server: MLflow's retries bounded (where the user has not set them) and
    urllib3's "Retrying (Retry(total=6 ...))" warnings kept off the terminal."""
    if not is_server(uri):
        return
    for name, value in BOUNDS.items():
        os.environ.setdefault(name, value)
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)


def is_credentials_failure(exc: BaseException) -> bool:
    """An MLflow error that is the server refusing who we are (HTTP 401/403)."""
    status = None
    getter = getattr(exc, "get_http_status_code", None)
    if callable(getter):
        try:
            status = getter()
        except Exception:
            status = None
    text = str(exc)
    return status in (401, 403) or "error code 401" in text or "error code 403" in text


def credentials_sentence(uri: str, status: Any = 401) -> str:
    given = any(os.environ.get(v) for v in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_TOKEN")) or (
        "@" in (urlsplit(uri).netloc or ""))
    what = "refused the credentials given" if given else "needs credentials and none were given"
    return (f"The MLflow server {mask_credentials(uri)} {what} (HTTP {status}): set {CREDENTIAL_VARS} "
            "for an account it accepts")


def _headers(uri: str) -> dict[str, str]:
    parts = urlsplit(uri)
    user = os.environ.get("MLFLOW_TRACKING_USERNAME") or parts.username
    password = os.environ.get("MLFLOW_TRACKING_PASSWORD") or parts.password
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    if token:
        return {"Authorization": f"Bearer {token}"}
    if user:
        pair = f"{user}:{password or ''}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode()}
    return {}


class ServerRefused(RuntimeError):
    """The server answered, and refused the credentials: one sentence, no retry."""


def probe(uri: str, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    """One request to the server, at once: True when it answers. Unreachable: one warning line
    (the run's calls then wait at most ``bound_s()`` each). 401/403: ``ServerRefused``."""
    import urllib.error
    import urllib.request

    parts = urlsplit(uri)
    base = f"{parts.scheme}://{parts.hostname}{':' + str(parts.port) if parts.port else ''}{parts.path.rstrip('/')}"
    request = urllib.request.Request(f"{base}/api/2.0/mlflow/experiments/search?max_results=1",
                                     headers=_headers(uri))
    try:
        with urllib.request.urlopen(request, timeout=timeout_s):
            return True
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise ServerRefused(credentials_sentence(uri, exc.code) + ".") from None
        return True  # it answers; whatever it said, the real call reports it
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        log.warning("The MLflow server %s does not answer (%s): each tracking call now waits at most %.0f s for it "
                    "(MLFLOW_HTTP_REQUEST_MAX_RETRIES/_TIMEOUT), then the run fails naming that call.",
                    mask_credentials(uri), reason, bound_s())
        return False
