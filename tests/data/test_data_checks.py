"""Data sources checked before anything exists, sizes bounded, HTTP errors said as what
they are, ``data.storage_options`` settable from an override, a pin that names a cached
entry a hit (issue 22, findings 6, 8, 11).

Compose-time checks run in-process through ``validate`` with the outputs root under the
test's tmp dir, which must not exist afterwards; one ``python train.py`` per kind of
refusal shows the same from the command line (exit 1, one line, nothing created).
"""

from __future__ import annotations

import http.server
import io
import struct
import tarfile
import zipfile
import zlib

import numpy as np
import pytest

from aegis.config.validation import validate
from aegis.data import Cache, DataSourceError, DatasetSpec, prepare
from aegis.errors import ConfigError
from data_sources import tar_bytes
from helpers import run_train, serve, tier_table

ENDPOINT = "http://127.0.0.1:9000"


def _one_sentence(text: str) -> str:
    assert "\n" not in text and text.endswith("."), text
    return text


def _nothing_cached(root) -> None:
    cache = Cache(root)
    assert cache.entries() == [] and cache.temp_dirs() == []


@pytest.fixture
def npz(tmp_path):
    path = tmp_path / "set.npz"
    np.savez(path, x=np.random.rand(40, 3), y=np.arange(40) % 2)
    return path


# -- finding 8: storage_options from an override ---------------------------------------------

SPELLINGS = [f"+data.storage_options={{endpoint_url: '{ENDPOINT}'}}",
             f"++data.storage_options={{endpoint_url: '{ENDPOINT}'}}",
             f"data.storage_options={{endpoint_url: '{ENDPOINT}'}}",
             f"+data.storage_options.endpoint_url={ENDPOINT}",
             f"++data.storage_options.endpoint_url={ENDPOINT}"]


@pytest.mark.parametrize("override", SPELLINGS)
def test_storage_options_are_set_from_every_spelling_of_an_override(compose, npz, tmp_path, monkeypatch, override):
    monkeypatch.setenv("AEGIS_OUTPUT_ROOT", str(tmp_path / "root"))
    cfg = compose("data=arrays", f"data.source={npz}", "data.features_key=x", "data.labels_key=y", override)
    validate(cfg)
    assert dict(cfg.data.storage_options) == {"endpoint_url": ENDPOINT}


def test_docs_storage_options_example_prints_with_cfg_job(npz, tmp_path):
    result = run_train(["data=arrays", f"data.source={npz}", SPELLINGS[0], "--cfg", "job"], tmp_path / "root")
    assert result.returncode == 0, result.stderr
    assert f"endpoint_url: {ENDPOINT}" in result.stdout and "Traceback" not in result.stderr


@pytest.mark.parametrize("value", ["abc", "[1,2]", "5"])
def test_storage_options_that_are_not_a_mapping_are_one_sentence(compose, npz, tmp_path, monkeypatch, value):
    monkeypatch.setenv("AEGIS_OUTPUT_ROOT", str(tmp_path / "root"))
    cfg = compose("data=arrays", f"data.source={npz}", f"data.storage_options={value}")
    with pytest.raises(ConfigError) as info:
        validate(cfg)
    assert "data.storage_options=" in str(info.value) and "expected null or a mapping" in str(info.value)


# -- finding 11: sources checked at compose time ---------------------------------------------

@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    """Sources of every kind of mistake, made once."""
    root = tmp_path_factory.mktemp("bad")
    (root / "flat").mkdir()
    (root / "flat" / "a.png").write_bytes(b"x")
    (root / "empty").mkdir()
    (root / "text.bin").write_bytes(b"hello, not data")
    np.savez(root / "keys.npz", a=np.zeros((4, 2)), b=np.zeros(4))
    with zipfile.ZipFile(root / "loose.zip", "w") as archive:
        archive.writestr("a.png", b"x")
    return root


BAD_SOURCES = [
    (["data=arrays", "data.source={bad}/nope.npz"], "does not exist"),
    (["data=arrays", "data.source=http//files.example.com/set.npz"], "looks like a http URL without its '://'"),
    (["data=arrays", "data.source=https:/files.example.com/set.npz"], "looks like a https URL"),
    (["data=arrays", "data.source=https:///set.npz"], "has no host"),
    (["data=arrays", "data.source=s3:///set.npz"], "has no bucket"),
    (["data=arrays", "data.source=https://files.example.com"], "names no file on files.example.com"),
    (["data=image_folder", "data.source={bad}/flat"], "holds images only at its top level"),
    (["data=image_folder", "data.source={bad}/empty"], "holds no images"),
    (["data=image_folder", "data.source={bad}/loose.zip"], "holds images only at its top level"),
    (["data=arrays", "data.source={bad}/keys.npz"], "data.features_key=features is not in"),
    (["data=arrays", "data.source={bad}/keys.npz", "data.features_key=a"], "data.labels_key=labels"),
    (["data=arrays", "data.source={bad}/text.bin"], "is neither an .npz nor a Parquet file"),
    (["data=image_folder", "data.source={bad}/text.bin"], "is neither a folder nor a .tar"),
    (["data=arrays", "data.source={bad}/empty"], "is a folder"),
    (["data=image_folder", "data.source=/"], "is the root of the filesystem"),
    (["data=image_folder", "data.source=/proc"], "under /proc"),
    (["data=arrays", "data.source={bad}/keys.npz", "data.max_bytes=100"], "more than data.max_bytes=100 (100 bytes)"),
    (["data=arrays", "data.source=s3:/bucket/set.npz"], "expected s3://<bucket>/<path>"),
    (["data=arrays", "data.source=https://files.example.com:abc/set.npz"], "has a port that is not a number"),
]


