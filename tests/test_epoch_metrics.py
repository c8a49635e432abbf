"""aegis.training.epoch_metrics: the shipped classifiers' figures reach loggers, callbacks
and the progress bar with the names and values per-step ``self.log`` gave them, without a
``self.log`` on every step."""

from __future__ import annotations

import importlib.util
import json
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")
L = pytest.importorskip("lightning.pytorch")
F = torch.nn.functional

from lightning.pytorch.loggers.logger import Logger  # noqa: E402
from lightning.pytorch.trainer.connectors.logger_connector.result import _ResultCollection  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from aegis.training.epoch_metrics import CHECKPOINT_KEY, EpochSums, LogEpochMetrics  # noqa: E402
from aegis.training.models import MLPClassifier  # noqa: E402

from helpers import REPO  # noqa: E402


def _reference() -> type:
    """The module as it logged before, two ``self.log`` calls every step: the "aegis-before"
    arm of bench/step_rate.py, read from the bench so that arm stays what it claims."""
    spec = importlib.util.spec_from_file_location("per_step_logging", REPO / "bench" / "per_step_logging.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.PerStepLoggingMLP


PerStepLogging = _reference()


class Rows(Logger):
    name, version = "rows", "0"

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[int, dict[str, float]]] = []

    def log_metrics(self, metrics, step=None):
        self.rows.append((step, {k: float(v) for k, v in metrics.items()}))

    def log_hyperparams(self, *args, **kwargs):
        pass


class EpochEndReader(L.Callback):
    """A user's callback: not a monitoring one, so Lightning runs it before the module's own
    ``on_train_epoch_end``."""

    def __init__(self) -> None:
        self.seen: list[dict[str, float]] = []

    def on_train_epoch_end(self, trainer, pl_module):
        self.seen.append({k: float(v) for k, v in trainer.callback_metrics.items()})


def fit(module_class, *, epochs=2, log_every=2, **trainer_options):
    """Six batches an epoch (the last one short), fixed order, no dropout: the same steps
    for any module class."""
    L.seed_everything(0, verbose=False)
    x = torch.randn(90, 8)
    y = (x[:, 0] + x[:, 1] > 0).long()
    module = module_class(input_shape=[8], num_classes=2, hidden_dims=[16], dropout=0.0, lr=0.05)
    rows, reader = Rows(), EpochEndReader()
    trainer = L.Trainer(max_epochs=epochs, logger=rows, callbacks=[reader], enable_progress_bar=False,
                        enable_checkpointing=False, enable_model_summary=False, log_every_n_steps=log_every,
                        accelerator="cpu", devices=1, **trainer_options)
    trainer.fit(module, DataLoader(TensorDataset(x, y), batch_size=16),
                DataLoader(TensorDataset(x, y), batch_size=32))
    return SimpleNamespace(rows=rows.rows, seen=reader.seen, trainer=trainer, module=module)


def same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), key


def test_loggers_callbacks_and_the_bar_get_what_per_step_logging_gave():
    shipped, before = fit(MLPClassifier), fit(PerStepLogging)
    assert [step for step, _ in shipped.rows] == [step for step, _ in before.rows]
    for (_, got), (_, want) in zip(shipped.rows, before.rows):
        same(got, want)
    assert {"train/loss_step", "train/loss_epoch", "train/acc", "val/loss", "val/acc"} == set().union(
        *(row for _, row in shipped.rows)) - {"epoch"}
    # the user's callback reads the epoch's figures at on_train_epoch_end, as it did
    assert len(shipped.seen) == 2
    for got, want in zip(shipped.seen, before.seen):
        same(got, want)
        assert {"train/loss", "train/acc", "train/loss_epoch"} <= got.keys()
    same({k: float(v) for k, v in shipped.trainer.progress_bar_metrics.items()},
         {k: float(v) for k, v in before.trainer.progress_bar_metrics.items()})
    # and the model learnt: the second epoch's training loss is below the first's
    assert shipped.seen[1]["train/loss"] < shipped.seen[0]["train/loss"]


def test_a_training_step_calls_self_log_only_on_the_steps_the_loggers_write(monkeypatch):
    calls: list[str] = []
    original = _ResultCollection.log

    def counting(self, fx, name, *args, **kwargs):
        calls.append(fx)
        return original(self, fx, name, *args, **kwargs)

    monkeypatch.setattr(_ResultCollection, "log", counting)
    run = fit(MLPClassifier, epochs=1, log_every=3)
    # 6 steps, the loggers write steps 2 and 5 (Lightning counts from 0 and logs every third)
    assert calls.count("training_step") == 2
    assert [step for step, row in run.rows if "train/loss_step" in row] == [2, 5]
    assert calls.count("on_train_epoch_end") == 3  # train/loss_epoch, train/loss, train/acc once


def test_the_epoch_callback_is_put_first_once_however_often_fit_runs():
    run = fit(MLPClassifier, epochs=1)
    run.trainer.fit_loop.max_epochs = 2
    x = torch.randn(32, 8)
    y = (x[:, 0] > 0).long()
    run.trainer.fit(run.module, DataLoader(TensorDataset(x, y), batch_size=16))
    firsts = [cb for cb in run.trainer.callbacks if isinstance(cb, LogEpochMetrics)]
    assert len(firsts) == 1 and run.trainer.callbacks[0] is firsts[0]


