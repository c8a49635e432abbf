"""Generate the checked-in manifests in ``k8s/`` from ``conf/``.

    python -m aegis.k8s.generate            # rewrite k8s/*.yaml
    python -m aegis.k8s.generate --check    # exit 1 if k8s/ differs from what conf/ renders

The files are what ``python train.py launcher=... launcher.dry_run=true`` prints, with a
fixed run id and image so the output is stable; a test fails when they drift. Use them
with ``kubectl create -f`` on clusters where Aegis itself does not run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Optional

from aegis.k8s.manifests import to_yaml

ROOT = Path(__file__).resolve().parents[3]
IMAGE = "aegis-training:0.1.0"
RUN_ID = "2026-01-01_00-00-00_000000"
# Volume sizes are cluster policy, not training config: change them here (or in the
# applied file) to fit the storage class.
DATASET_CACHE_SIZE = "20Gi"
OUTPUTS_SIZE = "20Gi"
HEADER = (
    "# Generated from conf/ by `python -m aegis.k8s.generate`; do not edit by hand.\n"
    "# Equivalent to: python train.py {command} launcher.dry_run=true\n"
)


def _compose(conf_dir: Path, overrides: list[str]):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from aegis.cli import prepare
    from aegis.config.validation import validate

    prepare()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    GlobalHydra.instance().clear()
    validate(cfg)
    return cfg


def _plan(conf_dir: Path, overrides: list[str], launcher):
    from aegis.launch.base import RunContext

    cfg = _compose(conf_dir, overrides)
    ctx = RunContext(run_dir=Path("/nonexistent"), run_id=RUN_ID, task_overrides=tuple(overrides),
                     config_name="train")
    return cfg, launcher.render(cfg, ctx)  # rendering validates the object


def pvc(name: str, namespace: str, size: str, component: str, note: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"app.kubernetes.io/name": "aegis", "app.kubernetes.io/component": component,
                                "app.kubernetes.io/part-of": "aegis", "app.kubernetes.io/managed-by": "aegis"},
                     "annotations": {"aegis.dev/note": note}},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}},
    }


def render_all(conf_dir: Path = ROOT / "conf") -> dict[str, str]:
    """File name in k8s/ -> its content: one manifest per launcher that submits a Kubernetes
    kind (``<kind>-training.yaml``), and the volume claims they mount."""
    from aegis.k8s.validate import schema_check
    from aegis.launch import LAUNCHERS, get_launcher

    files: dict[str, str] = {}
    launcher = None
    for name, entry in LAUNCHERS.items():
        if entry.kind is None:
            continue
        chosen = get_launcher(name)
        args = [*chosen.example_overrides, f"launcher={name}", f"launcher.image={IMAGE}", f"run_id={RUN_ID}"]
        cfg, plan = _plan(conf_dir, args, chosen)
        files[f"{plan.kind.lower()}-training.yaml"] = HEADER.format(command=" ".join(args)) + to_yaml(plan.manifest)
        launcher = cfg.launcher  # the volumes are the same for every Kubernetes launcher
    assert launcher is not None, "no launcher submits a Kubernetes kind"
    claims: list[dict[str, Any]] = []
    if launcher.dataset_cache.claim:
        claims.append(pvc(launcher.dataset_cache.claim, launcher.namespace, DATASET_CACHE_SIZE, "dataset-cache",
                          f"mounted at {launcher.dataset_cache.mount_path} (launcher.dataset_cache); "
                          "ReadWriteMany when PyTorchJob pods span nodes"))
    if launcher.outputs.claim:
        claims.append(pvc(launcher.outputs.claim, launcher.namespace, OUTPUTS_SIZE, "outputs",
                          f"run dirs under {launcher.outputs.mount_path} (launcher.outputs); "
                          "ReadWriteMany when PyTorchJob pods span nodes"))
    for claim in claims:
        schema_check(claim, "PersistentVolumeClaim")
    files["pvc-dataset-cache.yaml"] = (
        "# Generated from conf/ by `python -m aegis.k8s.generate`; do not edit by hand.\n"
        "# The claims the launchers mount by default (launcher.dataset_cache.claim, launcher.outputs.claim).\n"
        + "---\n".join(to_yaml(c) for c in claims)
    )
    return files


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aegis.k8s.generate", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "k8s", help="directory to write (default: k8s/)")
    parser.add_argument("--conf", type=Path, default=ROOT / "conf", help="config directory (default: conf/)")
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when a file differs")
    args = parser.parse_args(argv)
    files = render_all(args.conf)
    if args.check:
        stale = [n for n, text in files.items()
                 if not (args.out / n).is_file() or (args.out / n).read_text() != text]
        for name in stale:
            print(f"{args.out / name} is out of date: run python -m aegis.k8s.generate", file=sys.stderr)
        return 1 if stale else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (args.out / name).write_text(text)
        print(args.out / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
