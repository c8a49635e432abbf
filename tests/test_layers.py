"""Imports only point down (docs/launchers.md, "Layers"): the contract holds on this tree,
fails on each import it forbids, and no module takes a private name from another package.

The contract runs on a copy of the package, so a probe import never touches the checkout.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


@pytest.fixture(scope="module")
def package_copy(tmp_path_factory):
    where = tmp_path_factory.mktemp("layers")
    shutil.copytree(ROOT / "src" / "aegis", where / "aegis", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", where / "pyproject.toml")
    return where


def _lint(where: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(where)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--config", str(where / "pyproject.toml")], cwd=where,
                          env=env, capture_output=True, text=True, timeout=120)


def test_the_layers_contract_is_kept_by_this_tree(package_copy):
    done = _lint(package_copy)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "Layers only point down" in done.stdout


@pytest.mark.parametrize("package, imported", [
    ("training", "aegis.launch.gang"),  # training imports nothing above it
    ("training", "aegis.k8s.pod"),
    ("k8s", "aegis.launch.local.launcher"),  # Kubernetes plumbing never imports a launcher,
    ("k8s", "aegis.training.run"),  # training
    ("k8s", "aegis.cli"),  # or the CLI
    ("core", "aegis.k8s.kinds"),  # the shared records import nothing above them
    ("failures", "aegis.k8s.triage"),
    ("config", "aegis.launch.kubernetes"),
    ("launch", "aegis.tune.checks"),  # launchers and the search are siblings
    ("tune", "aegis.launch.base"),
    ("launch.torchrun", "aegis.launch.local.launcher"),  # one launcher's folder never imports another's
    ("launch.k8s_job", "aegis.launch.pytorchjob.render"),
])
def test_the_layers_contract_fails_on_an_import_that_climbs(package_copy, package, imported):
    probe = package_copy / "aegis" / package.replace(".", "/") / "_probe_layers.py"
    probe.write_text(f"import {imported}\n")
    try:
        done = _lint(package_copy)
    finally:
        probe.unlink()
    assert done.returncode != 0
    assert f"aegis.{package}._probe_layers -> {imported}" in done.stdout, done.stdout[-3000:]


@pytest.mark.parametrize("module, imported", [
    ("k8s/prefetch.py", "aegis.k8s.pod"),  # the pod builds the init container around prefetch's command
    ("tune/layout.py", "aegis.tune.trial"),  # the names a trial shares with the driver sit below both
])
def test_the_no_cycles_contract_fails_on_a_function_level_import_that_closes_a_ring(package_copy, module, imported):
    path = package_copy / "aegis" / module
    kept = path.read_text()
    path.write_text(f"{kept}\n\ndef _probe_cycle():\n    import {imported}\n")
    try:
        done = _lint(package_copy)
    finally:
        path.write_text(kept)
    assert done.returncode != 0
    package = "aegis." + module.split("/")[0]
    assert f"No cycles are allowed in {package}." in done.stdout, done.stdout[-3000:]


def _package(module: str) -> str:
    return ".".join(module.split(".")[:2])


def _private_imports() -> list[str]:
    """``from aegis.x.y import _name`` where the importer is outside ``aegis.x``."""
    found = []
    sources = [*(ROOT / "src").rglob("*.py"), *(ROOT / "launchers").rglob("*.py")]
    for path in sources:
        rel = path.relative_to(ROOT / "src") if path.is_relative_to(ROOT / "src") else path.relative_to(ROOT)
        importer = ".".join(rel.with_suffix("").parts)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("aegis."):
                private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                if private and _package(node.module) != _package(importer):
                    found.append(f"{rel}: from {node.module} import {', '.join(private)}")
    return found


def test_no_module_imports_a_private_name_of_another_package():
    """What two packages share is public in the lower one (aegis.core.context.quote_override):
    a private name may change without notice, and its importer would break silently."""
    assert _private_imports() == []
