"""Rank 0's progress in a TrainJob's status (``aegis.training.trainer_progress``), against a local
HTTPS server with its own CA that records each request, as Kubeflow Trainer v2.3.0's status
server (``pkg/statusserver/server.go``) would receive it: ``POST`` on the URL the controller
injects, ``Authorization: Bearer <token file>``, body ``{"trainerStatus": {...}}``
(``pkg/apis/trainer/v1alpha1/trainjob_types.go``), checked against the TrainJob CRD's own
schema for ``status.trainerStatus``.
"""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import json
import logging
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import jsonschema
import pytest
from helpers import crd_schema, serve

pytest.importorskip("lightning")

from aegis.training.trainer_progress import (ENV_CA_CERT, ENV_TOKEN, ENV_URL, Endpoint, StatusPoster,  # noqa: E402
                                             TrainerProgress, trainer_progress_callbacks, trainer_status)

REPO = Path(__file__).resolve().parents[1]
CRD = REPO.parent / "shared" / "schemas" / "trainer.kubeflow.org_trainjobs.yaml"
PATH = "/apis/trainer.kubeflow.org/v1alpha1/namespaces/default/trainjobs/tj/status"
WHEN = datetime.datetime(2026, 12, 5, 0, 10, tzinfo=datetime.timezone.utc).timestamp()


# ------------------------------------------------------------------ a CA, a server certificate, a server

def _certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate it signed for localhost/127.0.0.1 (EC keys: fast), with
    the ``cryptography`` package (in the venv through mlflow), else the ``openssl`` command."""
    try:
        import cryptography  # noqa: F401
    except ImportError:
        return _certificates_openssl(folder)
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "aegis test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    (folder / "ca.crt").write_bytes(ca.public_bytes(pem))
    (folder / "tls.crt").write_bytes(cert.public_bytes(pem))
    (folder / "tls.key").write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    return folder / "ca.crt", folder / "tls.crt", folder / "tls.key"


def _certificates_openssl(folder: Path) -> tuple[Path, Path, Path]:
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
            "-subj", "/CN=aegis test CA", "-keyout", "ca.key", "-out", "ca.crt")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=localhost",
            "-keyout", "tls.key", "-out", "tls.csr")
    (folder / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "tls.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "1",
            "-extfile", "san.ext", "-out", "tls.crt")
    return folder / "ca.crt", folder / "tls.crt", folder / "tls.key"


class StatusServer:
    """Records every request (arrival time, method, path, headers, JSON body); answers as
    ``mode`` says: ``ok`` (200, the body echoed, as the real server does), ``500``, or ``hang``
    (never answers until the test ends)."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.mode = "ok"
        self.requests: list[dict] = []
        self.release = threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server.requests.append({"at": time.monotonic(), "method": "POST", "path": self.path,
                                        "headers": dict(self.headers), "body": json.loads(body)})
                if server.mode == "hang":
                    server.release.wait(30)
                    return
                code, answer = (200, body) if server.mode == "ok" else (
                    500, json.dumps({"kind": "Status", "status": "Failure", "message": "boom", "code": 500}).encode())
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        serve(self.httpd)

    @property
    def url(self) -> str:
        return f"https://localhost:{self.httpd.server_address[1]}{PATH}"

    def bodies(self) -> list[dict]:
        return [r["body"]["trainerStatus"] for r in self.requests]

    def stop(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return _certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture()
def server(certs):
    server = StatusServer(certs[1], certs[2])
    yield server
    server.stop()


@pytest.fixture()
def endpoint(server, certs, tmp_path):
    token = tmp_path / "token"
    token.write_text("tok-1\n")
    return Endpoint(server.url, certs[0], token)


# What the v2.3.0 CRD says of status.trainerStatus, for a checkout without ../shared/schemas
# (pkg/apis/trainer/v1alpha1/trainjob_types.go's markers; the CRD's CEL rule
# ``has(self.lastUpdatedTime)`` written as ``required``).
TRAINER_STATUS_FALLBACK = {
    "type": "object",
    "required": ["lastUpdatedTime"],
    "properties": {
        "progressPercentage": {"type": "integer", "format": "int32", "minimum": 0, "maximum": 100},
        "estimatedRemainingSeconds": {"type": "integer", "format": "int32", "minimum": 0},
        "metrics": {"type": "array", "maxItems": 256, "items": {
            "type": "object", "required": ["name", "value"],
            "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 64},
                           "value": {"type": "string", "minLength": 1, "maxLength": 64}}}},
        "lastUpdatedTime": {"type": "string", "format": "date-time"},
    },
}