@pytest.mark.parametrize("overrides,expected", BAD_SOURCES, ids=[o[-1] for o, _ in BAD_SOURCES])
def test_bad_sources_are_one_sentence_at_compose_time_and_nothing_is_created(compose, bad, tmp_path, monkeypatch,
                                                                            overrides, expected):
    root = tmp_path / "root"
    monkeypatch.setenv("AEGIS_OUTPUT_ROOT", str(root))
    cfg = compose(*(o.format(bad=bad) for o in overrides))
    with pytest.raises(ConfigError) as info:
        validate(cfg)
    text = _one_sentence(str(info.value))
    assert expected in text and "data." in text, text
    assert not root.exists()


def test_a_cluster_run_does_not_look_for_a_local_path_here(compose, tmp_path, monkeypatch):
    """A pod reads its own filesystem: /mnt/data/set.npz need not exist on this machine."""
    monkeypatch.setenv("AEGIS_OUTPUT_ROOT", str(tmp_path / "root"))
    cfg = compose("data=arrays", "data.source=/mnt/data/set.npz", "launcher=k8s-job",
                  "launcher.image=registry.example.com/aegis:0.1.0")
    validate(cfg)


def test_good_sources_pass_the_compose_time_checks(compose, tmp_path, monkeypatch, digits_files, npz):
    monkeypatch.setenv("AEGIS_OUTPUT_ROOT", str(tmp_path / "root"))
    for overrides in (["data=image_folder", f"data.source={digits_files['tree']}"],
                      ["data=image_folder", f"data.source={digits_files['served'] / 'digits.zip'}"],
                      ["data=image_folder", f"data.source=file://{digits_files['served'] / 'digits.tar.gz'}"],
                      ["data=arrays", f"data.source={npz}", "data.features_key=x", "data.labels_key=y"],
                      ["data=arrays", "data.source=https://files.example.com/x/set.npz"],
                      ["data=arrays", "data.source=s3://bucket/set.npz"]):
        validate(compose(*overrides))


# Both sentences are checked in-process in the table above; one goes through python train.py here.
@pytest.mark.parametrize("source,expected", tier_table([("{tmp}/nope.npz", "does not exist"),
                                                        ("http//host/set.npz", "without its '://'")], default=[0]))
def test_train_py_refuses_a_bad_source_before_any_run_dir_lock_or_store(tmp_path, source, expected):
    root = tmp_path / "root"
    result = run_train(["data=arrays", f"data.source={source.format(tmp=tmp_path)}"], root, timeout=60)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: data.source=") and expected in lines[0], result.stderr
    assert not root.exists()  # no run dir, no dataset-cache lock, no mlflow.db


# -- HTTP errors said as what they are ---------------------------------------------------------

class _Status:
    """A loopback server answering every request with one status."""

    def __init__(self, status: int) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self):
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_HEAD = _answer

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        serve(self.httpd)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize("status,expected", [(500, "answered a server error (HTTP 500 Internal Server Error)"),
                                             (503, "HTTP 503"), (403, "answered a refusal (HTTP 403 Forbidden)")])
def test_an_http_error_is_reported_as_itself_not_as_not_found(tmp_path, status, expected):
    server = _Status(status)
    try:
        with pytest.raises(DataSourceError) as info:
            prepare(DatasetSpec("arrays", server.url("set.npz")), tmp_path)
    finally:
        server.stop()
    text = _one_sentence(str(info.value))
    assert expected in text and "does not exist" not in text and "not found" not in text
    _nothing_cached(tmp_path)


# -- pinning after an unpinned fetch is a hit ----------------------------------------------------

def test_pinning_the_logged_sha256_is_a_cache_hit(tmp_path, server, digits_files, caplog):
    unpinned = prepare(DatasetSpec("image_folder", server.url("digits.tar")), tmp_path)
    assert server.gets == {"/digits.tar": 1} and unpinned.meta["sha256"] == digits_files["sha256"]
    server.stop()  # the pinned run must not need the network
    pinned = prepare(DatasetSpec("image_folder", server.url("digits.tar"), digits_files["sha256"]), tmp_path)
    assert pinned.path == unpinned.path and server.gets == {"/digits.tar": 1}


def test_a_pin_that_differs_from_the_cached_sha256_is_not_a_hit(tmp_path, server, digits_files):
    prepare(DatasetSpec("image_folder", server.url("digits.tar")), tmp_path)
    server.stop()
    with pytest.raises(DataSourceError):  # fetched again (and the server is gone): never the other entry
        prepare(DatasetSpec("image_folder", server.url("digits.tar"), "1" * 64), tmp_path)


