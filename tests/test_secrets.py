"""Secret hygiene: a credential in a config value is refused before anything exists, and
nothing a run writes (run dir, MLflow store, manifest, logs, stdout/stderr) holds a secret.

The detector and the refusals are checked in-process; two ``python train.py`` runs (a
Kubernetes dry run and a smoke-sized local training) plant distinct secrets in their
environment, in ``launcher.secret_env`` and in the git remote of the checkout they run
from, then every byte they wrote is searched for each one.
"""

from __future__ import annotations

import io
import logging
import shutil
import subprocess
import sys

import pytest
import yaml

from aegis.config.validation import validate
from aegis.errors import ConfigError, ConfigErrors, error_lines
from aegis.redact import MaskCredentials, find_credential, is_credential_name, mask_credentials
from helpers import CONF, TRAIN, mlflow_server, run_dirs, run_train, summary

IMAGE = "registry.example.com/aegis:0.1.0"
K8S = ["launcher=k8s-job", f"launcher.image={IMAGE}"]
PTJ = ["strategy=ddp", "launcher=pytorchjob", f"launcher.image={IMAGE}"]
GHP = "ghp_" + "Zq7" * 12  # 36 characters after the prefix, as GitHub's tokens have


# -- the detector ------------------------------------------------------------------------------

CREDENTIALS = [
    ("https://alice:S3cret@mlflow.example.com", "S3cret"),
    ("postgresql://app:S3cret@db.internal:5432/ml", "S3cret"),
    ("https://mlflow.example.com/api?x=1&token=S3cret", "S3cret"),
    ("host=db user=app password=S3cret dbname=ml", "S3cret"),
    ("AWS_SECRET_ACCESS_KEY=S3cret", "S3cret"),
    ("api_key=S3cret", "S3cret"),
    ("AKIAIOSFODNN7EXAMPLE", "IOSFODNN7EXAMPLE"),
    ("ASIA" + "Q" * 16, "Q" * 16),
    (GHP, GHP[4:]),
    ("gho_" + "a1" * 18, "a1" * 18),
    ("ghs_" + "a1" * 18, "a1" * 18),
    ("ghu_" + "a1" * 18, "a1" * 18),
    ("github_pat_" + "11ABC_" * 8, "11ABC_" * 8),
    ("glpat-" + "x1Y2z3" * 4, "x1Y2z3" * 4),
    ("xoxb-123456789012-abcdefABCDEF", "123456789012-abcdefABCDEF"),
    ("hf_" + "aBcD" * 9, "aBcD" * 9),
    ("sk-" + "a1B2" * 12, "a1B2" * 12),
    ("sk-proj-" + "a1B2_" * 10, "a1B2_" * 10),
    ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJl", "eyJzdWIiOiIxMjM0NTY3ODkwIn0"),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----", "MIIEpAIBAAKCAQEA"),
    ("-----BEGIN OPENSSH PRIVATE KEY-----b3BlbnNzaC1rZXk", "b3BlbnNzaC1rZXk"),
    ("https://" + "t0ken" * 5 + "@github.com/acme/x.git", "t0ken" * 5),
    ("Bearer abcdefgh123", "abcdefgh123"),
    ("hf_abc123", "abc123"),
    ("https://b.s3.amazonaws.com/k?X-Amz-Date=1&X-Amz-Signature=0a1b2c3d4e", "0a1b2c3d4e"),
    ("https://storage.googleapis.com/b/o?X-Goog-Signature=0a1b2c3d4e&X-Goog-Date=1", "0a1b2c3d4e"),
    ("https://acct.blob.core.windows.net/c/b?sv=2022-11-02&sig=abc%2Fdef", "abc%2Fdef"),
    ("https://b.s3.amazonaws.com/k?X-Amz-Security-Token=FwoGZXIvYXdz", "FwoGZXIvYXdz"),
]

NOT_CREDENTIALS = [
    "/data/token-cache", "/data/secrets/README", "max_tokens=5", "tokenizer=bert-base", "secret_env=mlflow/token",
    "ssh://git@github.com/acme/aegis.git", "https://mlflow.example.com:5000", "http://localhost:5000/#/experiments",
    "sqlite:////tmp/x/mlflow.db", "postgresql+psycopg2://db.example.com/mlflow", IMAGE, "mlflow/token",
    "sk-learn-digits-experiment-2024", "hf_home", "2026-11-29_10-19-40_ccdeb0", "aegis.training.models.MLPClassifier",
    "password=${oc.env:DB_PASSWORD}", "password=$DB_PASSWORD", "https://alice:***@mlflow.example.com", "val/acc",
    "AKIA-not-a-key", "eyJhbGciOiJIUzI1NiJ9", "hf_transfer", "Bearer of news", "sigma=3", "design=big",
    "https://b.s3.amazonaws.com/k?X-Amz-Date=1", "hf_abc",
]


