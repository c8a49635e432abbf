"""aegis.training.hook_fastpath: Lightning's callback hooks reach the same callbacks, in the
same order and under the same hook name, without the per-callback, per-step overhead."""

from __future__ import annotations

import inspect

import pytest

torch = pytest.importorskip("torch")
L = pytest.importorskip("lightning.pytorch")

from lightning.pytorch.profilers import PassThroughProfiler, SimpleProfiler  # noqa: E402
from lightning.pytorch.trainer import call  # noqa: E402

from aegis.training import hook_fastpath  # noqa: E402


class Tiny(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Linear(4, 2)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self.net(x), y)
        self.log("train/loss", loss, on_step=True, on_epoch=True, batch_size=len(y))
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class Recorder(L.Callback):
    """Implements some per-step hooks; records the hook and the module's current hook name."""

    def __init__(self, seen: list) -> None:
        self.seen = seen

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.seen.append(("start", pl_module._current_fx_name, batch_idx))

    def on_before_backward(self, trainer, pl_module, loss):
        self.seen.append(("backward", pl_module._current_fx_name))

    def on_train_epoch_end(self, trainer, pl_module):
        self.seen.append(("epoch_end", pl_module._current_fx_name))


class Quiet(L.Callback):
    """Implements nothing per step."""


@pytest.fixture()
def shipped(monkeypatch):
    """Lightning as shipped for the test (whatever an earlier in-process run installed is put
    back afterwards)."""
    import importlib

    from lightning.pytorch.utilities import signature_utils

    for name in ("_call_callback_hooks", "_call_lightning_module_hook"):
        monkeypatch.setattr(call, name, getattr(getattr(call, name), "__wrapped__", getattr(call, name)))
    original = getattr(signature_utils.is_param_in_hook_signature, "__wrapped__",
                       signature_utils.is_param_in_hook_signature)
    monkeypatch.setattr(signature_utils, "is_param_in_hook_signature", original)
    for name in hook_fastpath._SIGNATURE_USERS:
        module = importlib.import_module(name)
        if hasattr(module, "is_param_in_hook_signature"):
            monkeypatch.setattr(module, "is_param_in_hook_signature", original)
    monkeypatch.delenv("AEGIS_HOOK_FASTPATH", raising=False)


def _fit(tmp_path, epochs: int, extra=(), profiler=None) -> list:
    seen: list = []
    data = torch.utils.data.TensorDataset(torch.randn(32, 4), torch.randint(0, 2, (32,)))
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False, default_root_dir=str(tmp_path),
                        callbacks=[Quiet(), Recorder(seen), *extra], profiler=profiler)
    trainer.fit(Tiny(), torch.utils.data.DataLoader(data, batch_size=8))
    return seen


def _count(monkeypatch, owner, name):
    calls = {"n": 0}
    original = getattr(owner, name)

    def counted(*args, **kwargs):
        calls["n"] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    return calls


def test_callbacks_see_the_same_hooks_in_the_same_order_with_the_fast_path(shipped, tmp_path):
    before = _fit(tmp_path, 2)
    assert hook_fastpath.install() and hook_fastpath.install()  # idempotent
    assert _fit(tmp_path, 2) == before
    assert ("backward", "on_before_backward") in before and len(before) == 2 * (4 + 4 + 1)


def test_per_step_hooks_no_longer_cost_a_profiler_context_per_callback_or_a_signature_read(shipped, tmp_path,
                                                                                           monkeypatch):
    profiles = _count(monkeypatch, PassThroughProfiler, "profile")
    argspecs = _count(monkeypatch, inspect, "getfullargspec")
    _fit(tmp_path, 2)  # 8 steps, Lightning as shipped
    shipped_counts = (profiles["n"], argspecs["n"])
    assert hook_fastpath.install()
    _fit(tmp_path, 2)
    fast = (profiles["n"] - shipped_counts[0], argspecs["n"] - shipped_counts[1])
    # As shipped: a profiler context per callback per hook (about a dozen hooks a step) and two
    # signature reads a step (one in the loop, one per self.log). Now: the contexts Lightning
    # opens for itself and for the callbacks that implement a hook; each signature read once.
    assert shipped_counts[0] - fast[0] >= 8 * 10, (shipped_counts, fast)
    assert shipped_counts[1] - fast[1] >= 8 + 4, (shipped_counts, fast)


def test_a_configured_profiler_still_sees_every_callback_hook(shipped, tmp_path):
    assert hook_fastpath.install()
    profiler = SimpleProfiler(dirpath=str(tmp_path), filename="profile")
    _fit(tmp_path, 1, profiler=profiler)
    assert any(name.startswith("[Callback]") and "Quiet" in name and name.endswith("on_train_batch_start")
               for name in profiler.recorded_durations)


def test_a_hook_set_on_an_instance_is_still_called(shipped, tmp_path):
    assert hook_fastpath.install()
    calls = []
    quiet = Quiet()
    quiet.on_train_batch_end = lambda trainer, module, outputs, batch, batch_idx: calls.append(batch_idx)
    _fit(tmp_path, 1, extra=[quiet])
    assert calls == [0, 1, 2, 3]


class Hooked(Tiny):
    """Overrides module hooks the fast path skips when they are ModelHooks' empty ones."""

    seen: list

    def on_after_backward(self):
        self.seen.append(("after_backward", self._current_fx_name))

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.seen.append(("batch_end", self._current_fx_name, batch_idx))


def test_module_hooks_it_overrides_are_still_called_under_their_name(shipped, tmp_path):
    assert hook_fastpath.install()
    module = Hooked()
    module.seen = []
    module.on_before_zero_grad = lambda optimizer: module.seen.append(("zero_grad",))  # on the instance
    data = torch.utils.data.TensorDataset(torch.randn(16, 4), torch.randint(0, 2, (16,)))
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False, default_root_dir=str(tmp_path))
    trainer.fit(module, torch.utils.data.DataLoader(data, batch_size=8))
    assert module.seen == [("zero_grad",), ("after_backward", "on_after_backward"), ("batch_end", "on_train_batch_end", 0),
                           ("zero_grad",), ("after_backward", "on_after_backward"), ("batch_end", "on_train_batch_end", 1)]


def test_the_hook_fastpath_can_be_left_off(shipped, monkeypatch):
    monkeypatch.setenv("AEGIS_HOOK_FASTPATH", "0")
    before = call._call_callback_hooks
    assert hook_fastpath.install() is False and call._call_callback_hooks is before


def test_the_hook_fastpath_leaves_lightning_alone_when_its_internals_changed(shipped, monkeypatch):
    monkeypatch.delattr(call, "_call_callback_hooks")
    assert hook_fastpath.install() is False and not hasattr(call, "_call_callback_hooks")
