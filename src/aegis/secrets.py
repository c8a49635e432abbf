"""No secret in a config: a credential in any value is refused before anything is written.

Every value of a composed config is written in clear: Hydra's ``.hydra/`` record and
``config.yaml`` in the run dir, the MLflow params of the run, the command line of a
torchrun child, and for a Kubernetes launcher the pod's command in the manifest. None of
those places can hold a secret, and masking them afterwards would leave a config that
no longer runs (a resumed run re-reads it). So validation refuses, one sentence per
value, naming the key with the value masked:

- a value that carries a credential (``aegis.redact.find_credential``: URL userinfo,
  ``password=``/``token=`` pairs, provider token shapes, private keys);
- a ``${oc.env:NAME}`` of a credential-named variable (``AWS_SECRET_ACCESS_KEY``), read
  without resolving it: the value would be copied from this machine into the config; and
  a ``${oc.env:${...}}`` whose name is computed, which no check can read as written;
- a value that, resolved, is the value of a credential-named variable of this process's
  environment (``aegis.redact.is_credential_name``: PASSWORD, SECRET, TOKEN, PASS, AUTH,
  KEY, ...), however it got there: a literal pasted from the environment, a nested
  interpolation (``${oc.env:${oc.select:no.such.key,MY_PASSWORD}}``), another key that
  holds one (``+launcher.env.X=${model.name}``). Only values of at least
  ``MIN_SECRET_LENGTH`` (8) characters count, and a value that is the path of an existing
  file (``GOOGLE_APPLICATION_CREDENTIALS``) does not: "1", "true", a region or a path are
  not secrets. A config value equal to one is refused; one that contains one is refused
  when the secret has at least ``CONTAINED_LENGTH`` (16) characters, long enough that a
  match is no coincidence;
- a credential-named key under ``data.storage_options`` (``secret``, ``key``, ``token``,
  ``password``, ``account_key``, ...): fsspec takes credentials there, but the config is
  written in clear; they belong in the environment, a mounted secret or the cloud's own
  config.

Secrets reach a process through its environment, and pods through a Kubernetes Secret
(``launcher.secret_env``). ``check_env_reads`` runs before any check resolves a value;
``check_values`` runs last, after checks of named keys that say it better
(``logger.tracking_uri``, ``launcher.env``): a key refused already is not reported twice.
Pure OmegaConf: runs on the validation path, no torch.
"""

from __future__ import annotations

import os
import re
from typing import Any, Iterator, Mapping, Optional

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from aegis.errors import Problems
from aegis.redact import MASK, find_credential, is_credential_name, mask_credentials

# ${oc.env:NAME} or ${oc.env:NAME,default}, legacy ${env:NAME}
_HOST_ENV = re.compile(r"\$\{\s*(?:oc\.env|env)\s*:\s*([^,}\s$][^,}\s]*)")
# ${oc.env:${...}}: the variable's name is itself an interpolation.
_COMPUTED_ENV = re.compile(r"\$\{\s*(?:oc\.env|env)\s*:\s*\$\{")
# Values this short are never taken for a secret of the environment (see the module docstring).
MIN_SECRET_LENGTH = 8
CONTAINED_LENGTH = 16
# Keys of fsspec's storage options that carry credentials (s3fs: key, secret, token;
# adlfs: account_key, sas_token, connection_string, client_secret; gcsfs: token).
_CREDENTIAL_OPTION = re.compile(
    r"(?:^|[_.\-])(?:key|secret|token|password|passwd|pass|pwd|credentials?|creds|sas|sig|signature|"
    r"connection[_-]?string|session[_-]?token|client[_-]?secret|account[_-]?key)(?=$|[_.\-])", re.I)
STORAGE_CREDENTIALS_BELONG = (
    "credentials belong in the environment (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AZURE_STORAGE_KEY, ...; for "
    "pods +launcher.secret_env.<NAME>=<secret name>/<key>), a mounted secret (a credentials file the process "
    "reads), or the cloud's own config (~/.aws/credentials or AWS_PROFILE, gcloud's application default "
    "credentials, the node's or pod's role)")
# Hydra's own node (its record of the overrides), and references to Secrets, not secrets.
SKIPPED = ("hydra", "launcher.secret_env")
WHERE = ".hydra/, config.yaml, MLflow params and manifests"
INSTEAD = ("give the process its secret in its environment, and pods theirs through "
           "+launcher.secret_env.<NAME>=<secret name>/<key>")


def _walk(node: Any, raw: Any, key: str) -> Iterator[tuple[str, str, Any]]:
    """(full key, the value as written, the node holding it and its name in it) of every
    string leaf; values come resolved only on request, so an unreadable one costs nothing."""
    if isinstance(raw, dict):
        items: Any = raw.items()
    elif isinstance(raw, list):
        items = enumerate(raw)
    else:
        return
    for name, item in items:
        child = f"{key}[{name}]" if isinstance(raw, list) else (f"{key}.{name}" if key else str(name))
        if child in SKIPPED:
            continue
        if isinstance(item, (dict, list)):
            try:
                yield from _walk(node[name], item, child)
            except OmegaConfBaseException:
                continue
        elif isinstance(item, str):
            yield child, item, (node, name)