@pytest.mark.parametrize("text,secret", CREDENTIALS, ids=[c[:40] for c, _ in CREDENTIALS])
def test_credentials_are_found_and_masked(text, secret):
    assert find_credential(text) is not None
    masked = mask_credentials(text)
    assert secret not in masked and "***" in masked, masked
    assert find_credential(masked) is None, "masking leaves nothing to find"


@pytest.mark.parametrize("text", NOT_CREDENTIALS)
def test_ordinary_values_are_not_credentials(text):
    assert find_credential(text) is None
    assert mask_credentials(text) == text or text.startswith("ssh://")  # ssh://git@ masks the user


@pytest.mark.parametrize("name,expected", [
    ("MLFLOW_TRACKING_PASSWORD", True), ("AWS_SECRET_ACCESS_KEY", True), ("HF_TOKEN", True), ("OPENAI_API_KEY", True),
    ("GOOGLE_APPLICATION_CREDENTIALS", True), ("TOKENIZERS_PARALLELISM", False), ("MAX_TOKENS", False),
    ("MLFLOW_TRACKING_URI", False), ("PYTHONUNBUFFERED", False),
    ("APITOKEN", True), ("DB_PASS", True), ("AUTH_HEADER", True), ("SSH_KEY", True), ("CLIENTSECRET", True),
    ("DB_PWD", True), ("PWD", False), ("OLDPWD", False), ("SSH_AUTH_SOCK", False), ("BYPASS_CACHE", False),
    ("AUTHOR", False), ("KEYBOARD", False), ("GIT_ASKPASS", False), ("HF_HUB_ENABLE_HF_TRANSFER", False),
])
def test_credential_names_are_whole_words(name, expected):
    assert is_credential_name(name) is expected


def test_log_lines_and_tracebacks_are_masked():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(MaskCredentials())
    logger = logging.getLogger("aegis.test_secrets")
    logger.addHandler(handler)
    try:
        try:
            raise RuntimeError("API request to http://alice:TraceS3cret@mlflow:5000/api failed")
        except RuntimeError:
            logger.exception("calling %s", "http://bob:ArgS3cret@mlflow:5000")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "TraceS3cret" not in text and "ArgS3cret" not in text
    assert "http://bob:***@mlflow:5000" in text and "http://alice:***@mlflow:5000/api" in text


def test_the_run_logs_through_the_masking_filter(compose):
    job_logging = compose("trainer=smoke", hydra_config=True).hydra.job_logging
    assert job_logging.filters.mask_credentials["()"] == "aegis.redact.MaskCredentials"
    assert all("mask_credentials" in h.filters for h in job_logging.handlers.values())


def test_summary_json_masks_an_error_that_quotes_a_url(tmp_path):
    from aegis.training.record import RunRecord

    record = RunRecord(tmp_path, rank_zero=True)
    record.write("failed", error="MlflowException: API request to http://alice:RecS3cret@mlflow:5000/api failed")
    text = (tmp_path / "summary.json").read_text()
    assert "RecS3cret" not in text and "http://alice:***@mlflow:5000/api" in text


def test_printed_errors_are_masked():
    lines = error_lines(ConfigErrors(["x='postgresql://u:PrintS3cret@db/x' is invalid: expected y."]))
    assert lines == ["Error: x='postgresql://u:***@db/x' is invalid: expected y."]


def test_an_unparsable_override_is_echoed_masked(capsys):
    from aegis.cli import check_overrides

    with pytest.raises(SystemExit):
        check_overrides(["+launcher.env.DSN=host=db password=PaSS"])  # unquoted: Hydra cannot parse it
    err = capsys.readouterr().err
    assert "PaSS" not in err and "password=***" in err, err


# -- refusals ----------------------------------------------------------------------------------

def _refused(compose, *overrides: str) -> str:
    """The sentences validation refuses ``overrides`` with (one per line)."""
    with pytest.raises(ConfigError) as info:
        validate(compose(*overrides))
    return str(info.value)


