"""Generate the checked-in manifests in ``k8s/`` from ``conf/``.

    python -m aegis.generate            # rewrite k8s/*.yaml
    python -m aegis.generate --check    # exit 1 if k8s/ differs from what conf/ renders

The files are what ``python train.py launcher=... launcher.dry_run=true`` prints, with a
fixed run id and image so the output is stable (no build record is read); a test fails
when they drift. None names a namespace, so ``kubectl apply -n NS -f k8s/...`` puts them
where it is told (the launchers set ``launcher.namespace`` when they submit). Use them with
``kubectl create -f`` on clusters where Aegis itself does not run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Optional

from aegis.k8s import builds
from aegis.k8s.manifests import to_yaml

ROOT = Path(__file__).resolve().parents[2]  # src/aegis/generate.py -> the checkout
IMAGE = "registry.example.com/ml/aegis-training:0.1.0"
RUN_ID = "2026-01-01_00-00-00_000000"
# Volume sizes are cluster policy, not training config: change them here (or in the
# applied file) to fit the storage class.
DATASET_CACHE_SIZE = "20Gi"
OUTPUTS_SIZE = "20Gi"
HEADER = (
    "# Generated from conf/ by `python -m aegis.generate`; do not edit by hand.\n"
    "# Equivalent to: python train.py {command} launcher.dry_run=true\n"
    "# without metadata.namespace: kubectl apply -n NS -f this file.\n"
)

COMPANION_HEADER = (
    "# Generated from conf/ by `python -m aegis.generate`; do not edit by hand.\n"
    "# The {kind} {name} that {file} names: kubectl apply -f this file, once per cluster,\n"
    "# before the first job that uses it.\n"
)


def _compose(conf_dir: Path, overrides: list[str]):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import open_dict

    from aegis.cli import prepare
    from aegis.config.validation import validate

    prepare()
    GlobalHydra.instance().clear()
    # With its hydra node, as train.py validates it: a rule that reads the run mode or the
    # sweeper (a RayJob needs a search) must never see a stale HydraConfig instead.
    with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    GlobalHydra.instance().clear()
    validate(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def _plan(conf_dir: Path, overrides: list[str], launcher):
    from aegis.core.context import RunContext

    cfg = _compose(conf_dir, overrides)
    ctx = RunContext(run_dir=Path("/nonexistent"), run_id=RUN_ID, task_overrides=tuple(overrides),
                     config_name="train")
    return cfg, launcher.render(cfg, ctx)  # rendering validates the object


def pvc(name: str, size: str, component: str, note: str) -> dict[str, Any]:
    """A claim every pod of a job can mount from any node: ReadWriteMany, since the pods of a
    PyTorchJob land on several nodes and a ReadWriteOnce claim fails to attach on the second."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name,
                     "labels": {"app.kubernetes.io/name": "aegis", "app.kubernetes.io/component": component,
                                "app.kubernetes.io/part-of": "aegis", "app.kubernetes.io/managed-by": "aegis"},
                     "annotations": {"aegis.dev/note": note}},
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": size}}},
    }


def _without_namespace(manifest: dict[str, Any]) -> dict[str, Any]:
    return {**manifest, "metadata": {k: v for k, v in manifest["metadata"].items() if k != "namespace"}}


def render_all(conf_dir: Path = ROOT / "conf") -> dict[str, str]:
    """File name in k8s/ -> its content: one manifest per launcher that submits a Kubernetes
    kind (``<kind>-training.yaml``, or the launcher's ``example_file``: ``rayjob-tune.yaml``),
    what a launcher's ``companions`` says its object needs on the cluster first (the TrainJob's
    runtime), and the volume claims they mount."""
    import contextlib

    from aegis.core.registry import LAUNCHERS, get_launcher

    with builds.ignored(), contextlib.ExitStack() as pinned:
        for name, entry in LAUNCHERS.items():  # a launcher's random tokens, fixed (Launcher.reproducible)
            if entry.kind is not None:
                pinned.enter_context(get_launcher(name).reproducible())
        return _render_all(conf_dir)


