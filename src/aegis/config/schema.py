"""Structured-config schemas, one dataclass per option of every config group.

Each YAML option in ``conf/<group>/`` extends its schema through its defaults list, so
Hydra rejects unknown keys and wrong types while composing, and
``aegis.config.validation`` applies the range checks carried in field metadata. A user
who points ``model._target_`` at their own LightningModule writes a YAML option without
a schema; their keys are then checked against the class signature before training.

One source of defaults: every default lives here. A YAML option states only what differs
from its schema (``trainer=smoke`` against the schema ``trainer=default`` also uses), and
the ``__init__`` defaults of Aegis's own classes equal these, so a number is never
written twice with different values (``tests/test_config_defaults.py`` keeps it so).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Dict, List, Optional

from omegaconf import II, MISSING

from aegis.config import checks as c
from aegis.config.checks import meta


class Progress(str, Enum):
    """How training reports progress: a bar on a terminal, one line per epoch elsewhere."""

    auto = "auto"
    bar = "bar"
    lines = "lines"
    none = "none"


class Mode(str, Enum):
    min = "min"
    max = "max"


class Optimizer(str, Enum):
    adam = "adam"
    adamw = "adamw"
    sgd = "sgd"


# --------------------------------------------------------------------------- data


@dataclass
class DataConfig:
    _target_: str = MISSING
    name: str = MISSING
    batch_size: int = field(default=64, metadata=meta(c.at_least(1)))
    val_fraction: float = field(default=0.1, metadata=meta(c.fraction(allow_zero=False)))
    test_fraction: float = field(default=0.2, metadata=meta(c.fraction(allow_zero=False)))
    num_workers: int = field(default=0, metadata=meta(c.at_least(0)))
    split_seed: int = field(default=1234, metadata=meta(c.between(0, 2**32 - 1)))
    # Facts about the data that models interpolate (``${data.num_classes}``).
    num_classes: int = field(default=MISSING, metadata=meta(c.at_least(2)))
    input_shape: List[int] = field(default_factory=list, metadata=meta(c.non_empty_positive_ints()))
    # Whether the data reads or fills $AEGIS_DATASET_CACHE (downloads, preprocessed shards).
    # Cluster launchers mount launcher.dataset_cache only then: data that needs no cache
    # (digits, synthetic) should not make every pod wait for a claim it never touches.
    uses_dataset_cache: bool = False


@dataclass
class DigitsDataConfig(DataConfig):
    _target_: str = "aegis.training.data.DigitsDataModule"
    name: str = "digits"
    num_classes: int = 10
    input_shape: List[int] = field(default_factory=lambda: [1, 8, 8])


@dataclass
class SyntheticDataConfig(DataConfig):
    _target_: str = "aegis.training.data.SyntheticDataModule"
    name: str = "synthetic"
    # Larger batches and a smaller test split than digits: 20,000 samples by default.
    batch_size: int = 128
    test_fraction: float = 0.1
    num_samples: int = field(default=20000, metadata=meta(c.at_least(10)))
    num_features: int = field(default=64, metadata=meta(c.at_least(1)))
    num_classes: int = 10
    class_sep: float = field(default=0.25, metadata=meta(c.greater_than(0)))
    noise: float = field(default=1.0, metadata=meta(c.at_least(0)))
    seed: int = field(default=0, metadata=meta(c.between(0, 2**32 - 1)))
    input_shape: List[int] = field(default_factory=lambda: [II("data.num_features")])


@dataclass
class CachedDataConfig(DataConfig):
    """Data from ``source`` (a path, file://, http(s)://, s3://), fetched once into the
    dataset cache (``aegis.data``) and decoded there into memory-mappable arrays.

    ``num_classes``/``input_shape`` null (the default): taken from the data once it is
    cached, before the model is built, so ``${data.num_classes}`` in a model follows it.
    Set them to insist on a value. ``storage_options`` go to fsspec (for S3, e.g.
    ``endpoint_url``; credentials come from the environment, never the config)."""

    source: str = field(default=MISSING, metadata=meta(c.data_source()))
    sha256: Optional[str] = field(default=None, metadata=meta(c.sha256_hex()))
    # ``Any``, not ``Optional[Dict]``: OmegaConf 2.3 cannot merge a dict into a Dict node that
    # is None (every spelling of ``data.storage_options={...}`` was a traceback); the check
    # keeps it a mapping, and aegis.secrets refuses credential-named keys in it.
    storage_options: Any = field(default=None, metadata=meta(c.mapping()))
    # The most bytes a source may hold (download, archive members, decoded arrays); aegis.data.
    max_bytes: int = field(default=20 * 10**9, metadata=meta(c.at_least(1)))
    cache_dir: str = field(default="${paths.dataset_cache}", metadata=meta(c.non_empty()))
    num_classes: Optional[int] = field(default=None, metadata=meta(c.at_least(2)))
    input_shape: Optional[List[int]] = field(default=None, metadata=meta(c.non_empty_positive_ints()))
    uses_dataset_cache: bool = True


@dataclass
class ImageFolderDataConfig(CachedDataConfig):
    """``class_name/*.png|jpg`` in a folder, .tar, .tar.gz or .zip; pixels scaled to [0, 1].
    ``channels`` null: 1 when every image is grayscale, else 3. ``image_size`` [height,
    width] resizes every image (needed when their sizes differ)."""

    _target_: str = "aegis.training.datasets.ImageFolderDataModule"
    name: str = "image_folder"
    channels: Optional[int] = field(default=None, metadata=meta(c.one_of(1, 3)))
    image_size: Optional[List[int]] = field(default=None, metadata=meta(c.non_empty_positive_ints()))


@dataclass
class ArraysDataConfig(CachedDataConfig):
    """An .npz with arrays ``features_key`` and ``labels_key``, or a Parquet table (needs
    pyarrow) with a ``labels_key`` column and features in the others (or in one list
    column ``features_key``)."""

    _target_: str = "aegis.training.datasets.ArraysDataModule"
    name: str = "arrays"
    features_key: str = field(default="features", metadata=meta(c.non_empty()))
    labels_key: str = field(default="labels", metadata=meta(c.non_empty()))


# -------------------------------------------------------------------------- model


@dataclass
class ModelConfig:
    _target_: str = MISSING
    name: str = MISSING
    # Optional only while the data has not been read: data with a source leaves them null
    # in the config until it is cached (aegis.training.datasets.complete_from_data).
    input_shape: Optional[List[int]] = field(default_factory=lambda: II("data.input_shape"))
    num_classes: Optional[int] = II("data.num_classes")
    lr: float = field(default=1e-3, metadata=meta(c.greater_than(0)))
    weight_decay: float = field(default=0.0, metadata=meta(c.at_least(0)))
    optimizer: Optimizer = Optimizer.adam
    dropout: float = field(default=0.1, metadata=meta(c.fraction()))


@dataclass
class MLPConfig(ModelConfig):
    _target_: str = "aegis.training.models.MLPClassifier"
    name: str = "mlp"
    hidden_dims: List[int] = field(
        default_factory=lambda: [256, 128], metadata=meta(c.non_empty_positive_ints())
    )


@dataclass
class CNNConfig(ModelConfig):
    _target_: str = "aegis.training.models.CNNClassifier"
    name: str = "cnn"
    channels: List[int] = field(
        default_factory=lambda: [32, 64], metadata=meta(c.non_empty_positive_ints())
    )
    hidden_dim: int = field(default=128, metadata=meta(c.at_least(1)))
    # What the CNN has always trained with (the range checks are ModelConfig's).
    dropout: float = 0.2
    lr: float = 2e-3
    weight_decay: float = 1e-4
    optimizer: Optimizer = Optimizer.adamw


# ------------------------------------------------------------------------ trainer

ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu")
PRECISIONS = ("32-true", "32", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true", "64")


@dataclass
class TrainerConfig:
    """Keyword arguments of ``lightning.pytorch.Trainer`` that Aegis lets configs set.

    ``devices``, ``num_nodes`` and ``strategy`` come from the ``strategy`` group, and
    callbacks, loggers and the checkpoint plugin from Aegis itself.
    """

    _target_: str = "lightning.pytorch.Trainer"
    max_epochs: int = field(default=20, metadata=meta(c.at_least(1)))
    min_epochs: Optional[int] = field(default=None, metadata=meta(c.at_least(0)))
    max_time: Optional[str] = field(default=None, metadata=meta(c.duration()))
    accelerator: str = field(default="auto", metadata=meta(c.one_of(*ACCELERATORS)))
    precision: str = field(default="32-true", metadata=meta(c.one_of(*PRECISIONS)))
    gradient_clip_val: Optional[float] = field(default=None, metadata=meta(c.greater_than(0)))
    accumulate_grad_batches: int = field(default=1, metadata=meta(c.at_least(1)))
    log_every_n_steps: int = field(default=10, metadata=meta(c.at_least(1)))
    check_val_every_n_epoch: int = field(default=1, metadata=meta(c.at_least(1)))
    # Any: an int counts batches, a float is a fraction of an epoch (a float field would
    # turn 5 batches into 5.0, which Lightning refuses), a string is a duration.
    val_check_interval: Any = field(default=None, metadata=meta(c.val_check_interval()))
    num_sanity_val_steps: int = field(default=2, metadata=meta(c.at_least(-1)))
    limit_train_batches: Any = field(default=1.0, metadata=meta(c.batch_limit()))
    limit_val_batches: Any = field(default=1.0, metadata=meta(c.batch_limit()))
    limit_test_batches: Any = field(default=1.0, metadata=meta(c.batch_limit()))
    overfit_batches: Any = field(default=0.0, metadata=meta(c.batch_limit()))
    fast_dev_run: Any = field(default=False, metadata=meta(c.fast_dev_run()))
    deterministic: Any = field(default=False, metadata=meta(c.deterministic()))
    benchmark: Optional[bool] = None
    detect_anomaly: bool = False
    enable_model_summary: bool = True


# ----------------------------------------------------------------------- strategy


@dataclass
class StrategyConfig:
    name: str = MISSING


@dataclass
class SingleStrategyConfig(StrategyConfig):
    """One process on one device (CPU, or the first GPU)."""

    name: str = "single"


@dataclass
class DDPStrategyConfig(StrategyConfig):
    """DDP over the processes torchrun (or a PyTorchJob) started.

    ``devices``/``num_nodes`` of null mean: read the gang's shape from torchrun's
    environment (LOCAL_WORLD_SIZE, WORLD_SIZE), one process per device.
    """

    name: str = "ddp"
    devices: Optional[int] = field(default=None, metadata=meta(c.at_least(1)))
    num_nodes: Optional[int] = field(default=None, metadata=meta(c.at_least(1)))
    process_group_backend: Optional[str] = field(default=None, metadata=meta(c.process_group_backend()))
    find_unused_parameters: bool = False
    timeout_s: int = field(default=1800, metadata=meta(c.at_least(1)))


# ----------------------------------------------------------------------- launcher


@dataclass
class LauncherConfig:
    name: str = MISSING




# ------------------------------------------------------------------------- logger


@dataclass
class LoggerConfig:
    name: str = MISSING


@dataclass
class MLflowLoggerConfig(LoggerConfig):
    """MLflow tracking. ``tracking_uri: null`` means $MLFLOW_TRACKING_URI, else a SQLite
    file under ``paths.root`` (artifacts beside it)."""

    name: str = "mlflow"
    tracking_uri: Optional[str] = None
    experiment_name: str = field(default=II("task_name"), metadata=meta(c.experiment_name()))
    run_name: Optional[str] = None
    tags: Dict[str, str] = field(default_factory=dict)
    log_checkpoint: bool = True
    register_model: bool = True
    registered_model_name: str = field(default="aegis-${task_name}", metadata=meta(c.registered_model_name()))
    # Start a new MLflow run even where the run dir records one (tracking.json); off: continue it.
    new_run: bool = False
    # Point this MLflow alias (models:/<name>@<alias>) at the version the run registers.
    registry_alias: Optional[str] = field(default=None, metadata=meta(c.registry_alias()))
    # MLflow's system metrics monitor (CPU, memory, disk, network, GPU) on rank 0: the `metrics` extra.
    system_metrics: bool = False


@dataclass
class CSVLoggerConfig(LoggerConfig):
    name: str = "csv"


@dataclass
class NoLoggerConfig(LoggerConfig):
    name: str = "none"


# -------------------------------------------------------------------------- paths


@dataclass
class PathsConfig:
    root: str = field(default="${oc.env:AEGIS_OUTPUT_ROOT,outputs}", metadata=meta(c.non_empty()))
    # Where data with a source (data=image_folder, data=arrays) is cached, decoded, once.
    # Pods get $AEGIS_DATASET_CACHE: the dataset-cache claim's mount (launcher.dataset_cache).
    dataset_cache: str = field(default="${oc.env:AEGIS_DATASET_CACHE,${paths.root}/dataset-cache}",
                               metadata=meta(c.non_empty()))


# ---------------------------------------------------------------------- top level


@dataclass
class CheckpointConfig:
    """``monitor``/``mode``/``save_top_k`` choose the best checkpoints; ``last.ckpt`` is
    written at every epoch end regardless, and also every ``every_n_steps`` optimizer
    steps or ``every_minutes`` when set (for long epochs: they bound what a kill loses)."""

    monitor: str = field(default="val/acc", metadata=meta(c.non_empty()))
    mode: Mode = Mode.max
    save_top_k: int = field(default=1, metadata=meta(c.at_least(-1)))
    every_n_steps: Optional[int] = field(default=None, metadata=meta(c.at_least(1)))
    every_minutes: Optional[float] = field(default=None, metadata=meta(c.greater_than(0)))


@dataclass
class TrainConfig:
    """The primary config. Group nodes are ``Any`` here: each group option brings its
    own schema, so the option decides which keys are valid."""

    data: Any = MISSING
    model: Any = MISSING
    trainer: Any = MISSING
    strategy: Any = MISSING
    launcher: Any = MISSING
    logger: Any = MISSING
    paths: Any = MISSING
    # A failure on purpose (the ``fault`` group, aegis.config.faults): none unless asked for.
    fault: Any = MISSING
    # Extra Lightning callbacks by name, each a ``_target_`` node (the ``callbacks`` group),
    # built after Aegis's own, which are always on (see conf/callbacks/default.yaml).
    callbacks: Dict[str, Any] = field(default_factory=dict)
    # Both name directories (<paths.root>/<task_name>/runs/<run_id>) and MLflow entities.
    task_name: str = field(default="train", metadata=meta(c.path_component()))
    # A fresh timestamp + random suffix; set it (``run_id=my-exp``) for a stable dir a re-run resumes.
    run_id: str = field(default="${aegis.stamp:}", metadata=meta(c.path_component()))
    seed: Optional[int] = field(default=42, metadata=meta(c.between(0, 2**32 - 1)))
    resume: str = field(
        default="auto",
        metadata=meta(c.non_empty(), "'auto' (continue from last.ckpt if present), 'never', or a checkpoint path"),
    )
    progress: Progress = Progress.auto
    test_after_fit: bool = True
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    tags: List[str] = field(default_factory=list)


# (group, option name in the ConfigStore, schema). YAML options extend these.
SCHEMAS: list[tuple[Optional[str], str, type]] = [
    (None, "train_schema", TrainConfig),
    ("data", "digits_schema", DigitsDataConfig),
    ("data", "synthetic_schema", SyntheticDataConfig),
    ("data", "image_folder_schema", ImageFolderDataConfig),
    ("data", "arrays_schema", ArraysDataConfig),
    ("model", "mlp_schema", MLPConfig),
    ("model", "cnn_schema", CNNConfig),
    ("trainer", "trainer_schema", TrainerConfig),
    ("strategy", "single_schema", SingleStrategyConfig),
    ("strategy", "ddp_schema", DDPStrategyConfig),
    ("logger", "mlflow_schema", MLflowLoggerConfig),
    ("logger", "csv_schema", CSVLoggerConfig),
    ("logger", "none_schema", NoLoggerConfig),
    ("paths", "paths_schema", PathsConfig),
]


# (group, option) -> (schema, the ConfigStore entry made from it): what this process stored.
_STORED: dict[tuple[Optional[str], str], tuple[type, Any]] = {}


def register_configs() -> None:
    """Register every schema in Hydra's ConfigStore (call before composing).

    Storing converts each dataclass to a DictConfig (~9 ms each, 35 of them), so an entry this
    process already stored, and that the store still holds, is not stored again: a second
    call costs nothing, and a launcher registered since (or an entry someone replaced) is
    stored as the first call would."""
    from hydra.core.config_store import ConfigStore

    from aegis.config.faults import SCHEMAS as FAULT_SCHEMAS
    from aegis.core.registry import schemas as launcher_schemas  # each launcher's folder holds its own

    store = ConfigStore.instance()
    launchers = [("launcher", option, schema) for option, schema in launcher_schemas()]
    for group, name, node in SCHEMAS + FAULT_SCHEMAS + launchers:
        stored = _STORED.get((group, name))
        if stored is not None and stored[0] is node and _entry(store, group, name) is stored[1]:
            continue
        store.store(group=group, name=name, node=node, provider="aegis")
        _STORED[(group, name)] = (node, _entry(store, group, name))


def _entry(store: Any, group: Optional[str], name: str) -> Any:
    """The ConfigStore's entry for ``group/name`` (None when it has none)."""
    node = store.repo
    for part in (group.split("/") if group else []):
        node = node.get(part) if isinstance(node, dict) else None
    return node.get(f"{name}.yaml") if isinstance(node, dict) else None
