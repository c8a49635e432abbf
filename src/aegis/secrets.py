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
  without resolving it: the value would be copied from this machine into the config.

Secrets reach a process through its environment, and pods through a Kubernetes Secret
(``launcher.secret_env``). ``check_env_reads`` runs before any check resolves a value;
``check_values`` runs last, after checks of named keys that say it better
(``logger.tracking_uri``, ``launcher.env``): a key refused already is not reported twice.
Pure OmegaConf: runs on the validation path, no torch.
"""

from __future__ import annotations

import re
from typing import Any, Iterator

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from aegis.errors import Problems
from aegis.redact import find_credential, is_credential_name, mask_credentials

# ${oc.env:NAME} or ${oc.env:NAME,default}, legacy ${env:NAME}
_HOST_ENV = re.compile(r"\$\{\s*(?:oc\.env|env)\s*:\s*([^,}\s]+)")
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


def check_values(cfg: DictConfig, found: Problems) -> None:
    """Add one sentence to ``found`` for every config value that carries a credential."""
    raw = OmegaConf.to_container(cfg, resolve=False)
    for key, written, place in _walk(cfg, raw, ""):
        if found.covers(key):
            continue
        what = find_credential(written)
        shown = written
        if what is None and "${" in written:
            try:
                value = _resolved(place)
            except OmegaConfBaseException:
                continue  # unreadable: another check says so
            what = next((w for w in map(find_credential, _strings(value)) if w), None)
            shown = str(value)
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
