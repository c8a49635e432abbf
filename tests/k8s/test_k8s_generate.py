"""k8s/ holds exactly what conf/ renders: a test fails when the checked-in files drift."""

from __future__ import annotations

import kubernetes_validate
import yaml

from aegis.k8s.generate import render_all
from aegis.k8s.validate import KUBERNETES_VERSION
from aegis.launch.pytorchjob.validate import pytorchjob_problems
from k8s_helpers import ROOT


def test_checked_in_manifests_match_the_renderer():
    files = render_all(ROOT / "conf")
    assert sorted(files) == ["job-training.yaml", "pvc-dataset-cache.yaml", "pytorchjob-training.yaml"]
    for name, text in files.items():
        on_disk = (ROOT / "k8s" / name).read_text()
        assert on_disk == text, f"k8s/{name} drifted from conf/: run `python -m aegis.k8s.generate`"


def test_checked_in_manifests_validate():
    for doc in yaml.safe_load_all((ROOT / "k8s" / "job-training.yaml").read_text()):
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    for doc in yaml.safe_load_all((ROOT / "k8s" / "pvc-dataset-cache.yaml").read_text()):
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    ptj = yaml.safe_load((ROOT / "k8s" / "pytorchjob-training.yaml").read_text())
    assert pytorchjob_problems(ptj) == []