def _crd_trainer_status() -> dict:
    return crd_schema(CRD.name, "v1alpha1")["properties"]["status"]["properties"]["trainerStatus"]


@pytest.fixture()
def crd_trainer_status():
    """The TrainJob CRD's (v2.3.0, ../shared/schemas) schema of ``status.trainerStatus``."""
    return _crd_trainer_status() if CRD.is_file() else TRAINER_STATUS_FALLBACK


def test_the_fallback_schema_says_what_the_crd_says():
    if not CRD.is_file():
        pytest.skip(f"the upstream TrainJob CRD is not at {CRD}")

    def bare(node):
        if isinstance(node, dict):
            return {k: bare(v) for k, v in node.items() if k != "description" and not k.startswith("x-kubernetes")}
        return [bare(v) for v in node] if isinstance(node, list) else node

    real = _crd_trainer_status()
    assert any(rule.get("rule") == "has(self.lastUpdatedTime)" for rule in real["x-kubernetes-validations"])
    assert bare(real) | {"required": ["lastUpdatedTime"]} == TRAINER_STATUS_FALLBACK


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "TrainJob progress" in r.getMessage()]


# ------------------------------------------------------------------ the request

def test_the_request_is_what_trainers_status_server_reads(server, endpoint, crd_trainer_status):
    poster = StatusPoster(endpoint, interval_s=0.05)
    metrics = {"val/acc": 0.91, "val/loss": 0.2345678, "train/loss_step": 1.0, "train/loss_epoch": 1.0,
               "train/loss": float("nan"), "x" * 65: 1.0}
    poster.offer(trainer_status(42, 120.4, metrics, WHEN))
    assert poster.flush(5)
    [request] = server.requests
    assert (request["method"], request["path"]) == ("POST", PATH)
    assert request["headers"]["Authorization"] == "Bearer tok-1"
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["body"] == {"trainerStatus": {
        "progressPercentage": 42, "estimatedRemainingSeconds": 120,
        "metrics": [{"name": "val/acc", "value": "0.91"}, {"name": "val/loss", "value": "0.234568"}],
        "lastUpdatedTime": "2026-12-05T00:10:00Z"}}
    jsonschema.validate(request["body"]["trainerStatus"], crd_trainer_status)
    assert poster.posted == 1 and poster.failed == 0


def test_unknown_progress_is_left_out_and_values_stay_in_the_apis_bounds(crd_trainer_status):
    status = trainer_status(None, None, {}, WHEN)
    assert status == {"lastUpdatedTime": "2026-12-05T00:10:00Z"}
    status = trainer_status(140, 1e12, {f"m{i:03d}": float(i) for i in range(300)}, WHEN)
    assert status["progressPercentage"] == 100 and status["estimatedRemainingSeconds"] == 2**31 - 1
    assert len(status["metrics"]) == 256
    jsonschema.validate(status, crd_trainer_status)


def test_at_most_one_post_per_interval_and_the_newest_state_wins(server, endpoint):
    poster = StatusPoster(endpoint, interval_s=0.4)
    started = time.monotonic()
    offered = 0
    while time.monotonic() - started < 1.3:  # a state at every "step"
        offered += 1
        poster.offer(trainer_status(offered % 100, None, {}, WHEN))
        time.sleep(0.01)
    last = offered % 100
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and (not server.requests or server.bodies()[-1]["progressPercentage"] != last):
        time.sleep(0.02)
    times = [r["at"] for r in server.requests]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert offered > 50 and 2 <= len(times) <= 5, (offered, times)  # 1.3 s of states, 0.4 s apart at most
    assert min(gaps) >= 0.3, gaps  # 0.4 s between attempts, less the server's arrival jitter
    assert server.bodies()[-1]["progressPercentage"] == last  # coalesced, not dropped