@pytest.mark.parametrize("overrides,named,secret", [
    (K8S + ["+launcher.env.MLFLOW_TRACKING_URI=https://user:PaSS@mlflow.example.com"],
     "launcher.env.MLFLOW_TRACKING_URI='https://user:***@mlflow.example.com' carries credentials in its URL", "PaSS"),
    (K8S + ["+launcher.env.DATABASE_URL=postgresql://u:PaSS@db/x"],
     "launcher.env.DATABASE_URL='postgresql://u:***@db/x'", "PaSS"),
    (K8S + [f"+launcher.env.X={GHP}"], "launcher.env.X='ghp_***' carries a GitHub token", GHP),
    (K8S + ["+launcher.env.DSN='host=db password=PaSS'"], "launcher.env.DSN='host=db password=***'", "PaSS"),
    (PTJ + ["+launcher.env.HF_HUB_URL='https://hub.example.com/?token=PaSS'"],
     "launcher.env.HF_HUB_URL='https://hub.example.com/?token=***' carries a secret (token=...)", "PaSS"),
])
def test_an_env_value_with_a_credential_is_refused_pointing_to_secret_env(compose, overrides, named, secret):
    message = _refused(compose, *overrides)
    assert message.count("\n") == 0 and named in message, message
    assert "+launcher.secret_env." in message and "manifest" in message, message
    assert secret not in message


def test_the_tracking_uri_of_the_pods_is_refused_with_credentials(compose):
    for launcher in (K8S, PTJ):
        message = _refused(compose, *launcher, "logger=mlflow", "logger.tracking_uri=https://u:PaSS@mlflow.example.com")
        assert message.startswith("logger.tracking_uri=https://u:***@mlflow.example.com carries credentials"), message
        assert "pods get MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD from a Secret" in message
        assert "+launcher.secret_env.MLFLOW_TRACKING_PASSWORD=<secret name>/<key>" in message
        assert "PaSS" not in message and "\n" not in message


def test_a_local_tracking_uri_with_credentials_points_to_the_environment(compose):
    for launcher in ([], ["strategy=ddp", "launcher=torchrun"]):
        message = _refused(compose, *launcher, "logger.tracking_uri=http://alice:PaSS@127.0.0.1:1/")
        assert message.startswith("logger.tracking_uri=http://alice:***@127.0.0.1:1/ carries credentials"), message
        assert "MLFLOW_TRACKING_PASSWORD in the environment" in message and "pods" not in message
        assert "PaSS" not in message and "\n" not in message


@pytest.mark.parametrize("overrides,named", [
    (["+logger.tags.db=postgresql://u:PaSS@db/x"], "logger.tags.db='postgresql://u:***@db/x' carries credentials"),
    ([f"+logger.tags.gh={GHP}"], "logger.tags.gh='ghp_***' carries a GitHub token"),
    (["run_id=${oc.env:AEGIS_TEST_RUN_ID}"], "run_id='ghp_***'"),
    (K8S + [f"+launcher.labels.team={GHP}"], "launcher.labels.team='ghp_***'"),
    (K8S + ["+launcher.annotations.db=postgresql://u:PaSS@db/x"], "launcher.annotations.db="),
    (K8S + ["+launcher.annotations.note=" + "hf_" + "aBcD" * 9], "launcher.annotations.note='hf_***'"),
])
def test_any_config_value_with_a_credential_is_refused(compose, monkeypatch, overrides, named):
    monkeypatch.setenv("AEGIS_TEST_RUN_ID", GHP)
    message = _refused(compose, *overrides)
    assert named in message, message
    assert "PaSS" not in message and GHP not in message and "aBcD" * 9 not in message


def test_reading_a_credential_from_the_environment_into_the_config_is_refused(compose, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "EnvS3cretValue")  # no known shape: refused by its name
    message = _refused(compose, "+logger.tags.k=${oc.env:AWS_SECRET_ACCESS_KEY}")
    assert message.startswith("logger.tags.k='${oc.env:AWS_SECRET_ACCESS_KEY}' reads the credential "
                              "$AWS_SECRET_ACCESS_KEY of this machine into the config"), message
    assert "EnvS3cretValue" not in message


def test_a_secret_in_hydras_env_set_is_refused(compose):
    from aegis.errors import Problems
    from aegis.secrets import check_values

    found = Problems()
    check_values(compose("+hydra.job.env_set.DB_PASSWORD=PaSS", f"+hydra.job.env_set.GH={GHP}",
                         "+hydra.job.env_set.OMP_NUM_THREADS=2", hydra_config=True), found)
    assert [s.split(" sets ")[0] for s in found.sentences] == ["hydra.job.env_set.DB_PASSWORD",
                                                                "hydra.job.env_set.GH"], found.sentences
    assert not any("PaSS" in s or GHP in s for s in found.sentences)


