"""Fixtures of the Kubernetes launcher tests: a fake API server and a kubeconfig for it."""

from __future__ import annotations

import pytest

from fake_k8s import FakeCluster


@pytest.fixture(autouse=True)
def no_build_record(tmp_path, monkeypatch):
    """This machine's docker/build.sh record (~/.cache/aegis/images.json) never reaches a test:
    each starts with none, and one that needs a record writes it to this path."""
    path = tmp_path / "images.json"
    monkeypatch.setenv("AEGIS_IMAGES_FILE", str(path))
    return path


@pytest.fixture
def fake_cluster(tmp_path, monkeypatch):
    fake = FakeCluster().start()
    kubeconfig = fake.write_kubeconfig(tmp_path / "kubeconfig")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    yield fake
    fake.stop()