# -- finding 6: size bounds, decoder errors one sentence ---------------------------------------

def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels (no pixel data: never allocated)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))


def _targz(path, files):
    with tarfile.open(path, "w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_a_member_larger_than_max_bytes_is_refused_from_its_header(tmp_path):
    source = _targz(tmp_path / "big.tar.gz", {"a/1.png": b"\x00" * 50_000, "b/1.png": b"\x00" * 10})
    with pytest.raises(DataSourceError) as info:
        prepare(DatasetSpec("image_folder", str(source), max_bytes=20_000), tmp_path / "cache")
    text = _one_sentence(str(info.value))
    assert "holds images of 50.0 KB, more than data.max_bytes=20000" in text
    _nothing_cached(tmp_path / "cache")


def test_an_image_member_over_the_image_bound_is_never_read_whole(tmp_path, monkeypatch):
    from aegis.data import bounds

    monkeypatch.setattr(bounds, "MAX_IMAGE_BYTES", 4096)  # 256 MiB in use: the same path, a smaller file
    source = _targz(tmp_path / "one.tar.gz", {"a/1.png": b"\x00" * 10_000, "b/1.png": b"\x00" * 10})
    with pytest.raises(DataSourceError) as info:
        prepare(DatasetSpec("image_folder", str(source)), tmp_path / "cache")
    assert "holds a/1.png, a member of 10.0 KB, more than the 4.1 KB an image file may hold" in str(info.value)


def test_a_download_larger_than_max_bytes_is_refused_before_it_is_fetched(tmp_path, server, digits_files):
    size = (digits_files["served"] / "digits.tar").stat().st_size
    with pytest.raises(DataSourceError) as info:
        prepare(DatasetSpec("image_folder", server.url("digits.tar"), max_bytes=size - 1), tmp_path)
    assert f"more than data.max_bytes={size - 1}" in _one_sentence(str(info.value))
    assert server.gets == {}  # refused from its size: no GET
    _nothing_cached(tmp_path)


def test_a_local_file_larger_than_max_bytes_is_refused(tmp_path, npz):
    with pytest.raises(DataSourceError) as info:
        prepare(DatasetSpec("arrays", str(npz), max_bytes=100), tmp_path / "cache")
    assert "is " in str(info.value) and "more than data.max_bytes=100" in _one_sentence(str(info.value))


def test_an_npz_that_inflates_past_max_bytes_is_refused_before_loading(tmp_path):
    source = tmp_path / "zeros.npz"
    np.savez_compressed(source, features=np.zeros((2000, 100)), labels=np.arange(2000) % 2)
    assert source.stat().st_size < 50_000  # compressed: the file passes, its arrays do not
    with pytest.raises(DataSourceError) as info:
        prepare(DatasetSpec("arrays", str(source), max_bytes=200_000), tmp_path / "cache")
    assert "holds arrays of 1.6 MB, more than data.max_bytes=200000" in _one_sentence(str(info.value))


def test_a_decompression_bomb_png_is_one_sentence(tmp_path):
    source = tmp_path / "bomb.tar"
    source.write_bytes(tar_bytes({"a/bomb.png": _png_header(30000, 30000), "b/ok.png": _png_header(8, 8)}))
    with pytest.raises(DataSourceError) as info:
        prepare(DatasetSpec("image_folder", str(source)), tmp_path / "cache")
    text = _one_sentence(str(info.value))
    assert "holds a/bomb.png, an image of" in text and "pixels an image may have" in text


def test_a_large_png_below_pillows_limit_is_refused_before_its_pixels_are_allocated(tmp_path):
    source = tmp_path / "large.tar"
    source.write_bytes(tar_bytes({"a/big.png": _png_header(9000, 9000), "b/ok.png": _png_header(8, 8)}))
    with pytest.raises(DataSourceError) as info:
        prepare(DatasetSpec("image_folder", str(source)), tmp_path / "cache")
    assert "holds a/big.png, an image of 9000x9000 pixels" in _one_sentence(str(info.value))


def test_an_object_dtype_npz_is_one_sentence(tmp_path):
    source = tmp_path / "objects.npz"
    np.savez(source, features=np.array([{"a": 1}] * 4, dtype=object), labels=np.arange(4) % 2)
    with pytest.raises(DataSourceError) as info:
        prepare(DatasetSpec("arrays", str(source)), tmp_path / "cache")
    assert "holds Python objects, which are never unpickled" in _one_sentence(str(info.value))
    _nothing_cached(tmp_path / "cache")


def test_max_bytes_is_a_config_key_with_its_default(compose, tmp_path, monkeypatch, npz):
    monkeypatch.setenv("AEGIS_OUTPUT_ROOT", str(tmp_path / "root"))
    cfg = compose("data=arrays", f"data.source={npz}", "data.features_key=x", "data.labels_key=y")
    assert cfg.data.max_bytes == 20 * 10**9
    with pytest.raises(ConfigError, match=r"data.max_bytes=0 is invalid"):
        validate(compose("data=arrays", f"data.source={npz}", "data.max_bytes=0"))
