"""Time to the first training step: the Job's container against the same run on the host.

Both run `python train.py trainer=smoke logger=none` (the container through podman with
the outputs volume mounted, as tests/container runs a rendered Job pod); the first step
is read from each run's summary.json and measured from the moment the command was
launched. Prints both and the ratio. Needs the image: `docker/build.sh --offline`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from _common import PYTHON, median, run, spread, summary_of

REPEATS = 5


def newest_build() -> str:
    """The image docker/build.sh built last (its record), unless $AEGIS_IMAGE names one."""
    if os.environ.get("AEGIS_IMAGE"):
        return os.environ["AEGIS_IMAGE"]
    from aegis.k8s.builds import newest

    found = newest()
    if found is None:
        raise SystemExit("No image: build one with docker/build.sh --offline, or set AEGIS_IMAGE=<tag>.")
    return found


IMAGE = ""  # set in main()
ARGS = ["trainer=smoke", "logger=none", "trainer.accelerator=cpu"]
PODMAN = ["podman", "--runtime", "runc"]


def host_once() -> float:
    root = Path(tempfile.mkdtemp(prefix="aegis-host-"))
    try:
        started, _ = run([PYTHON, "train.py", *ARGS], env={"AEGIS_OUTPUT_ROOT": str(root)})
        return summary_of(root)["timing"]["first_step_unix"] - started
    finally:
        shutil.rmtree(root, ignore_errors=True)


def container_once() -> float:
    root = Path(tempfile.mkdtemp(prefix="aegis-ctr-"))
    root.chmod(0o777)
    try:
        started, _ = run([*PODMAN, "run", "--rm", "--network", "host", "--ulimit", "nofile=20000:20000",
                          "--ulimit", "nproc=1000:1000", "--volume", f"{root}:/outputs",
                          "--env", "AEGIS_OUTPUT_ROOT=/outputs", IMAGE, "python", "train.py", *ARGS])
        return summary_of(root)["timing"]["first_step_unix"] - started
    finally:
        shutil.rmtree(root, ignore_errors=True)


def image_size() -> str:
    result = subprocess.run([*PODMAN, "image", "inspect", IMAGE, "--format", "{{.Size}}"],
                            capture_output=True, text=True, check=True)
    return f"{int(result.stdout.strip()) / 1e9:.2f} GB"


def main() -> None:
    global IMAGE
    IMAGE = newest_build()
    host, container = [], []
    for _ in range(REPEATS):
        host.append(host_once())
        container.append(container_once())
    print(f"time to first training step (trainer=smoke, CPU); image {IMAGE}, {image_size()}")
    print(f"  host       s {spread(host)}")
    print(f"  container  s {spread(container)}")
    print(f"  ratio container / host: {median(container) / median(host):.2f}x")


if __name__ == "__main__":
    main()