def test_the_token_is_read_again_for_every_post(server, endpoint):
    poster = StatusPoster(endpoint, interval_s=0)
    poster.offer(trainer_status(10, None, {}, WHEN))
    assert poster.flush(5)
    endpoint.token_file.write_text("tok-2")  # the kubelet rotated the projected token
    poster.offer(trainer_status(20, None, {}, WHEN))
    assert poster.flush(5)
    assert [r["headers"]["Authorization"] for r in server.requests] == ["Bearer tok-1", "Bearer tok-2"]


def test_a_missing_token_file_is_one_warning_and_nothing_is_sent(server, endpoint, caplog):
    endpoint.token_file.unlink()
    poster = StatusPoster(endpoint, interval_s=0)
    for progress in range(3):
        poster.offer(trainer_status(progress, None, {}, WHEN))
        assert poster.flush(5)
    assert server.requests == [] and poster.failed == 3
    [warning] = warnings_of(caplog)
    assert f"cannot read the token file {endpoint.token_file} ({ENV_TOKEN})" in warning
    assert "training goes on" in warning


def test_a_refused_connection_is_one_warning(endpoint, caplog):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once closed
    poster = StatusPoster(Endpoint(f"https://127.0.0.1:{port}{PATH}", endpoint.ca_file, endpoint.token_file),
                          interval_s=0)
    for progress in range(3):
        poster.offer(trainer_status(progress, None, {}, WHEN))
        assert poster.flush(5)
    [warning] = warnings_of(caplog)
    assert f"cannot reach https://127.0.0.1:{port}{PATH}" in warning and poster.failed == 3


def test_a_certificate_from_another_ca_is_refused(server, endpoint, tmp_path, caplog):
    other = tmp_path / "other"
    other.mkdir()
    other_ca, _, _ = _certificates(other)
    poster = StatusPoster(Endpoint(server.url, other_ca, endpoint.token_file), interval_s=0)
    poster.offer(trainer_status(1, None, {}, WHEN))
    assert poster.flush(5)
    [warning] = warnings_of(caplog)
    assert "TLS with" in warning and poster.posted == 0 and server.requests == []


class Trainer(SimpleNamespace):
    """The attributes of Lightning's Trainer that the callback reads."""

    def __init__(self, **kw):
        super().__init__(is_global_zero=True, estimated_stepping_batches=100, global_step=0, callback_metrics={},
                         sanity_checking=False, **kw)


def test_a_hanging_endpoint_never_holds_a_step_and_the_end_waits_once(server, endpoint, caplog):
    server.mode = "hang"
    poster = StatusPoster(endpoint, interval_s=0.05, timeout_s=0.5)
    callback = TrainerProgress(poster)
    trainer = Trainer()
    slowest = 0.0
    begun = time.monotonic()
    callback.on_train_start(trainer, None)
    for step in range(1, 101):
        trainer.global_step = step
        started = time.perf_counter()
        callback.on_train_batch_end(trainer, None, None, None, step)
        if step % 25 == 0:
            trainer.callback_metrics = {"val/acc": 0.5 + step / 1000}
            callback.on_train_epoch_end(trainer, None)
        slowest = max(slowest, time.perf_counter() - started)
        time.sleep(0.01)
    assert slowest < 0.05, slowest  # the hooks only hand the state over
    assert server.requests  # posts did go out, and hung
    started = time.monotonic()
    callback.on_train_end(trainer, None)  # posts timed out already: the end does not wait for them
    callback.on_test_end(trainer, None)
    assert time.monotonic() - started < 0.05
    assert time.monotonic() - begun < 5
    time.sleep(0.6)
    [warning] = warnings_of(caplog)
    assert f"{endpoint.url} did not answer within 0.5 s" in warning


