"""The container tier builds the real image once per session (docker/build.sh)."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from container_helpers import REPO, podman_available


@dataclass(frozen=True)
class Build:
    reference: str  # what build.sh tagged (localhost/aegis-training:<version>-<sha>[-dirty])
    output: str  # what it printed
    records: Path  # the images file it recorded the build in


@pytest.fixture(scope="session")
def image_build(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Build]:
    reason = podman_available()
    if reason:
        pytest.skip(reason)
    # The build is recorded in a file of the session's own, never the user's cache; the
    # renders below read the same file, as the launchers on the user's machine would.
    records = tmp_path_factory.mktemp("images") / "images.json"
    # --offline: a debootstrap base image and a local wheel directory, since no
    # registry can be pulled from here; the build itself reaches no network.
    result = subprocess.run([str(REPO / "docker" / "build.sh"), "--offline", "--engine", "podman"],
                            cwd=REPO, env={**os.environ, "AEGIS_IMAGES_FILE": str(records)},
                            capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    [reference] = json.loads(records.read_text())  # the one tag this build made
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AEGIS_IMAGES_FILE", str(records))
        yield Build(reference=reference, output=result.stdout, records=records)


@pytest.fixture(scope="session")
def image(image_build: Build) -> str:
    """The reference build.sh tagged: a localhost/ name, which podman resolves and the
    launchers accept (kind/minikube style), passed to every render as launcher.image."""
    return image_build.reference
