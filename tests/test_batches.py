"""The in-memory data path: whole batches by indexing, in DistributedSampler's order.

What must hold: every rank's share is DistributedSampler's, index for index (so sharding
under DDP is unchanged: each sample once per epoch across ranks); an epoch's order
depends on the seed and the epoch alone; validation and test are unshuffled and
complete; a run resumed mid-epoch sees the batches an uninterrupted run would have; and
the model learns as well as through torch's DataLoader.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from aegis.launch.base import RunContext
from aegis.training.batches import TensorBatches, shard_indices
from aegis.training.data import CLASSIC_ENV, DigitsDataModule, SyntheticDataModule
from helpers import run_dirs, run_train, summary

sys.path.insert(0, str(Path(__file__).parent / "support"))  # batch_rows, the DDP test's callback

pytest.importorskip("lightning")


def _ids(batches) -> list[int]:
    return [int(v) for x, _ in batches for v in x.tolist()]


@pytest.mark.parametrize("num_samples", [1, 7, 10, 1257])
@pytest.mark.parametrize("replicas", [1, 2, 3])
@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("drop_last", [False, True])
def test_each_rank_gets_exactly_distributed_samplers_indices(num_samples, replicas, shuffle, drop_last):
    if drop_last and num_samples < replicas:
        pytest.skip("DistributedSampler gives every rank nothing")
    dataset = range(num_samples)
    for epoch in (0, 3):
        for rank in range(replicas):
            torch_sampler = DistributedSampler(dataset, num_replicas=replicas, rank=rank, shuffle=shuffle, seed=42,
                                               drop_last=drop_last)
            torch_sampler.set_epoch(epoch)
            ours = shard_indices(num_samples, num_replicas=replicas, rank=rank, shuffle=shuffle, seed=42, epoch=epoch,
                                 drop_last=drop_last)
            assert ours.tolist() == list(torch_sampler)


def test_two_ranks_split_an_epoch_into_disjoint_halves_covering_every_sample_once():
    samples = torch.arange(1000)
    ranks = [TensorBatches([samples, samples], 64, shuffle=True, seed=7, num_replicas=2, rank=r) for r in (0, 1)]
    for epoch in range(3):
        seen = []
        for batches in ranks:
            batches.sampler.set_epoch(epoch)
            seen.append(_ids(batches))
            assert len(batches) == len(DataLoader(range(500), batch_size=64)) == 8
        assert len(seen[0]) == len(seen[1]) == 500
        assert not set(seen[0]) & set(seen[1])
        assert sorted(seen[0] + seen[1]) == list(range(1000))


def test_an_odd_count_is_padded_as_distributed_sampler_pads_it():
    samples = torch.arange(11)
    seen = []
    for rank in (0, 1):
        batches = TensorBatches([samples], 4, shuffle=True, seed=0, num_replicas=2, rank=rank)
        seen.append([int(v) for (x,) in batches for v in x.tolist()])
    assert [len(s) for s in seen] == [6, 6]  # one sample twice, as DistributedSampler does
    assert set(seen[0]) | set(seen[1]) == set(range(11))


def test_each_epoch_is_reshuffled_and_the_order_depends_only_on_seed_and_epoch():
    samples = torch.arange(500)

    def order(seed: int, epoch: int) -> list[int]:
        batches = TensorBatches([samples, samples], 32, shuffle=True, seed=seed)
        batches.sampler.set_epoch(epoch)
        return _ids(batches)

    assert order(1, 0) == order(1, 0)  # a fresh loader (a resumed run, another rank) agrees
    assert order(1, 0) != order(1, 1)  # reshuffled every epoch
    assert order(1, 0) != order(2, 0)
    assert sorted(order(1, 5)) == list(range(500))


def test_batches_equal_a_dataloaders_when_unshuffled_and_come_as_whole_tensors():
    x, y = torch.randn(130, 1, 8, 8), torch.randint(0, 10, (130,))
    ours = list(TensorBatches([x, y], 64, shuffle=False))
    theirs = list(DataLoader(TensorDataset(x, y), batch_size=64))
    assert len(ours) == len(theirs) == 3
    for (ox, oy), (tx, ty) in zip(ours, theirs):
        assert torch.equal(ox, tx) and torch.equal(oy, ty)
    assert [len(b) for b, _ in ours] == [64, 64, 2]


def test_validation_and_test_loaders_are_unshuffled_and_complete():
    data = DigitsDataModule(batch_size=64)
    data.setup()
    for split, loader in (("val", data.val_dataloader()), ("test", data.test_dataloader())):
        assert isinstance(loader, TensorBatches)
        expected_x, expected_y = data._splits[split].tensors
        for epoch in (0, 4):  # Lightning sets the fit epoch on these too: still the same order
            loader.sampler.set_epoch(epoch)
            xs, ys = zip(*loader)
            assert torch.equal(torch.cat(xs), expected_x) and torch.equal(torch.cat(ys), expected_y)


def test_the_training_loader_is_sharded_per_rank_of_the_trainer_and_covers_the_split(monkeypatch):
    monkeypatch.setenv("PL_GLOBAL_SEED", "5")  # what seed_everything sets; every rank reads it
    data = SyntheticDataModule(num_samples=1000, batch_size=50)
    data.setup()
    train_x = data._splits["train"].tensors[0]
    seen = []
    for rank in (0, 1):
        data.trainer = SimpleNamespace(distributed_sampler_kwargs={"num_replicas": 2, "rank": rank}, world_size=2,
                                       overfit_batches=0, strategy=SimpleNamespace(root_device=torch.device("cpu")))
        loader = data.train_dataloader()
        loader.sampler.set_epoch(2)
        seen.append(torch.cat([x for x, _ in loader]))
    assert len(seen[0]) == len(seen[1]) == len(train_x) // 2
    rows = {tuple(r) for r in torch.cat(seen).tolist()}
    assert rows == {tuple(r) for r in train_x.tolist()}


def test_resuming_from_the_state_continues_the_same_permutation_at_the_next_batch():
    samples = torch.arange(300)
    first = TensorBatches([samples], 32, shuffle=True, seed=3)
    first.sampler.set_epoch(2)
    uninterrupted = [b[0].tolist() for b in first]
    first.sampler.set_epoch(2)
    iterator = iter(first)
    for _ in range(4):
        next(iterator)
    state = first.state_dict()
    assert state == {"epoch": 2, "batches": 4, "seed": 3}

    resumed = TensorBatches([samples], 32, shuffle=True, seed=99)  # an unseeded rerun drew another seed
    resumed.load_state_dict(state)
    resumed.sampler.set_epoch(2)
    assert [b[0].tolist() for b in resumed] == uninterrupted[4:]
    resumed.sampler.set_epoch(3)  # the next epoch is whole again
    assert len(list(resumed)) == len(resumed)


def test_workers_take_torchs_dataloader_with_one_log_line(caplog):
    data = DigitsDataModule(batch_size=64, num_workers=1)
    data.setup()
    with caplog.at_level(logging.INFO, logger="aegis.training"):
        loaders = [data.train_dataloader(), data.val_dataloader()]
    assert all(isinstance(loader, DataLoader) for loader in loaders)
    assert len([r for r in caplog.records if "DataLoader" in r.getMessage()]) == 1


# --------------------------------------------------------------------- in Lightning


@pytest.fixture()
def train_run(compose, tmp_path, monkeypatch):
    """Train in this process; returns (outcome, run_dir)."""
    from aegis.training.run import train

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    def _train(*overrides: str, run_dir: Path, callbacks=()):
        cfg = compose(f"paths.root={tmp_path}", "progress=none", "logger=none", *overrides)
        ctx = RunContext(run_dir=run_dir, run_id=run_dir.name, task_overrides=overrides, config_name="train")
        return train(cfg, ctx, callbacks=callbacks), run_dir

    return _train


def _batch_recorder():
    import lightning.pytorch as L

    class Recorder(L.Callback):
        def __init__(self):
            self.seen: dict[int, list[float]] = {}

        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            self.seen[trainer.global_step] = batch[0].flatten(1).sum(1).tolist()

    return Recorder()


@pytest.mark.slow  # three smoke runs; the sampler state it restores: test_resuming_from_the_state_continues_the_same_permutation_at_the_next_batch
def test_a_run_resumed_mid_epoch_trains_on_the_batches_an_uninterrupted_run_sees(train_run, tmp_path):
    import lightning.pytorch as L

    class SigtermAtStep11(L.Callback):  # 8 steps per epoch: in the middle of the second
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == 11:
                os.kill(os.getpid(), signal.SIGTERM)

    smoke = ("trainer=smoke", "trainer.max_epochs=3")
    whole = _batch_recorder()
    outcome, _ = train_run(*smoke, run_dir=tmp_path / "whole", callbacks=[whole])
    assert outcome.exit_code == 0

    before, after = _batch_recorder(), _batch_recorder()
    stopped, run_dir = train_run(*smoke, run_dir=tmp_path / "cut", callbacks=[before, SigtermAtStep11()])
    assert stopped.exit_code == 143
    resumed, _ = train_run(*smoke, run_dir=run_dir, callbacks=[after])
    assert resumed.exit_code == 0
    assert summary(run_dir)["global_step"] == 24
    assert sorted(before.seen) == list(range(11)) and sorted(after.seen) == list(range(11, 24))
    assert {**before.seen, **after.seen} == whole.seen


@pytest.mark.slow  # two 6-epoch runs (the longest default test, 30 s); same batches: test_batches_equal_a_dataloaders_when_unshuffled_and_come_as_whole_tensors
def test_digits_accuracy_is_the_same_through_whole_batches_as_through_the_dataloader(train_run, tmp_path,
                                                                                      monkeypatch):
    accuracy = {}
    for path in ("classic", "batches"):
        monkeypatch.setenv(CLASSIC_ENV, "1" if path == "classic" else "0")
        outcome, _ = train_run("trainer.max_epochs=6", "trainer.accelerator=cpu", run_dir=tmp_path / path)
        assert outcome.exit_code == 0
        accuracy[path] = outcome.summary["metrics"]["test/acc"]
    assert accuracy["batches"] >= 0.93 and accuracy["classic"] >= 0.93, accuracy
    assert abs(accuracy["batches"] - accuracy["classic"]) <= 0.03, accuracy  # same seed: noise only


@pytest.mark.slow
def test_a_ddp_gang_visits_every_training_sample_once_per_epoch(tmp_path):
    """Two torchrun ranks: each records the training rows it saw; per epoch their union is the
    whole training split, each row once (1,600 rows: no padding), and no rank saw another's."""
    out = tmp_path / "seen"
    out.mkdir()
    result = run_train(["strategy=ddp", "launcher=torchrun", "launcher.nproc_per_node=2", "trainer.accelerator=cpu",
                        "logger=none", "data=synthetic", "data.num_samples=2000", "data.batch_size=64",
                        "trainer.max_epochs=2", "trainer.num_sanity_val_steps=0", "test_after_fit=false",
                        "+callbacks.rows._target_=batch_rows.RowsSeen", f"+callbacks.rows.out_dir={out}"],
                       tmp_path, env={"PYTHONPATH": str(Path(__file__).parent / "support")})
    assert result.returncode == 0, result.stderr[-4000:]
    [run_dir] = run_dirs(tmp_path)
    assert summary(run_dir)["global_step"] == 2 * 13  # 800 rows per rank, batches of 64
    seen = {rank: json.loads((out / f"rank{rank}.json").read_text()) for rank in (0, 1)}
    data = SyntheticDataModule(num_samples=2000)
    data.setup()
    from batch_rows import row_key

    train_rows = sorted(row_key(r) for r in data._splits["train"].tensors[0].tolist())
    for epoch in ("0", "1"):
        rows = [seen[0][epoch], seen[1][epoch]]
        assert len(rows[0]) == len(rows[1]) == 800
        assert not set(rows[0]) & set(rows[1])
        assert sorted(rows[0] + rows[1]) == train_rows
    assert seen[0]["0"] != seen[0]["1"]  # reshuffled between epochs


