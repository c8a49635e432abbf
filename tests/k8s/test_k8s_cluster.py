"""The launchers against a real cluster (kind, minikube, ...): ``pytest -m cluster``.

Skips cleanly without a reachable kube context. By default only server-side dry runs
(the API server and its admission webhooks check the objects; nothing is created).
With AEGIS_TEST_IMAGE set to an image the cluster can run (e.g. after
``kind load docker-image``), a short real Job is submitted, followed and must succeed.
"""

from __future__ import annotations

import os

import pytest

from k8s_helpers import IMAGE, run_train

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def cluster():
    try:
        from kubernetes import client, config

        config.load_kube_config(config_file=os.environ.get("KUBECONFIG") or None)
        api = client.ApiClient()
        client.VersionApi(api).get_code(_request_timeout=5)
        return api
    except Exception as exc:  # no kubeconfig, no context, unreachable
        pytest.skip(f"no reachable Kubernetes cluster: {type(exc).__name__}")


def _has_pytorchjob_crd(api) -> bool:
    from kubernetes import client

    groups = client.ApisApi(api).get_api_versions(_request_timeout=5)
    return any(g.name == "kubeflow.org" for g in groups.groups)


def test_job_server_dry_run(cluster, tmp_path):
    # outputs in an emptyDir: the claim check would refuse a cluster without the default claims
    result = run_train("launcher=k8s-job", f"launcher.image={IMAGE}", "launcher.server_dry_run=true",
                       "launcher.outputs.claim=null", cwd=tmp_path, env={"AEGIS_OUTPUT_ROOT": str(tmp_path / "out")})
    assert result.returncode == 0, result.stderr
    assert "accepted" in result.stderr


def test_pytorchjob_server_dry_run(cluster, tmp_path):
    if not _has_pytorchjob_crd(cluster):
        pytest.skip("the Kubeflow Training Operator (kubeflow.org) is not installed")
    result = run_train("strategy=ddp", "launcher=pytorchjob", f"launcher.image={IMAGE}", "launcher.server_dry_run=true",
                       "launcher.outputs.claim=null", cwd=tmp_path, env={"AEGIS_OUTPUT_ROOT": str(tmp_path / "out")})
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(not os.environ.get("AEGIS_TEST_IMAGE"), reason="set AEGIS_TEST_IMAGE to run a real Job")
def test_job_runs_to_success(cluster, tmp_path):
    # an image loaded onto kind/minikube may be named without a registry host
    result = run_train("launcher=k8s-job", f"launcher.image={os.environ['AEGIS_TEST_IMAGE']}", "trainer=smoke",
                       "launcher.allow_unqualified_image=true", "launcher.outputs.claim=null",
                       cwd=tmp_path, env={"AEGIS_OUTPUT_ROOT": str(tmp_path / "out")}, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "succeeded" in result.stderr
