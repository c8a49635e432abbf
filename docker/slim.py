"""Keep what pods use, in the same layer that installed it (a later layer cannot shrink it).

    python3 slim.py prune            # drop files no pod reads (below)
    python3 slim.py warm [MODULE..]  # byte-compile what training imports, and only that

Run by Dockerfile.training after each `pip install --no-compile`. Standard library only.

prune removes, from the virtualenv's site-packages:
- test suites: every directory named ``tests`` or ``test`` inside a package (torch's C++
  test binaries in ``torch/test`` among them; ``torch/testing``, which torch imports, stays);
- torch's build-time files: ``torch/include`` (C++ headers: the image has no compiler, so
  neither C++ extensions nor torch.compile's CPU backend can build anyway), ``torch/share``
  (CMake files), ``torch/bin`` but its shm manager (protoc, C++ store tests), its test libraries
  (``torch/lib/lib*test*.so``, ``libbackend_with_compiler.so``, ``libaoti_custom_ops.so``).

warm imports the modules a training run imports (``RUNTIME`` below, plus any given) and
exercises MLflow's SQLite store end to end (create, log, log a PyTorch model, register),
with bytecode writing on: Python caches exactly the modules that ran. pip's own
byte-compilation would cache every module of every package (350 MB here, two thirds
never imported by a pod); no cache at all costs ~6 s of start-up in every pod, since the
non-root pod cannot write one. What warm misses is compiled at each start, which
tests/container/test_image.py measures.
"""

from __future__ import annotations

import compileall
import importlib
import importlib.util
import os
import shutil
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

# What `python train.py` imports on the pod's paths (local training, torchrun / PyTorchJob,
# MLflow on the embedded store), named by their entry points: each pulls in the rest.
RUNTIME = [
    "hydra", "hydra.main", "hydra.utils", "hydra._internal.utils", "hydra._internal.config_loader_impl",
    "hydra._internal.core_plugins.basic_launcher", "hydra._internal.core_plugins.basic_sweeper",
    "hydra._internal.core_plugins.file_config_source", "hydra._internal.core_plugins.importlib_resources_config_source",
    "hydra._internal.core_plugins.structured_config_source", "hydra._internal.hydra",
    "hydra.core.override_parser.overrides_parser", "hydra.experimental.callback", "omegaconf", "yaml",
    "torch", "torch.distributed", "torch.distributed.run", "torch.distributed.elastic.agent.server.local_elastic_agent",
    "torch.distributed.elastic.rendezvous.c10d_rendezvous_backend", "torch.distributed.elastic.rendezvous.static_tcp_rendezvous",
    "torch.distributed.elastic.rendezvous.dynamic_rendezvous", "torch.nn.parallel.distributed",
    "torch.utils.data", "torch.nn.functional",
    "lightning", "lightning.pytorch", "lightning.pytorch.callbacks", "lightning.pytorch.loggers",
    "lightning.pytorch.plugins.environments", "lightning.pytorch.plugins.io", "lightning.pytorch.strategies",
    "lightning.pytorch.strategies.ddp", "lightning.pytorch.loggers.mlflow", "lightning.pytorch.loggers.csv_logs",
    "torchmetrics", "torchmetrics.classification",
    "sklearn.datasets", "sklearn.model_selection", "sklearn.preprocessing",
    "mlflow", "mlflow.pytorch", "mlflow.tracking", "mlflow.store.db.utils", "mlflow.tracking.context.registry",
    "mlflow.store.tracking.sqlalchemy_store", "mlflow.store.model_registry.sqlalchemy_store",
    "alembic", "alembic.script", "alembic.runtime.migration", "sqlalchemy.dialects.sqlite",
    "sklearn.datasets.data", "sklearn.datasets.descr", "fsspec.implementations.chained", "torch.profiler",
    "torch.profiler._cupti_monitor",
]
# Small packages whose modules a run loads by name (Hydra's plugins, its logging config,
# the override grammar's parser): compiled whole (~2 MB), not traced.
WHOLE = ["hydra", "omegaconf", "antlr4"]


def site_packages() -> Path:
    return Path(sysconfig.get_paths()["purelib"])


def prune(site: Path) -> int:
    removed = 0
    torch = site / "torch"
    doomed = [torch / "include", torch / "share"]
    if (torch / "bin").is_dir():  # torch_shm_manager stays: `import torch` checks for it
        doomed += [p for p in (torch / "bin").iterdir() if p.name != "torch_shm_manager"]
    if (torch / "lib").is_dir():
        doomed += [p for p in (torch / "lib").iterdir()
                   if "test" in p.name or p.name in ("libbackend_with_compiler.so", "libaoti_custom_ops.so")]
    for package in site.iterdir():
        if package.is_dir() and not package.name.endswith((".dist-info", ".egg-info")):
            doomed += [p for p in package.rglob("test*") if p.name in ("tests", "test") and p.is_dir()]
    for path in doomed:
        if not path.exists():
            continue
        size = sum(f.stat().st_size for f in ([path] if path.is_file() else path.rglob("*")) if f.is_file())
        shutil.rmtree(path) if path.is_dir() else path.unlink()
        removed += size
    print(f"slim: pruned {removed / 1e6:.0f} MB (tests, torch headers and test binaries)")
    return removed


def exercise_mlflow() -> None:
    """What a run does with MLflow on the embedded store: migrate a fresh SQLite store, log,
    log a PyTorch model (pickle, explicit requirements, as aegis.training.tracking does),
    register it. Its imports get cached; the store is thrown away."""
    import logging

    import mlflow
    import mlflow.pytorch
    import torch

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    folder = Path(tempfile.mkdtemp(prefix="aegis-warm-"))
    try:
        mlflow.set_tracking_uri(f"sqlite:///{folder / 'mlflow.db'}")
        experiment = mlflow.create_experiment("warm", artifact_location=(folder / "artifacts").as_uri())
        with mlflow.start_run(experiment_id=experiment):
            mlflow.log_param("p", 1)
            mlflow.log_metric("m", 1.0, step=0)
            info = mlflow.pytorch.log_model(torch.nn.Linear(2, 2), name="model", serialization_format="pickle",
                                            pip_requirements=["torch"])
        mlflow.register_model(info.model_uri, "warm")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def warm(extra: list[str]) -> None:
    sys.dont_write_bytecode = False
    # No MLflow usage report from the build; torch's compile cache folder is not kept.
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    started = time.time()
    missing = []
    for name in RUNTIME + extra:
        try:
            importlib.import_module(name)
        except ImportError as exc:  # a module of an extra group, or a package renamed upstream
            missing.append(f"{name} ({exc})")
    if "mlflow" in sys.modules and "torch" in sys.modules:
        exercise_mlflow()
    for name in WHOLE:
        spec = importlib.util.find_spec(name)
        if spec and spec.submodule_search_locations:
            for location in spec.submodule_search_locations:
                compileall.compile_dir(location, quiet=1)
    cached = sum(1 for module in list(sys.modules.values()) if getattr(module, "__cached__", None))
    print(f"slim: cached the bytecode of {cached} modules in {time.time() - started:.1f}s")
    for line in missing:
        print(f"slim: not importable here, not cached: {line}")
    for leftover in Path(tempfile.gettempdir()).glob("torchinductor_*"):
        shutil.rmtree(leftover, ignore_errors=True)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("prune", "warm"):
        print(__doc__, file=sys.stderr)
        return 2
    if argv[0] == "prune":
        prune(site_packages())
    else:
        warm(argv[1:])
    return 0


if __name__ == "__main__":
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    sys.exit(main(sys.argv[1:]))
