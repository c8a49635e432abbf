"""Fixtures shared by every test: compose configs in-process as train.py does."""

from __future__ import annotations

import pytest


@pytest.fixture()
def compose():
    """Compose conf/train.yaml with overrides, as ``train.py`` would (without running)."""
    from aegis.cli import prepare
    from composing import compose as composed

    prepare()

    def _compose(*overrides: str, hydra_config: bool = False):
        return composed(list(overrides), hydra_config=hydra_config)

    # A config composed without its hydra node is judged by Hydra's global HydraConfig
    # (aegis.config.where), which a test that ran Hydra in this process may have left set,
    # e.g. to a submitit launcher: then no machine rule applies. Each test starts without it
    # (under pytest-xdist a worker's earlier test made a GPU rule pass that should refuse).
    from hydra.core.hydra_config import HydraConfig

    HydraConfig.instance().cfg = None
    yield _compose
    HydraConfig.instance().cfg = None


_STORE_TEMPLATE: list = []  # this test process's freshly created store, made once by the real path


@pytest.fixture()
def store_from_template(monkeypatch, tmp_path_factory):
    """New embedded MLflow stores are copies of one this process created, for tests whose subject
    is not the store's creation: MLflow migrates a fresh SQLite store from its first revision
    (~1 s each, 28 times in the default tier). The template is made by ``prepare_store`` itself
    (MLflow's own table set-up, then WAL), so a copy is what that path would have written; a
    stale version stamp still takes the real path. tests/test_tracking_store.py's store tests and
    tests/test_internals.py keep creating stores for real."""
    from aegis.training import mlflow_store

    if not _STORE_TEMPLATE:
        template = tmp_path_factory.mktemp("store-template") / "mlflow.db"
        mlflow_store.prepare_store(f"sqlite:///{template}")
        _STORE_TEMPLATE.append(template)
    real_create = mlflow_store._create

    def create(db_path, uri, stale_version):
        if stale_version:
            return real_create(db_path, uri, stale_version)
        mlflow_store._backup(_STORE_TEMPLATE[0], db_path)

    monkeypatch.setattr(mlflow_store, "_create", create)
