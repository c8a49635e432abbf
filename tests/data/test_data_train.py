"""``python train.py data=image_folder`` end to end: sources over HTTP and S3, fetched once
by processes started together, trained to the accuracy of ``data=digits``, then trained
again from the cache with the source gone. Checks that run at validation never fetch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from aegis.data import Cache
from data_sources import LocalS3
from helpers import REPO, TRAIN, run_dirs, summary


def _start(args, root, cache, env=None):
    full_env = {**os.environ, "AEGIS_OUTPUT_ROOT": str(root), "AEGIS_DATASET_CACHE": str(cache),
                "PYTHONUNBUFFERED": "1", **(env or {})}
    full_env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.Popen([sys.executable, str(TRAIN), *args, "logger=none"], cwd=REPO, env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(proc, timeout=600):
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def _test_acc(root):
    [run] = run_dirs(root)
    return summary(run)["metrics"]["test/acc"]


def test_validation_never_fetches(compose, tmp_path):
    from aegis.config.validation import problems

    cfg = compose("data=image_folder", "data.source=http://127.0.0.1:9/never.tar", "model=cnn",
                  f"paths.dataset_cache={tmp_path / 'cache'}")
    assert problems(cfg).sentences == []
    assert cfg.model.num_classes is None and cfg.model.input_shape is None  # left to the data
    assert not (tmp_path / "cache").exists()


@pytest.mark.slow  # a python train.py run (~5 s of CPU); tests/data/test_data_cache.py checks the sentence and the empty cache in-process
def test_a_bad_source_fails_the_run_in_one_sentence_and_caches_nothing(tmp_path):
    code, out = _finish(_start(["data=image_folder", "data.source=http://127.0.0.1:9/digits.tar"],
                               tmp_path / "out", tmp_path / "cache"))
    assert code == 1
    [line] = [line for line in out.splitlines() if "ERROR" in line]
    assert "Run failed: data.source=http://127.0.0.1:9/digits.tar could not be read" in line
    assert Cache(tmp_path / "cache").entries() == [] and Cache(tmp_path / "cache").temp_dirs() == []
    [run] = run_dirs(tmp_path / "out")
    assert summary(run)["status"] == "failed"


@pytest.mark.slow
def test_four_runs_started_together_download_once_and_train_like_digits(tmp_path, server, digits_files):
    server.slow, server.chunk = True, 65536  # ~3 s download: all four are up before it ends
    url, sha = server.url("digits.tar"), digits_files["sha256"]
    cache = tmp_path / "cache"
    procs = [_start(["data=image_folder", f"data.source={url}", f"data.sha256={sha}"], tmp_path / f"r{i}", cache)
             for i in range(4)]
    results = [_finish(p) for p in procs]
    assert [code for code, _ in results] == [0, 0, 0, 0], results[0][1][-3000:]
    assert server.gets == {"/digits.tar": 1}
    accs = [_test_acc(tmp_path / f"r{i}") for i in range(4)]
    assert len(set(accs)) == 1 and accs[0] >= 0.95  # same data, same seed: the same run four times
    [run] = run_dirs(tmp_path / "r0")
    resolved = (run / "config.yaml").read_text()
    assert "num_classes: 10" in resolved and "- 8" in resolved  # the data's facts, recorded

    code, out = _finish(_start(["data=digits"], tmp_path / "digits", cache))
    assert code == 0, out[-3000:]
    assert abs(_test_acc(tmp_path / "digits") - accs[0]) <= 0.02

    server.stop()  # the source is gone: the cache alone serves the next run
    code, out = _finish(_start(["data=image_folder", f"data.source={url}", f"data.sha256={sha}"],
                               tmp_path / "offline", cache))
    assert code == 0, out[-3000:]
    assert _test_acc(tmp_path / "offline") == accs[0]
    (tmp_path / "figures.json").write_text(json.dumps({"gets": server.gets, "test_acc": accs}))


@pytest.mark.slow
def test_training_from_s3_on_a_local_s3_server(tmp_path, digits_files):
    s3 = LocalS3().start()
    try:
        url = s3.upload("datasets", "digits.tar", digits_files["tar"])
        started = time.time()
        code, out = _finish(_start(["data=image_folder", f"data.source={url}", f"data.sha256={digits_files['sha256']}",
                                    "model=cnn", "trainer.max_epochs=10"], tmp_path / "out", tmp_path / "cache",
                                   env=s3.env))
        assert code == 0, out[-3000:]
        assert _test_acc(tmp_path / "out") >= 0.95, time.time() - started
        [entry] = Cache(tmp_path / "cache").entries()
        assert entry.meta["source"] == url and entry.meta["sha256"] == digits_files["sha256"]
    finally:
        s3.stop()


@pytest.mark.slow  # a python train.py training run (~6 s of CPU)
def test_arrays_train_with_classes_and_shape_from_the_data(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 300)
    features = rng.normal(size=(300, 6)) + labels[:, None] * 2.0
    np.savez(tmp_path / "set.npz", x=features, y=np.array(["a", "b", "c"])[labels])
    code, out = _finish(_start(["data=arrays", f"data.source={tmp_path / 'set.npz'}", "data.features_key=x",
                                "data.labels_key=y", "trainer=smoke"], tmp_path / "out", tmp_path / "cache"))
    assert code == 0, out[-3000:]
    [run] = run_dirs(tmp_path / "out")
    from omegaconf import OmegaConf

    resolved = OmegaConf.load(run / "config.yaml")
    assert resolved.data.num_classes == resolved.model.num_classes == 3
    assert list(resolved.data.input_shape) == list(resolved.model.input_shape) == [6]


def test_a_source_too_small_to_split_by_class_fails_the_run_in_one_sentence(compose, tmp_path):
    """In this process: the run's record; the ``python train.py`` version below (slow) also
    checks that the console shows the sentence and no traceback."""
    pytest.importorskip("lightning")
    import numpy as np

    from aegis.launch.base import RunContext
    from aegis.training.run import train

    np.savez(tmp_path / "set.npz", x=np.zeros((10, 4), np.float32), y=np.arange(10) % 2)
    cfg = compose(f"paths.root={tmp_path / 'out'}", f"paths.dataset_cache={tmp_path / 'cache'}", "data=arrays",
                  f"data.source={tmp_path / 'set.npz'}", "data.features_key=x", "data.labels_key=y", "trainer=smoke",
                  "logger=none", "progress=none")
    run_dir = tmp_path / "out" / "run"
    outcome = train(cfg, RunContext(run_dir=run_dir, run_id=run_dir.name, task_overrides=(), config_name="train"))
    assert outcome.exit_code == 1
    record = summary(run_dir)
    assert record["status"] == "failed"
    assert record["cause"].startswith(
        f"data.source={tmp_path / 'set.npz'} (10 samples, 2 classes, the smallest with 5) cannot be split by class "
        "into train, val (data.val_fraction=0.1) and test (data.test_fraction=0.2): "), record["cause"]


@pytest.mark.slow  # a python train.py run (~5 s of CPU); the run's record is checked in-process just above
def test_a_source_too_small_to_split_by_class_is_one_sentence_not_a_traceback(tmp_path):
    """Its size is known only once it is read (after validation): scikit-learn's stratified
    split refused 10 rows of 2 classes with a ValueError traceback before."""
    import numpy as np

    np.savez(tmp_path / "set.npz", x=np.zeros((10, 4), np.float32), y=np.arange(10) % 2)
    code, out = _finish(_start(["data=arrays", f"data.source={tmp_path / 'set.npz'}", "data.features_key=x",
                                "data.labels_key=y", "trainer=smoke"], tmp_path / "out", tmp_path / "cache"))
    assert code == 1, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    [line] = [line for line in out.splitlines() if "Run failed:" in line]
    assert (f"Run failed: data.source={tmp_path / 'set.npz'} (10 samples, 2 classes, the smallest with 5) cannot be "
            "split by class into train, val (data.val_fraction=0.1) and test (data.test_fraction=0.2): ") in line, line
    [run] = run_dirs(tmp_path / "out")
    assert summary(run)["status"] == "failed"