def test_a_secret_given_to_secret_env_itself_is_not_echoed(compose):
    message = _refused(compose, *K8S, "+launcher.secret_env.MLFLOW_TRACKING_PASSWORD=hunter2")
    assert "launcher.secret_env.MLFLOW_TRACKING_PASSWORD (value not shown" in message
    assert "hunter2" not in message


@pytest.mark.parametrize("overrides", [
    K8S + ["+launcher.env.HF_HOME=/data/token-cache", "+launcher.env.TOKENIZERS_PARALLELISM=false",
           "+launcher.env.MLFLOW_TRACKING_URI=https://mlflow.example.com",
           "+launcher.secret_env.MLFLOW_TRACKING_TOKEN=mlflow/token", "+launcher.annotations.repo=ssh://git@github.com/a/b"],
    ["+logger.tags.cache=/data/token-cache", "logger.tracking_uri=http://localhost:5000"],
])
def test_values_that_only_look_like_secrets_are_accepted(compose, overrides):
    validate(compose(*overrides))


def test_train_py_refuses_a_credential_in_the_pod_env_before_anything_exists(tmp_path):
    root = tmp_path / "root"
    result = run_train([*K8S, "launcher.dry_run=true", "+launcher.env.DATABASE_URL=postgresql://u:PaSS@db/x"], root)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1, result.stderr
    assert len(lines) == 1 and lines[0].startswith("Error: launcher.env.DATABASE_URL='postgresql://u:***@db/x'"), lines
    assert "PaSS" not in result.stdout + result.stderr
    assert not root.exists(), "a refused config must not create anything"


def test_an_unreachable_tracking_server_is_reported_without_its_password(compose, tmp_path, monkeypatch):
    from aegis.training.tracking import TrackingError, build_tracking

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://alice:UnreachS3cret@127.0.0.1:1/")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    tracking = build_tracking(compose(f"paths.root={tmp_path}"), run_dir, "r1", tmp_path, continuing=False,
                              rank_zero=True)
    with pytest.raises(TrackingError) as info:
        tracking.start()
    assert "UnreachS3cret" not in str(info.value) and "http://alice:***@127.0.0.1:1/" in str(info.value)
    assert tracking.describe()["tracking_uri"] == "http://alice:***@127.0.0.1:1/"


# -- planted secrets: every artifact of a run ------------------------------------------------------

PLANTED_ENV = {
    "MLFLOW_TRACKING_PASSWORD": "PlantedMlflowPw7",
    "MLFLOW_TRACKING_TOKEN": "PlantedMlflowToken8",
    "AWS_SECRET_ACCESS_KEY": "PlantedAwsSecret9",
    "DATABASE_URL": "postgresql://app:PlantedDbPw10@db.internal/ml",
    "GITHUB_TOKEN": "ghp_" + "Planted11" * 4,
    "HF_TOKEN": "hf_" + "PlantedHf" * 4,
}
GIT_TOKEN = "ghs_" + "PlantedGit12" * 3


def _checkout_with_a_token_in_its_remote(tmp_path):
    """train.py in a git checkout whose remote URL carries a token, as CI checkouts often do:
    MLflow tags runs with the remote's URL."""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    shutil.copy(TRAIN, checkout / "train.py")
    (checkout / "conf").symlink_to(CONF)
    if shutil.which("git"):
        git = ["git", "-c", "user.email=ci@example.com", "-c", "user.name=ci", "-C", str(checkout)]
        for args in (["init", "-q"], ["add", "train.py"], ["commit", "-q", "-m", "x"],
                     ["remote", "add", "origin", f"https://x-access-token:{GIT_TOKEN}@github.com/acme/aegis.git"]):
            subprocess.run(git + args, check=True, capture_output=True)
    return [sys.executable, str(checkout / "train.py")]


