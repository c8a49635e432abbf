"""The dataset cache (aegis.data) against real sources: a loopback HTTP server, local
archives and folders, a local S3-compatible server. Each test asserts what the cache holds
afterwards, and how many times the source was read."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from aegis.data import Cache, DataSourceError, DatasetSpec, prepare
from aegis.data.cache import LOCKS as LOCKS_DIR
from aegis.data.caching import load
from data_sources import LocalS3, free_port, tar_bytes


def _nothing_cached(root) -> None:
    cache = Cache(root)
    assert cache.entries() == [] and cache.temp_dirs() == []


def _one_sentence(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text and text.endswith(".")
    return text


def test_http_source_is_fetched_once_and_a_hit_never_touches_the_network(tmp_path, server, digits_files):
    spec = DatasetSpec("image_folder", server.url("digits.tar"), digits_files["sha256"])
    entry = prepare(spec, tmp_path)
    assert server.gets == {"/digits.tar": 1}
    assert entry.meta["num_samples"] == 1797 and entry.meta["classes"] == [str(i) for i in range(10)]
    assert entry.meta["input_shape"] == [1, 8, 8] and entry.meta["sha256"] == digits_files["sha256"]
    features, labels = load(entry)
    assert features.shape == (1797, 1, 8, 8) and np.bincount(labels).min() >= 170
    server.stop()  # unreachable from here on
    again = prepare(spec, tmp_path)
    assert again.path == entry.path and server.gets == {"/digits.tar": 1}


@pytest.mark.parametrize("name", ["digits.tar", "digits.tar.gz", "digits.zip"])
def test_archives_and_folders_decode_to_the_same_arrays(tmp_path, digits_files, name):
    from sklearn.datasets import load_digits

    features, labels = load(prepare(DatasetSpec("image_folder", str(digits_files["served"] / name)), tmp_path))
    folder, folder_labels = load(prepare(DatasetSpec("image_folder", str(digits_files["tree"])), tmp_path))
    assert np.array_equal(features, folder) and np.array_equal(labels, folder_labels)
    reference, _ = load_digits(return_X_y=True)
    assert sorted(np.round(features.reshape(-1, 64) / 255 * 16).astype(int).sum(axis=1)) == sorted(
        reference.astype(int).sum(axis=1))


def test_a_checksum_mismatch_is_one_sentence_and_caches_nothing(tmp_path, server):
    spec = DatasetSpec("image_folder", server.url("digits.tar"), "0" * 64)
    with pytest.raises(DataSourceError) as exc:
        prepare(spec, tmp_path)
    text = _one_sentence(exc)
    assert text.startswith(f"data.sha256={'0' * 64} does not match data.source=") and "sha256sum" in text
    _nothing_cached(tmp_path)


def test_a_404_is_one_sentence_and_caches_nothing(tmp_path, server):
    with pytest.raises(DataSourceError) as exc:
        prepare(DatasetSpec("image_folder", server.url("nope.tar")), tmp_path)
    assert _one_sentence(exc).startswith(f"data.source={server.url('nope.tar')} does not exist")
    _nothing_cached(tmp_path)


def test_an_unreachable_host_is_one_sentence_and_caches_nothing(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/digits.tar"
    with pytest.raises(DataSourceError) as exc:
        prepare(DatasetSpec("image_folder", url), tmp_path)
    text = _one_sentence(exc)
    assert text.startswith(f"data.source={url} could not be read") and "aegis data ls" in text
    _nothing_cached(tmp_path)


def test_an_s3_source_without_s3fs_says_which_extra_to_install(tmp_path, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "s3fs" else find_spec(name, *a))
    with pytest.raises(DataSourceError) as exc:
        prepare(DatasetSpec("image_folder", "s3://datasets/digits.tar"), tmp_path)
    assert "pip install 'aegis[s3]'" in _one_sentence(exc)
    _nothing_cached(tmp_path)


def test_an_archive_without_class_folders_is_refused(tmp_path, digits_files):
    png = next(digits_files["tree"].rglob("*.png")).read_bytes()
    flat = tmp_path / "flat.tar"
    flat.write_bytes(tar_bytes({"a.png": png, "b.png": png}))
    with pytest.raises(DataSourceError) as exc:
        prepare(DatasetSpec("image_folder", str(flat)), tmp_path / "cache")
    assert "holds images only at its top level (a.png, ...): expected class folders" in _one_sentence(exc)
    empty = tmp_path / "empty.tar"
    empty.write_bytes(tar_bytes({"README.txt": b"hello"}))
    with pytest.raises(DataSourceError, match="holds no images: expected class folders"):
        prepare(DatasetSpec("image_folder", str(empty)), tmp_path / "cache")
    _nothing_cached(tmp_path / "cache")


def _fetch_in_child(url: str, root: str) -> subprocess.Popen:
    code = ("import sys; from aegis.data import prepare, DatasetSpec; "
            "prepare(DatasetSpec('image_folder', sys.argv[1]), sys.argv[2])")
    return subprocess.Popen([sys.executable, "-c", code, url, root])


def test_a_download_killed_mid_way_is_never_used_and_is_swept(tmp_path, server):
    server.slow = True  # ~4 KiB every 50 ms: the 3.7 MB tar takes ~45 s
    url = server.url("digits.tar")
    child = _fetch_in_child(url, str(tmp_path))
    cache = Cache(tmp_path)
    deadline = time.time() + 30
    while time.time() < deadline and not any(f.stat().st_size > 16384 for t in cache.temp_dirs() for f in t.iterdir()):
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    [partial] = cache.temp_dirs()
    assert cache.entries() == []  # the partial download is not an entry
    server.slow = False
    entry = prepare(DatasetSpec("image_folder", url), tmp_path)
    assert not partial.exists() and cache.temp_dirs() == []
    assert entry.meta["num_samples"] == 1797 and server.gets["/digits.tar"] == 2


def _prepare_and_report(url: str, root: str, sha: str, queue) -> None:
    entry = prepare(DatasetSpec("image_folder", url, sha), root)
    queue.put(str(entry.path))


def test_concurrent_processes_download_once(tmp_path, server, digits_files):
    server.slow, server.chunk = True, 65536  # ~3 s: the others arrive while it runs
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_prepare_and_report,
                         args=(server.url("digits.tar"), str(tmp_path), digits_files["sha256"], queue))
             for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    assert len({queue.get() for _ in procs}) == 1
    assert server.gets == {"/digits.tar": 1}


def test_arrays_from_npz_and_parquet(tmp_path):
    rng = np.random.default_rng(0)
    features = rng.normal(size=(60, 5)).astype(np.float32)
    names = np.array(["cat", "dog", "eel"])[rng.integers(0, 3, 60)]
    np.savez(tmp_path / "set.npz", x=features, y=names)
    entry = prepare(DatasetSpec("arrays", str(tmp_path / "set.npz"), options={"features_key": "x", "labels_key": "y"}),
                    tmp_path / "cache")
    got, labels = load(entry)
    assert entry.meta["classes"] == ["cat", "dog", "eel"] and entry.meta["input_shape"] == [5]
    assert np.allclose(got, features) and list(np.array(entry.meta["classes"])[labels]) == list(names)
    with pytest.raises(DataSourceError, match=r"data.features_key=features is not in .*: expected one of x, y\."):
        prepare(DatasetSpec("arrays", str(tmp_path / "set.npz"), options={"labels_key": "y"}), tmp_path / "cache")

    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    frame = pd.DataFrame({f"f{i}": features[:, i] for i in range(5)})
    frame["label"] = names
    frame.to_parquet(tmp_path / "set.parquet")
    table = prepare(DatasetSpec("arrays", str(tmp_path / "set.parquet"), options={"labels_key": "label"}),
                    tmp_path / "cache")
    parquet_features, parquet_labels = load(table)
    assert np.allclose(parquet_features, features) and np.array_equal(parquet_labels, labels)


def test_s3_source_through_a_local_s3_server(tmp_path, digits_files, monkeypatch):
    s3 = LocalS3().start()
    try:
        url = s3.upload("datasets", "digits/digits.tar", digits_files["tar"])
        for key, value in s3.env.items():
            monkeypatch.setenv(key, value)
        entry = prepare(DatasetSpec("image_folder", url, digits_files["sha256"]), tmp_path)
        assert entry.meta["num_samples"] == 1797 and entry.meta["source"] == url
        with pytest.raises(DataSourceError, match=r"data.source=s3://datasets/nope.tar does not exist"):
            prepare(DatasetSpec("image_folder", "s3://datasets/nope.tar"), tmp_path)
    finally:
        s3.stop()
    assert prepare(DatasetSpec("image_folder", url, digits_files["sha256"]), tmp_path).path == entry.path


def _aegis(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aegis", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=60)


def test_aegis_data_ls_and_rm(tmp_path, digits_files):
    root = tmp_path / "outputs"
    tar = prepare(DatasetSpec("image_folder", str(digits_files["tar"])), root / "dataset-cache")
    folder = prepare(DatasetSpec("image_folder", str(digits_files["tree"])), root / "dataset-cache")
    env = {"AEGIS_OUTPUT_ROOT": str(root), "AEGIS_DATASET_CACHE": ""}
    listed = _aegis("data", "ls", env=env)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["ENTRY", "SAMPLES", "CLASSES", "SHAPE", "SIZE", "AGE", "SHA256", "SOURCE"]
    assert {line.split()[0] for line in lines[1:]} == {tar.name, folder.name}
    assert any(digits_files["sha256"][:12] in line and str(digits_files["tar"]) in line for line in lines)

    missing = _aegis("data", "rm", "nope", env=env)
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1
    assert missing.stderr.startswith("Error: nope is not an entry of the dataset cache")
    removed = _aegis("data", "rm", tar.name, env=env)
    assert removed.returncode == 0 and removed.stdout == f"removed {tar.name}\n"
    assert [e.name for e in Cache(root / "dataset-cache").entries()] == [folder.name]
    assert _aegis("--root", str(root), "data", "rm", "--all", env={}).returncode == 0
    _nothing_cached(root / "dataset-cache")


def test_credentials_in_a_source_are_never_written(tmp_path, digits_files):
    spec = DatasetSpec("image_folder", "http://alice:s3cret@127.0.0.1:9/digits.tar")
    assert "s3cret" not in spec.shown_source and "s3cret" not in spec.entry_name
    with pytest.raises(DataSourceError) as exc:
        prepare(spec, tmp_path)
    assert "s3cret" not in str(exc.value)
    _nothing_cached(tmp_path)


def test_meta_records_source_checksum_size_and_time(tmp_path, digits_files):
    entry = prepare(DatasetSpec("image_folder", str(digits_files["tar"]), digits_files["sha256"]), tmp_path)
    meta = json.loads((entry.path / "meta.json").read_text())
    assert meta["sha256"] == digits_files["sha256"] and meta["sha256_pinned"] is True
    assert meta["size"] == digits_files["tar"].stat().st_size and time.time() - meta["fetched_at"] < 60


def test_a_full_disk_is_one_sentence_and_leaves_nothing(tmp_path, server):
    import shutil

    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a small tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        with pytest.raises(DataSourceError) as exc:  # the 3.7 MB archive does not fit in 1 MB
            prepare(DatasetSpec("image_folder", server.url("digits.tar")), disk)
        assert _one_sentence(exc).startswith(f"paths.dataset_cache={disk} ran out of space while caching data.source=")
        _nothing_cached(disk)
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def _tree(root) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("how", ["parent", "absolute", "through_an_entry", "symlinked_entry"])
def test_aegis_data_rm_never_leaves_the_cache(tmp_path, capsys, how):
    from aegis.commands import main

    cache = tmp_path / "cache"
    entry = "image_folder-x-000000000000"
    for folder in (cache / entry, cache / LOCKS_DIR / entry, cache / f".tmp-{entry}"):
        folder.mkdir(parents=True)  # anyone who can write a shared cache can make these
    (cache / entry / "meta.json").write_text("{}")
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "meta.json").write_text("{}")  # looks like an entry from the inside
    name = {"parent": "../victim", "absolute": str(victim), "through_an_entry": f"{entry}/../../victim",
            "symlinked_entry": "image_folder-victim-111111111111"}[how]
    if how == "symlinked_entry":
        (cache / name).symlink_to(victim)
    before = _tree(tmp_path)
    assert main(["data", "--cache", str(cache), "rm", name]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"of the dataset cache {cache}" in err[0] and "aegis data ls" in err[0], err
    assert _tree(tmp_path) == before  # nothing deleted, nothing written (no stray lock file)
    assert not Cache(cache).remove(name) and _tree(tmp_path) == before
    assert main(["data", "--cache", str(cache), "rm", entry]) == 0  # a real entry still goes
    assert not (cache / entry).exists() and (victim / "meta.json").is_file()
