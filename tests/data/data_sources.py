"""Real sources for the dataset-cache tests: digits written as PNG class folders, archives
of them, a loopback HTTP server that counts GETs (and can trickle a file slowly, for a
download killed mid-way), and a local S3-compatible server (moto's)."""

from __future__ import annotations

import hashlib
import http.server
import io
import socket
import tarfile
import threading
import time
import zipfile
from pathlib import Path
from typing import Optional

import numpy as np
from helpers import serve


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_digits_pngs(folder: Path, limit: Optional[int] = None) -> Path:
    """scikit-learn's digits as 8x8 grayscale PNGs in ``folder/digits/<label>/<i>.png``."""
    from PIL import Image
    from sklearn.datasets import load_digits

    features, labels = load_digits(return_X_y=True)
    root = folder / "digits"
    for i, (image, label) in enumerate(zip(features[:limit], labels[:limit])):
        target = root / str(label) / f"{i:04d}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.round(image.reshape(8, 8) * 255 / 16).astype(np.uint8)).save(target)
    return root


def tar_of(folder: Path, target: Path, mode: str = "w") -> Path:
    with tarfile.open(target, mode) as archive:
        archive.add(folder, arcname=folder.name)
    return target


def zip_of(folder: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w") as archive:
        for file in sorted(folder.rglob("*")):
            if file.is_file():
                archive.write(file, f"{folder.name}/{file.relative_to(folder).as_posix()}")
    return target


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CountingServer:
    """``http.server`` on 127.0.0.1 in a thread serving ``folder``; ``gets[path]`` counts GETs.
    With ``slow`` set, bodies trickle out in small chunks (a download one can kill)."""

    def __init__(self, folder: Path, port: Optional[int] = None) -> None:
        self.folder = folder
        self.gets: dict[str, int] = {}
        self.slow = False
        self.chunk = 4096  # bytes per 50 ms when slow
        self.port = port or free_port()
        self._lock = threading.Lock()
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(server.folder), **kwargs)

            def log_message(self, *args):
                pass

            def do_GET(self):
                with server._lock:
                    server.gets[self.path] = server.gets.get(self.path, 0) + 1
                if not server.slow:
                    return super().do_GET()
                body = (server.folder / self.path.lstrip("/")).read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                for start in range(0, len(body), server.chunk):
                    self.wfile.write(body[start:start + server.chunk])
                    self.wfile.flush()
                    time.sleep(0.05)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.httpd.daemon_threads = True

    def start(self) -> "CountingServer":
        serve(self.httpd)
        return self

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class LocalS3:
    """moto's standalone S3-compatible server on 127.0.0.1 (a real HTTP endpoint), with the
    AWS variables a client needs to reach it."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self.port = free_port()
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.env = {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": "testing",
                    "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}

    def start(self) -> "LocalS3":
        self.server.start()
        return self

    def upload(self, bucket: str, key: str, path: Path) -> str:
        import boto3

        client = boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id="testing",
                              aws_secret_access_key="testing", region_name="us-east-1")
        client.create_bucket(Bucket=bucket)
        client.upload_file(str(path), bucket, key)
        return f"s3://{bucket}/{key}"

    def stop(self) -> None:
        self.server.stop()


def tar_bytes(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()