def test_the_end_waits_for_the_last_post_about_one_timeout_at_most(server, endpoint, caplog):
    server.mode = "hang"
    poster = StatusPoster(endpoint, interval_s=5, timeout_s=0.5)
    poster.offer(trainer_status(100, 0, {}, WHEN))
    started = time.monotonic()
    assert poster.flush() is True  # the post ended (timed out): nothing left to wait for
    assert 0.4 < time.monotonic() - started < 1.0
    poster.offer(trainer_status(100, 0, {"test/acc": 0.9}, WHEN))
    started = time.monotonic()
    assert poster.flush() is False and time.monotonic() - started < 0.05  # known to hang: no wait
    server.mode = "ok"
    time.sleep(0.6)  # the flushed state still goes out, from the thread
    assert server.bodies()[-1]["metrics"] == [{"name": "test/acc", "value": "0.9"}]
    assert len(warnings_of(caplog)) == 1


def test_without_the_injected_variables_there_is_no_callback(endpoint, caplog):
    env = {ENV_URL: endpoint.url, ENV_CA_CERT: str(endpoint.ca_file), ENV_TOKEN: str(endpoint.token_file)}
    assert trainer_progress_callbacks(True, {}) == []
    assert trainer_progress_callbacks(False, env) == []  # rank 0 alone reports
    assert warnings_of(caplog) == [] and not any("KUBEFLOW" in r.getMessage() for r in caplog.records)
    [callback] = trainer_progress_callbacks(True, env)
    assert isinstance(callback, TrainerProgress) and callback.poster.endpoint == endpoint
    assert callback.poster.interval_s == 5.0  # the user guide's "at most once every 5 seconds"
    assert trainer_progress_callbacks(True, {ENV_URL: endpoint.url}) == []
    assert any(f"{ENV_CA_CERT}, {ENV_TOKEN} is not" in r.getMessage() for r in caplog.records)


# ------------------------------------------------------------------ a real (tiny) training run

@pytest.fixture()
def train_run(compose, tmp_path, monkeypatch, endpoint):
    from aegis.launch.base import RunContext
    from aegis.training.run import train

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv(ENV_URL, endpoint.url)
    monkeypatch.setenv(ENV_CA_CERT, str(endpoint.ca_file))
    monkeypatch.setenv(ENV_TOKEN, str(endpoint.token_file))

    def _train(*overrides: str):
        cfg = compose(f"paths.root={tmp_path}", "progress=none", "logger=csv", "trainer=smoke", *overrides)
        run_dir = tmp_path / "run"
        ctx = RunContext(run_dir=run_dir, run_id=run_dir.name, task_overrides=overrides, config_name="train")
        return train(cfg, ctx)

    return _train


def test_a_training_run_reports_its_progress_to_100_with_its_metrics(train_run, server, crd_trainer_status, caplog):
    caplog.set_level(logging.INFO, logger="aegis.training")
    outcome = train_run("trainer.max_epochs=1")
    assert outcome.exit_code == 0
    bodies = server.bodies()
    # The start, a state at most every 5 s (none in a run of a second or two), then the end of
    # training and the end of the test, flushed at once.
    assert bodies[0]["progressPercentage"] == 0 and "metrics" not in bodies[0]
    times = [r["at"] for r in server.requests]
    assert all(b - a > 4.5 for a, b in zip(times[:-2], times[1:-2])), times
    progress = [b["progressPercentage"] for b in bodies]
    assert progress == sorted(progress) and progress[-2:] == [100, 100]
    assert bodies[-2]["estimatedRemainingSeconds"] == 0
    names = {m["name"] for m in bodies[-2]["metrics"]}
    assert {"val/acc", "val/loss", "train/loss"} <= names and not any(n.endswith("_step") for n in names)
    final = {m["name"]: float(m["value"]) for m in bodies[-1]["metrics"]}
    assert final["test/acc"] == pytest.approx(outcome.summary["metrics"]["test/acc"], abs=1e-5)
    for body in bodies:
        jsonschema.validate(body, crd_trainer_status)
    assert all(r["headers"]["Authorization"] == "Bearer tok-1" for r in server.requests)
    assert warnings_of(caplog) == []


def test_a_failing_endpoint_is_one_warning_and_training_completes(train_run, server, caplog):
    server.mode = "500"
    outcome = train_run("trainer.max_epochs=1")
    assert outcome.exit_code == 0 and outcome.summary["status"] == "completed"
    assert len(server.requests) >= 3  # every post failed, each was tried
    [warning] = warnings_of(caplog)
    assert f"{server.url} answered 500 (boom)" in warning