def _render_all(conf_dir: Path) -> dict[str, str]:
    from aegis.k8s.validate import schema_check
    from aegis.core.registry import LAUNCHERS, get_launcher

    files: dict[str, str] = {}
    launcher = None
    for name, entry in LAUNCHERS.items():
        if entry.kind is None:
            continue
        chosen = get_launcher(name)
        args = [*chosen.example_overrides, f"launcher={name}", f"launcher.image={IMAGE}", f"run_id={RUN_ID}"]
        cfg, plan = _plan(conf_dir, args, chosen)
        manifest = _without_namespace(plan.manifest)
        # A launcher that runs something other than one training (rayjob: a search) names its file.
        file_name = getattr(chosen, "example_file", None) or f"{plan.kind.lower()}-training.yaml"
        files[file_name] = HEADER.format(command=" ".join(args)) + to_yaml(manifest)
        # What the object needs on the cluster first (trainjob: the runtime its runtimeRef names).
        for companion, obj in getattr(chosen, "companions", lambda cfg, plan: {})(cfg, plan).items():
            files[companion] = COMPANION_HEADER.format(
                kind=obj["kind"], name=obj["metadata"]["name"], file=file_name) + to_yaml(obj)
        launcher = cfg.launcher  # the volumes are the same for every Kubernetes launcher
    assert launcher is not None, "no launcher submits a Kubernetes kind"
    for name, entry in LAUNCHERS.items():  # each launcher's further examples (Launcher.examples)
        chosen = get_launcher(name) if entry.kind is not None else None
        for file_name, overrides in getattr(chosen, "examples", ()):
            args = [*overrides, f"launcher={name}", f"launcher.image={IMAGE}", f"run_id={RUN_ID}"]
            _, plan = _plan(conf_dir, args, chosen)
            files[file_name] = HEADER.format(command=" ".join(args)) + to_yaml(_without_namespace(plan.manifest))
    claims: list[dict[str, Any]] = []
    if launcher.dataset_cache.claim:
        claims.append(pvc(launcher.dataset_cache.claim, DATASET_CACHE_SIZE, "dataset-cache",
                          f"mounted at {launcher.dataset_cache.mount_path} (launcher.dataset_cache) when the data "
                          "uses a cache (data.uses_dataset_cache); shared by every pod of a job, on any node"))
    if launcher.outputs.claim:
        claims.append(pvc(launcher.outputs.claim, OUTPUTS_SIZE, "outputs",
                          f"run dirs under {launcher.outputs.mount_path} (launcher.outputs); shared by every pod "
                          "of a job, on any node"))
    for claim in claims:
        schema_check(claim, "PersistentVolumeClaim")
    files["pvc-dataset-cache.yaml"] = (
        "# Generated from conf/ by `python -m aegis.generate`; do not edit by hand.\n"
        "# The claims the launchers mount by default (launcher.outputs.claim; launcher.dataset_cache.claim when\n"
        "# the data uses a cache). ReadWriteMany: a storage class that offers it (NFS, CephFS, EFS, Filestore...);\n"
        "# on a one-node kind/minikube cluster ReadWriteOnce works too. kubectl apply -n NS -f this file.\n"
        + "---\n".join(to_yaml(c) for c in claims)
    )
    return files


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aegis.generate", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "k8s", help="directory to write (default: k8s/)")
    parser.add_argument("--conf", type=Path, default=ROOT / "conf", help="config directory (default: conf/)")
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when a file differs")
    args = parser.parse_args(argv)
    files = render_all(args.conf)
    if args.check:
        stale = [n for n, text in files.items()
                 if not (args.out / n).is_file() or (args.out / n).read_text() != text]
        for name in stale:
            print(f"{args.out / name} is out of date: run python -m aegis.generate", file=sys.stderr)
        return 1 if stale else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (args.out / name).write_text(text)
        print(args.out / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