def test_no_planted_secret_reaches_any_artifact_of_a_run(tmp_path):
    root = tmp_path / "outputs"
    env = {**PLANTED_ENV, "KUBECONFIG": str(tmp_path / "no-kubeconfig")}
    render = run_train([*K8S, "launcher.dry_run=true", "run_id=render", "logger=mlflow",
                        "+launcher.env.MLFLOW_TRACKING_URI=https://mlflow.example.com",
                        "+launcher.secret_env.MLFLOW_TRACKING_PASSWORD=mlflow/password",
                        "+launcher.secret_env.AWS_SECRET_ACCESS_KEY=aws/secret-access-key"], root, env=env)
    assert render.returncode == 0, render.stderr[-3000:]
    train = run_train(["trainer=smoke", "trainer.max_epochs=1", "logger=mlflow", "run_id=train"], root, env=env,
                      entry=_checkout_with_a_token_in_its_remote(tmp_path))
    assert train.returncode == 0, train.stderr[-3000:]

    manifest = yaml.safe_load((root / "train" / "runs" / "render" / "job.yaml").read_text())
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]
            if "secretKeyRef" in e.get("valueFrom", {})}
    assert refs["MLFLOW_TRACKING_PASSWORD"] == {"name": "mlflow", "key": "password"}
    assert refs["AWS_SECRET_ACCESS_KEY"] == {"name": "aws", "key": "secret-access-key"}
    assert {d.name for d in run_dirs(root)} == {"render", "train"}
    assert (root / "mlflow.db").is_file() and any((root / "mlartifacts").rglob("*.pth")) or \
        any((root / "mlartifacts").rglob("*")), "the MLflow store and its artifacts are among what is searched"
    # The default tier's one `python train.py` training run: everything it records, in one run dir.
    run = root / "train" / "runs" / "train"
    record = summary(run)
    assert record["status"] == "completed" and record["world_size"] == 1
    assert record["tracking"]["logger"] == "mlflow" and record["tracking"]["run_id"]
    assert record["tracking"]["registered_model"]["version"] == 1
    for name in ("config.yaml", "summary.json", "tracking.json", "train.log", ".hydra/overrides.yaml"):
        assert (run / name).exists(), name

    secrets = [value.split(":")[-1].split("@")[0] if "://" in value else value for value in PLANTED_ENV.values()]
    secrets.append(GIT_TOKEN)
    written = {str(p): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    written["render stdout+stderr"] = (render.stdout + render.stderr).encode()
    written["train stdout+stderr"] = (train.stdout + train.stderr).encode()
    assert len(written) > 20, sorted(written)
    leaks = [(secret, where) for secret in secrets for where, data in written.items() if secret.encode() in data]
    assert leaks == []


# -- the environment's secrets, wherever they come from (issue 22, finding 3) ----------------------

ENV_SECRET = "Sup3rS3cretValue"  # no known shape: found only as the value of a credential-named variable


@pytest.mark.parametrize("overrides,named", [
    (["model.name=${oc.env:ALIAS_OF_IT}"], "model.name='${oc.env:ALIAS_OF_IT}' is the value of $MY_PASSWORD"),
    ([f"+logger.tags.pasted={ENV_SECRET}"], "logger.tags.pasted='***' is the value of $MY_PASSWORD"),
    ([f"+logger.tags.url=https://api.example.com/v1?key_{ENV_SECRET}"], "is the value of $MY_PASSWORD"),
    (K8S + ["+launcher.env.X=${model.name}", "model.name=${oc.env:ALIAS_OF_IT}"],
     "launcher.env.X='${model.name}' is the value of $MY_PASSWORD"),
    (["model.name='${oc.env:${oc.select:no.such.key,MY_PASSWORD}}'"],
     "reads an environment variable whose name is computed"),
])
def test_a_secret_of_the_environment_is_refused_wherever_it_came_from(compose, monkeypatch, overrides, named):
    monkeypatch.setenv("MY_PASSWORD", ENV_SECRET)
    monkeypatch.setenv("ALIAS_OF_IT", ENV_SECRET)  # not credential-named itself: only its value gives it away
    message = _refused(compose, *overrides)
    assert named in message, message
    assert ENV_SECRET not in message


def test_a_secret_of_the_environment_in_a_conf_file_is_refused(compose, monkeypatch, tmp_path):
    monkeypatch.setenv("MY_PASSWORD", ENV_SECRET)
    monkeypatch.setenv("ALIAS_OF_IT", ENV_SECRET)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "leaky.yaml").write_text("defaults:\n  - mlp\n  - _self_\nname: ${oc.env:ALIAS_OF_IT}\n")
    message = _refused(compose, f"hydra.searchpath=[file://{tmp_path}]", "model=leaky")
    assert "model.name='${oc.env:ALIAS_OF_IT}' is the value of $MY_PASSWORD" in message, message


