"""``launcher.prefetch_data``: an init container that fills the dataset cache before training.

It runs the training image with ``python -m aegis.data fetch`` and the run's data spec,
on the same dataset-cache claim and with the same env (so the same S3 credentials from
``launcher.secret_env``/``env_from``). The training container starts only after it has
exited 0, with the entry already cached: the gang never races to download, and a bad
source fails the pod in its init container, with the one-sentence error in its log.
Every pod of a PyTorchJob gets one; the cache's lock lets one download while the others
wait, then each finds the entry.

The spec travels as written (a local path is made absolute inside the pod, where it is
read), so the init container and the training process compute the same entry name.
Pure: no torch, no cluster.
"""

from __future__ import annotations

import json
from typing import Optional

from omegaconf import DictConfig, OmegaConf

from aegis.data.spec import KIND_OPTIONS, TARGET_KINDS
from aegis.errors import Problems

CONTAINER = "prefetch-data"


def _kind(cfg: DictConfig) -> str | None:
    return TARGET_KINDS.get(str(cfg.data.get("_target_")))


def spec_json(cfg: DictConfig) -> str:
    data = OmegaConf.to_container(cfg.data, resolve=True)
    kind = TARGET_KINDS[str(data["_target_"])]
    options = {k: data.get(k) for k in KIND_OPTIONS[kind]}
    return json.dumps({"kind": kind, "source": data["source"], "sha256": data.get("sha256"), "options": options,
                       "storage_options": data.get("storage_options") or {}}, sort_keys=True)


def fetch_args(cfg: DictConfig) -> Optional[list[str]]:
    """The init container's command (``aegis.k8s.pod`` builds the container around it, with the
    training container's env and mounts); None without ``launcher.prefetch_data``."""
    launcher = cfg.launcher
    if not launcher.get("prefetch_data"):
        return None
    return [launcher.python, "-m", "aegis.data", "--cache", launcher.dataset_cache.mount_path, "fetch",
            "--spec", spec_json(cfg)]


def check(cfg: DictConfig, found: Problems) -> None:
    """``prefetch_data`` needs data with a source and a writable cache claim to fill."""
    launcher = cfg.launcher
    if not launcher.get("prefetch_data"):
        return
    data = cfg.get("data")
    name = data.get("name") if data is not None else None
    if data is None or not data.get("uses_dataset_cache") or _kind(cfg) is None:
        found.add(f"launcher.prefetch_data=true has nothing to fetch for data={name}: expected data with a source "
                  f"({', '.join(sorted(KIND_OPTIONS))}), or launcher.prefetch_data=false.", "launcher.prefetch_data")
    elif launcher.dataset_cache.claim is None:
        found.add("launcher.prefetch_data=true needs the dataset-cache claim to fill, but "
                  "launcher.dataset_cache.claim is null: expected a claim name (e.g. aegis-dataset-cache), or "
                  "launcher.prefetch_data=false.", "launcher.prefetch_data")
    elif launcher.dataset_cache.read_only:
        found.add("launcher.prefetch_data=true cannot fill a cache mounted read-only "
                  "(launcher.dataset_cache.read_only=true): expected one of the two false (fill the claim once with "
                  "prefetch, then mount it read-only in later runs).", "launcher.prefetch_data")