def _resolved(place: tuple[Any, Any]) -> Any:
    node, name = place
    value = node[name]
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, str):
        yield value


def check_env_reads(cfg: DictConfig, found: Problems) -> None:
    """Add one sentence to ``found`` for every ``${oc.env:NAME}`` of a credential-named
    variable, read as written: runs before any check resolves a value, and the keys it
    refuses are never resolved afterwards (the secret is not even read)."""
    raw = OmegaConf.to_container(cfg, resolve=False)
    for key, written, _place in _walk(cfg, raw, ""):
        names = [name for name in _HOST_ENV.findall(written) if is_credential_name(name)]
        if names and not found.covers(key):
            found.add(
                f"{key}={written!r} reads the credential ${names[0]} of this machine into the config, which is "
                f"written in clear to {WHERE}: expected no secret in the config; {INSTEAD}.", key
            )
        elif _COMPUTED_ENV.search(written) and not found.covers(key):
            found.add(
                f"{key}={written!r} reads an environment variable whose name is computed, so no check can tell "
                f"whether it is a credential (which would be written in clear to {WHERE}): expected "
                "${oc.env:NAME} with the name written out.", key
            )
    _check_storage_options(raw, found)


def _check_storage_options(raw: Any, found: Problems) -> None:
    """A credential-named key under ``data.storage_options`` (at any depth: ``client_kwargs``)."""
    data = raw.get("data") if isinstance(raw, dict) else None
    options = data.get("storage_options") if isinstance(data, dict) else None

    def walk(node: Any, key: str) -> None:
        if not isinstance(node, dict):
            return
        for name, value in node.items():
            child = f"{key}.{name}"
            if _CREDENTIAL_OPTION.search(str(name)) and not found.covers(child):
                found.add(f"{child} is a credential, which would be written in clear to .hydra/, config.yaml, MLflow "
                          "params, checkpoints and manifests: "
                          f"expected no credentials in data.storage_options; {STORAGE_CREDENTIALS_BELONG}.", child)
            else:
                walk(value, child)

    walk(options, "data.storage_options")


def environment_secrets(environ: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """The values of this process's credential-named variables that can be a secret: at
    least ``MIN_SECRET_LENGTH`` characters, and not the path of an existing file."""
    environ = os.environ if environ is None else environ
    found = {}
    for name, value in environ.items():
        value = value.strip()
        if len(value) >= MIN_SECRET_LENGTH and is_credential_name(name) and not os.path.exists(value):
            found[name] = value
    return found


def _environment_secret(value: str, secrets: Mapping[str, str]) -> Optional[str]:
    """The name of the variable whose secret ``value`` is (or holds), or None."""
    for name, secret in secrets.items():
        if value.strip() == secret or (len(secret) >= CONTAINED_LENGTH and secret in value):
            return name
    return None


def check_values(cfg: DictConfig, found: Problems) -> None:
    """Add one sentence to ``found`` for every config value that carries a credential."""
    raw = OmegaConf.to_container(cfg, resolve=False)
    env_secrets = environment_secrets()
    for key, written, place in _walk(cfg, raw, ""):
        if found.covers(key):
            continue
        what = find_credential(written)
        shown = written
        values = [written]
        if what is None and "${" in written:
            try:
                value = _resolved(place)
            except OmegaConfBaseException:
                continue  # unreadable: another check says so
            values = list(_strings(value))
            what = next((w for w in map(find_credential, values) if w), None)
            shown = str(value)
        if what is None and env_secrets:
            name = next((n for n in (_environment_secret(v, env_secrets) for v in values) if n), None)
            if name is not None:
                written_shown = MASK if _environment_secret(written, env_secrets) else written
                found.add(
                    f"{key}={written_shown!r} is the value of ${name}, a credential in this machine's environment, "
                    f"which would be written in clear to {WHERE}: expected no secret in the config; {INSTEAD}.", key
                )
                continue
        if what is not None:
            found.add(
                f"{key}={mask_credentials(shown)!r} carries {what}, which would be written in clear to {WHERE}: "
                f"expected no secret in the config; {INSTEAD}.", key
            )
    _check_env_set(cfg, found)


def _check_env_set(cfg: DictConfig, found: Problems) -> None:
    """``hydra.job.env_set`` (the one part of Hydra's node a user fills with values) is
    written to ``.hydra/hydra.yaml`` and ``overrides.yaml`` like any override."""
    hydra = cfg.get("hydra") if "hydra" in cfg else None
    env_set = OmegaConf.to_container(hydra.job.env_set, resolve=False) if hydra is not None else {}
    for name, value in (env_set or {}).items():
        key = f"hydra.job.env_set.{name}"
        what = "a credential-named variable" if is_credential_name(name) else find_credential(value)
        if what is not None and not found.covers(key):
            found.add(
                f"{key} sets {what}, which would be written in clear to .hydra/hydra.yaml and overrides.yaml: "
                f"expected the variable set in the environment of the process that runs train.py instead.", key
            )