def test_a_resumed_epoch_continues_from_the_checkpointed_sums():
    class Recorded(SimpleNamespace):
        def log(self, name, value, **options):
            self.logged[name] = (float(value), options)

    whole, split = EpochSums("train"), EpochSums("train")
    batches = [(torch.tensor(0.5), torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0])),
               (torch.tensor(0.25), torch.tensor([[0.0, 3.0]]), torch.tensor([1])),
               (torch.tensor(1.0), torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 1, 1]))]
    for batch in batches:
        whole.add(*batch)
    split.add(*batches[0])
    checkpoint = {CHECKPOINT_KEY: split.state_dict()}
    resumed = EpochSums("train")
    resumed.load_state_dict(checkpoint[CHECKPOINT_KEY], "cpu")
    for batch in batches[1:]:
        resumed.add(*batch)
    a, b = Recorded(logged={}), Recorded(logged={})
    whole.log_epoch(a)
    resumed.log_epoch(b)
    assert a.logged == b.logged
    assert a.logged["train/loss"][0] == pytest.approx((0.5 * 2 + 0.25 + 3.0) / 6)
    assert a.logged["train/acc"][0] == pytest.approx(4 / 6)  # right: 1 of 2, 1 of 1, 2 of 3
    assert a.logged["train/acc"][1]["batch_size"] == 6 and a.logged["train/acc"][1]["sync_dist"]
    assert whole.samples == 0  # a fresh epoch after logging
    b.logged.clear()
    whole.log_epoch(b)
    assert b.logged == {}  # an epoch with no steps logs nothing


def test_the_module_saves_and_restores_its_epoch_sums():
    module = MLPClassifier(input_shape=[8], num_classes=2, hidden_dims=[4])
    module.epoch_sums['train'].add(torch.tensor(0.5), torch.tensor([[1.0, 0.0]]), torch.tensor([0]))
    checkpoint: dict = {}
    module.on_save_checkpoint(checkpoint)
    assert checkpoint[CHECKPOINT_KEY] == {"loss_sum": 0.5, "correct": 1, "samples": 1}
    again = MLPClassifier(input_shape=[8], num_classes=2, hidden_dims=[4])
    again.on_load_checkpoint(checkpoint)
    assert again.epoch_sums['train'].state_dict() == checkpoint[CHECKPOINT_KEY]
    again.on_load_checkpoint({})  # a checkpoint from before: the sums stay as they are
    assert again.epoch_sums['train'].samples == 1


def test_validate_and_test_report_what_per_step_logging_reported():
    x = torch.randn(40, 8)
    y = (x[:, 0] > 0).long()
    results = []
    for module_class in (MLPClassifier, PerStepLogging):
        run = fit(module_class, epochs=1)
        loader = DataLoader(TensorDataset(x, y), batch_size=16)
        results.append((run.trainer.validate(run.module, loader, verbose=False),
                        run.trainer.test(run.module, loader, verbose=False)))
    (validated, tested), (validated_before, tested_before) = results
    same(validated[0], validated_before[0])
    same(tested[0], tested_before[0])
    assert set(tested[0]) == {"test/loss", "test/acc"}


class RankRecord(L.Callback):
    """Writes what each rank's callbacks read at the epoch end, to a file per rank."""

    def __init__(self, folder) -> None:
        self.folder = folder

    def on_train_epoch_end(self, trainer, pl_module):
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        (self.folder / f"rank{trainer.global_rank}.json").write_text(json.dumps(metrics))


def gang_epoch(module_class, folder):
    folder.mkdir()
    L.seed_everything(0, verbose=False)
    x = torch.randn(128, 8)
    y = (x[:, 0] + x[:, 1] > 0).long()
    module = module_class(input_shape=[8], num_classes=2, hidden_dims=[16], dropout=0.0, lr=0.05)
    trainer = L.Trainer(max_epochs=1, logger=False, callbacks=[RankRecord(folder)], enable_progress_bar=False,
                        enable_checkpointing=False, enable_model_summary=False, accelerator="cpu", devices=2,
                        strategy="ddp_fork", use_distributed_sampler=True)
    trainer.fit(module, DataLoader(TensorDataset(x, y), batch_size=16))
    return [json.loads((folder / f"rank{rank}.json").read_text()) for rank in (0, 1)]


@pytest.mark.slow
def test_in_a_gang_every_rank_reads_the_epoch_means_over_all_ranks(tmp_path):
    shipped = gang_epoch(MLPClassifier, tmp_path / "shipped")
    before = gang_epoch(PerStepLogging, tmp_path / "before")
    # before, the epoch loss was each rank's own (not synced); accuracy was synced
    assert before[0]["train/loss"] != pytest.approx(before[1]["train/loss"])
    assert before[0]["train/acc"] == pytest.approx(before[1]["train/acc"])
    # now both are the mean over the gang (each rank saw 64 samples, so the plain mean)
    mean_loss = (before[0]["train/loss"] + before[1]["train/loss"]) / 2
    for rank in shipped:
        assert rank["train/loss"] == pytest.approx(mean_loss, rel=1e-5)
        assert rank["train/loss_epoch"] == pytest.approx(mean_loss, rel=1e-5)
        assert rank["train/acc"] == pytest.approx(before[0]["train/acc"], rel=1e-5)
