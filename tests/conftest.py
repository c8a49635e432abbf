"""Fixtures shared by every test: compose configs in-process as train.py does."""

from __future__ import annotations

import pytest

from helpers import CONF


@pytest.fixture()
def compose():
    """Compose conf/train.yaml with overrides, as ``train.py`` would (without running)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from aegis.cli import prepare

    prepare()

    def _compose(*overrides: str, hydra_config: bool = False):
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return hydra_compose("train", overrides=list(overrides), return_hydra_config=hydra_config)

    # A config composed without its hydra node is judged by Hydra's global HydraConfig
    # (aegis.config.where), which a test that ran Hydra in this process may have left set,
    # e.g. to a submitit launcher: then no machine rule applies. Each test starts without it
    # (under pytest-xdist a worker's earlier test made a GPU rule pass that should refuse).
    from hydra.core.hydra_config import HydraConfig

    HydraConfig.instance().cfg = None
    yield _compose
    HydraConfig.instance().cfg = None