@pytest.mark.parametrize("env", [
    {"DB_PASS": "true", "API_TOKEN": "1234567"},  # shorter than MIN_SECRET_LENGTH: not taken for a secret
    {"GOOGLE_APPLICATION_CREDENTIALS": str(CONF / "train.yaml")},  # the path of a file: a pointer, not a secret
])
def test_short_values_and_paths_of_credential_variables_are_not_refused(compose, monkeypatch, env):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    validate(compose(*(f"+logger.tags.t{i}={value}" for i, value in enumerate(env.values()))))


@pytest.mark.parametrize("option", ["secret", "key", "token", "password", "account_key", "sas_token",
                                    "connection_string", "client_kwargs.aws_secret_access_key",
                                    "client_kwargs.aws_session_token"])
def test_credentials_in_storage_options_are_refused_saying_where_they_belong(compose, tmp_path, option):
    data = tmp_path / "set.npz"
    import numpy as np

    np.savez(data, features=np.zeros((20, 2)), labels=np.arange(20) % 2)
    message = _refused(compose, "data=arrays", f"data.source={data}", f"+data.storage_options.{option}=AbCdEf")
    assert message.startswith(f"data.storage_options.{option} is a credential"), message
    assert "the environment" in message and "a mounted secret" in message and "the cloud's own config" in message
    assert "AbCdEf" not in message


def test_ordinary_storage_options_are_accepted(compose, tmp_path):
    import numpy as np

    data = tmp_path / "set.npz"
    np.savez(data, features=np.zeros((20, 2)), labels=np.arange(20) % 2)
    validate(compose("data=arrays", f"data.source={data}",
                     "+data.storage_options={endpoint_url: 'http://127.0.0.1:9000', anon: false, "
                     "client_kwargs: {region_name: us-east-1}, use_ssl: false}"))


@pytest.mark.parametrize("name,value", [("APITOKEN", "abc"), ("DB_PASS", "xyz"), ("AUTH_HEADER", "'Bearer abcdefgh123'"),
                                        ("HF", "hf_abc123"),
                                        ("URL", "'https://storage.googleapis.com/b/o?X-Goog-Signature=0a1b2c3d'")])
def test_pod_env_that_probes_accepted_is_refused(compose, name, value):
    message = _refused(compose, *K8S, f"+launcher.env.{name}={value}")
    assert f"launcher.env.{name}" in message and "+launcher.secret_env." in message, message
    assert "abcdefgh123" not in message and "0a1b2c3d" not in message and "abc123" not in message


def test_the_traceback_before_run_failed_masks_the_tracking_password(tmp_path, capsys, monkeypatch):
    """A local run that failed prints its traceback, then the ``Run failed`` paragraph: an
    MLflow error quotes the URL it called, $MLFLOW_TRACKING_URI's password included."""
    import json

    from aegis.launch.local.launcher import SUPERVISED_ENV, LocalLauncher

    monkeypatch.delenv(SUPERVISED_ENV, raising=False)
    (tmp_path / "summary.json").write_text(json.dumps({"attempts": [{"failure": {
        "cause": "MlflowException: API request to http://alice:***@127.0.0.1:5000/api/2.0/mlflow/runs/get failed"}}]}))
    try:
        raise RuntimeError("API request to http://alice:TbS3cretPw@127.0.0.1:5000/api/2.0/mlflow/runs/get failed")
    except RuntimeError:
        assert LocalLauncher._report(tmp_path, 0)
    err = capsys.readouterr().err
    assert "Traceback" in err and "http://alice:***@127.0.0.1:5000/api/2.0/mlflow/runs/get" in err, err
    assert "TbS3cretPw" not in err


@pytest.mark.slow
def test_the_search_drivers_parent_run_does_not_print_the_tracking_password(tmp_path, capfd, monkeypatch):
    """MLflow prints "View run <name> at: <the tracking URI>/#/..." when a run on a server ends;
    the search driver's parent run ends in this process."""
    from aegis.tune.tracking import finish_parent, start_parent

    with mlflow_server(tmp_path) as port:
        monkeypatch.delenv("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", raising=False)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://alice:SearchS3cretPw@127.0.0.1:{port}")
        cfg = yaml.safe_load("logger: {name: mlflow, experiment_name: aegis, tracking_uri: null}")
        from omegaconf import OmegaConf

        cfg = OmegaConf.create({**cfg, "paths": {"root": str(tmp_path / "root")}})
        sweep = tmp_path / "sweep"
        sweep.mkdir()
        record = start_parent(cfg, sweep, "search-x")
        finish_parent(record, None, [], ok=True)
    out = capfd.readouterr()
    assert "SearchS3cretPw" not in out.out + out.err
