"""The start-up GC pause: no collections while starting, start-up's objects frozen out of
later collections, the collector back on when training starts, once per process.

The unit test runs in a fresh interpreter (it needs a process whose pause has not been
used yet); the training test checks the wiring inside a real ``train`` call here.
"""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import gc, weakref
    from aegis.training.startup_gc import StartupGCPause

    class Node:
        pass

    def garbage_cycle():
        a, b = Node(), Node()
        a.other, b.other = b, a
        return weakref.ref(a)

    def allocate():  # far past the collector's thresholds: it runs if it is enabled
        keep = [[] for _ in range(50_000)]
        del keep

    def scanned(obj):  # in a generation that collections walk
        return any(o is obj for o in gc.get_objects())

    assert gc.isenabled()
    with StartupGCPause() as startup:
        assert not gc.isenabled()
        early = garbage_cycle()
        allocate()
        assert early() is not None, "a collection ran during start-up"
        kept = Node()  # what start-up builds and keeps (modules, the model...)
        assert scanned(kept)
        startup.end()

        # Training: the collector is back on, start-up's objects are out of its reach.
        assert gc.isenabled()
        assert not scanned(kept)
        gc.collect()
        assert early() is not None, "start-up's garbage is frozen (the documented price)"
        late = garbage_cycle()
        allocate()
        assert late() is None, "no automatic collection after start-up"

        between = Node()
        between_garbage = garbage_cycle()
        startup.end()  # idempotent: nothing more is frozen
        assert scanned(between)
        gc.collect()
        assert between_garbage() is None
    assert gc.isenabled()

    # A second run in the same process (a Ray worker's next trial) leaves the collector alone.
    with StartupGCPause() as second:
        assert gc.isenabled()
        second_garbage = garbage_cycle()
        second.end()
    gc.collect()
    assert second_garbage() is None, "a second run froze its garbage"

    # A start-up that fails still gives the collector back.
    import aegis.training.startup_gc as module
    module._done_in_this_process = False
    try:
        with StartupGCPause():
            assert not gc.isenabled()
            raise RuntimeError("bad config")
    except RuntimeError:
        pass
    assert gc.isenabled()

    # A process that had turned the collector off itself keeps it off.
    module._done_in_this_process = False
    gc.disable()
    with StartupGCPause() as startup:
        startup.end()
    assert not gc.isenabled()
    print("ok")
""")


def test_startup_gc_pause_lifecycle():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_training_starts_with_the_collector_paused_and_trains_with_it_on(compose, tmp_path, monkeypatch):
    pytest.importorskip("lightning")
    import lightning.pytorch as L

    import aegis.training.startup_gc as startup_gc
    from aegis.launch.base import RunContext
    from aegis.training.run import train

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setattr(startup_gc, "_done_in_this_process", False)  # as in a fresh process
    if not gc.isenabled():
        pytest.skip("the collector is off in this process")

    seen: dict[str, object] = {}

    class Watch(L.Callback):  # after Aegis's own callbacks
        def setup(self, trainer, pl_module, stage):
            if stage == "fit":  # (trainer.test sets up again, long after start-up)
                seen["setup"] = gc.isenabled()

        def on_train_start(self, trainer, pl_module):
            seen["train start"] = gc.isenabled()
            seen["model scanned"] = any(o is pl_module for o in gc.get_objects())

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen.setdefault("first batch", gc.isenabled())

    cfg = compose(f"paths.root={tmp_path}", "progress=none", "trainer=smoke", "trainer.max_epochs=1", "logger=none")
    ctx = RunContext(run_dir=tmp_path / "run", run_id="run", task_overrides=(), config_name="train")
    outcome = train(cfg, ctx, callbacks=[Watch()])
    assert outcome.exit_code == 0
    assert seen == {"setup": False, "train start": True, "model scanned": False, "first batch": True}
    assert gc.isenabled()
