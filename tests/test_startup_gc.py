"""The start-up GC pause: off while starting, frozen and back on for training, once per process.

Runs in a fresh interpreter: freezing is process-wide and must not touch pytest's own.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import gc
    from aegis.training.startup_gc import StartupGCPause

    assert gc.isenabled() and gc.get_freeze_count() == 0
    with StartupGCPause() as startup:
        assert not gc.isenabled()
        imported = [[] for _ in range(1000)]   # what start-up builds
        startup.end()
        assert gc.isenabled()
        frozen = gc.get_freeze_count()
        assert frozen >= 1000, frozen
        startup.end()                                   # idempotent
    assert gc.isenabled() and gc.get_freeze_count() <= frozen  # no second freeze

    # A second run in the same process (a Ray worker's next trial) leaves the collector alone.
    with StartupGCPause() as second:
        assert gc.isenabled()
    assert gc.get_freeze_count() <= frozen

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
