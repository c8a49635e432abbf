"""Fixtures of the Kubernetes launcher tests: a fake API server and a kubeconfig for it."""

from __future__ import annotations

import pytest

from fake_k8s import FakeCluster


@pytest.fixture
def fake_cluster(tmp_path, monkeypatch):
    fake = FakeCluster().start()
    kubeconfig = fake.write_kubeconfig(tmp_path / "kubeconfig")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    yield fake
    fake.stop()
