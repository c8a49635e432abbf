"""``launcher.dry_run=true``: the manifest on stdout and in the run dir; no cluster, no torch."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import yaml

from k8s_helpers import IMAGE, ROOT, run_train


@pytest.mark.parametrize("launcher, kind, file", [("k8s-job", "Job", "job.yaml"),
                                                  ("pytorchjob", "PyTorchJob", "pytorchjob.yaml"),
                                                  ("trainjob", "TrainJob", "trainjob.yaml")])
def test_dry_run_prints_and_writes_the_manifest_without_torch_or_the_client(tmp_path, launcher, kind, file):
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-X", "importtime", str(ROOT / "train.py"), f"launcher={launcher}",
         f"launcher.image={IMAGE}", "launcher.dry_run=true", "run_id=dry", "model.lr=0.01"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={"PYTHONPATH": str(ROOT / "src"), "AEGIS_OUTPUT_ROOT": str(out), "KUBECONFIG": str(tmp_path / "none"),
             "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    manifest = yaml.safe_load(result.stdout)
    assert manifest["kind"] == kind
    written = out / "train" / "runs" / "dry" / file
    assert yaml.safe_load(written.read_text()) == manifest
    imported = set(re.findall(r"\|\s+([\w.]+)$", result.stderr, re.M))
    assert "hydra" in imported and "kubernetes_validate" in imported  # the check sees imports
    assert not {"torch", "lightning", "kubernetes"} & imported
    assert "dry run: nothing submitted" in result.stderr


@pytest.mark.slow  # the dry run from the command line: the test above; launcher.nodes: tests/k8s/test_k8s_render.py
def test_pytorchjob_dry_run_on_the_command_line(tmp_path):
    result = run_train("strategy=ddp", "launcher=pytorchjob", f"launcher.image={IMAGE}", "launcher.dry_run=true",
                       "launcher.nodes=4", cwd=tmp_path, env={"AEGIS_OUTPUT_ROOT": str(tmp_path / "out")})
    assert result.returncode == 0, result.stderr
    manifest = yaml.safe_load(result.stdout)
    assert manifest["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"] == 3
    assert "dry run: nothing submitted" in result.stderr