# ------------------------------------------------- Lightning's self.log, without the walk


def test_the_log_fastpath_keeps_every_logged_value_and_still_moves_a_metric_elsewhere(monkeypatch):
    from lightning.pytorch.trainer.connectors.logger_connector.result import _ResultCollection, _ResultMetric

    from aegis.training import log_fastpath

    def log_some(results):
        for step in range(5):
            value = torch.tensor(float(step))
            results.log("training_step", "train/loss", value, on_step=True, on_epoch=True, batch_size=2 + step)
            results.log("training_step", "train/top", value, on_step=False, on_epoch=True, reduce_fx="max")
        return {key: (metric.value.item(), getattr(metric, "cumulated_batch_size", torch.tensor(0)).item())
                for key, metric in results.items()}

    original = getattr(_ResultMetric.to, "__wrapped__", _ResultMetric.to)  # an in-process run may have patched it
    monkeypatch.setattr(_ResultMetric, "to", original)  # whatever was there is back after the test
    shipped = log_some(_ResultCollection(training=True))
    assert log_fastpath.install() and log_fastpath.install()  # idempotent
    assert _ResultMetric.to is not original
    fast = _ResultCollection(training=True)
    assert log_some(fast) == shipped

    metric = fast["training_step.train/loss"]
    metric.to(torch.device("meta"))  # another device: Lightning's own move runs
    assert metric.value.device.type == "meta" and metric.cumulated_batch_size.device.type == "meta"


def test_the_log_fastpath_can_be_left_off(monkeypatch):
    from lightning.pytorch.trainer.connectors.logger_connector.result import _ResultMetric

    from aegis.training import log_fastpath

    monkeypatch.setattr(_ResultMetric, "to", getattr(_ResultMetric.to, "__wrapped__", _ResultMetric.to))
    monkeypatch.setenv("AEGIS_LOG_FASTPATH", "0")
    before = _ResultMetric.__dict__["to"]
    assert log_fastpath.install() is False and _ResultMetric.__dict__["to"] is before


def test_the_log_fastpath_leaves_lightning_alone_when_its_internals_changed(monkeypatch):
    import lightning.pytorch.trainer.connectors.logger_connector.result as result

    from aegis.training import log_fastpath

    class Renamed:  # a Lightning whose metric class no longer defines `to` itself
        pass

    monkeypatch.setattr(result, "_ResultMetric", Renamed)
    assert log_fastpath.install() is False and "to" not in vars(Renamed)
    assert log_fastpath._all_on(object(), torch.device("cpu")) is False  # an unknown layout: Lightning's move
