"""Registering the schemas twice costs nothing, and never serves a stale entry.

``prepare()`` runs before every compose (train.py, ``aegis generate``, each test that
composes); converting the 35 schemas cost ~0.2 s a call, which the README suite paid on
every test that composes."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hydra.core.config_store import ConfigStore

from aegis.config import schema
from aegis.core import registry


@pytest.fixture()
def stores(monkeypatch):
    """The (group, name) of each entry put into Hydra's ConfigStore while the test runs."""
    stored = []
    real = ConfigStore.store

    def counting(self, name, node, group=None, package=None, provider=None):
        stored.append((group, name))
        return real(self, name=name, node=node, group=group, package=package, provider=provider)

    monkeypatch.setattr(ConfigStore, "store", counting)
    return stored


def test_a_second_registration_stores_nothing(stores):
    schema.register_configs()
    stores.clear()
    schema.register_configs()
    assert stores == []
    assert ConfigStore.instance().load("model/mlp_schema.yaml").node.lr is not None


def test_an_entry_replaced_or_removed_since_is_stored_again(stores):
    schema.register_configs()
    store = ConfigStore.instance()
    del store.repo["model"]["mlp_schema.yaml"]
    store.store(group="trainer", name="trainer_schema", node={"max_epochs": 1})  # someone else's entry
    stores.clear()
    schema.register_configs()
    assert sorted(stores) == [("model", "mlp_schema"), ("trainer", "trainer_schema")]
    assert "accelerator" in store.load("trainer/trainer_schema.yaml").node


@dataclass
class EchoConfig:
    name: str = "echo"
    ticket: int = 0


def test_a_launcher_registered_since_gets_its_schema(stores, monkeypatch):
    monkeypatch.setitem(registry.LAUNCHERS, "echo", registry.Registered("m:Echo", f"{__name__}:EchoConfig", None))
    try:
        schema.register_configs()
        assert ("launcher", "echo_schema") in stores
        assert ConfigStore.instance().load("launcher/echo_schema.yaml").node.ticket == 0
    finally:  # later tests in this process list the launcher group's options
        ConfigStore.instance().repo["launcher"].pop("echo_schema.yaml", None)
        schema._STORED.pop(("launcher", "echo_schema"), None)
