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
