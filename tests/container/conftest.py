"""The container tier builds the real image once per session (docker/build.sh)."""

from __future__ import annotations

import subprocess

import pytest

from container_helpers import REPO, podman_available

IMAGE = "aegis-training:0.1.0"  # what build.sh tags, and the launchers' default image


@pytest.fixture(scope="session")
def image() -> str:
    reason = podman_available()
    if reason:
        pytest.skip(reason)
    # --offline: a debootstrap base image and a local wheel directory, since no
    # registry can be pulled from here; the build itself reaches no network.
    result = subprocess.run([str(REPO / "docker" / "build.sh"), "--offline", "--engine", "podman", "--tag", IMAGE],
                            cwd=REPO, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return IMAGE
