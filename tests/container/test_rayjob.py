"""A RayJob's pods, for real: KubeRay emulated with podman.

An image built with Ray (``docker/build.sh --extras tune``); a head container and a worker
container from the rendered RayJob's head and worker templates (mounts, user, capabilities,
/dev/shm, env), started with the command KubeRay writes for them (``/bin/bash -lc -- 'ulimit -n
65536; ray start --head ...'`` and ``... ray start --address=<head>:6379 ...``, a login shell as
KubeRay's) and the env it adds (``RAY_ADDRESS``), on the host network with one outputs folder;
then the RayJob's entrypoint run on the head as KubeRay's submitter and Ray's job supervisor
run it (bash, ``ray job submit``'s ``list2cmdline``, ``sh -c``). The search must complete with
trials on both nodes and write best.yaml on the shared volume.

How the test knows a trial ran on a node: Ray writes the stdout/stderr of every worker process
to the log dir of the node it runs on (``/tmp/ray/session_latest/logs/worker-*``, each
container's own /tmp), and a trial's training logs its epochs there; both containers' logs must
have them. ``ray.nodes()`` on the head must list two live nodes as well.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

import container_helpers as ctr
from test_container import _free_port, outputs_dir, volumes

pytestmark = [pytest.mark.container, pytest.mark.ray]

TRAIN = ctr.REPO / "train.py"
# What KubeRay's submitter and Ray's job supervisor do with the entrypoint (see
# aegis.launch.rayjob.entrypoint): bash parses it, `ray job submit` re-joins the words with
# subprocess.list2cmdline, the supervisor runs that with shell=True.
SUBMIT = ("import subprocess, sys; "
          "sys.exit(subprocess.run(['/bin/sh', '-c', subprocess.list2cmdline(sys.argv[1:])]).returncode)")


@pytest.fixture(scope="module")
def ray_image(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The training image with Ray (the `tune` extra), built once for this module."""
    reason = ctr.podman_available()
    if reason:
        pytest.skip(reason)
    records = tmp_path_factory.mktemp("images") / "images.json"
    result = subprocess.run([str(ctr.REPO / "docker" / "build.sh"), "--offline", "--engine", "podman",
                             "--extras", "tune"], cwd=ctr.REPO, env={**os.environ, "AEGIS_IMAGES_FILE": str(records)},
                            capture_output=True, text=True, timeout=2400)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    [reference] = json.loads(records.read_text())
    return reference


def render(image: str, tmp_path: Path, *overrides: str) -> dict:
    env = {**os.environ, "AEGIS_OUTPUT_ROOT": str(tmp_path / "render"), "AEGIS_IMAGES_FILE": str(tmp_path / "none.json")}
    result = subprocess.run([sys.executable, str(TRAIN), *overrides, "launcher=rayjob", f"launcher.image={image}",
                             "launcher.dry_run=true"], cwd=ctr.REPO, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    [manifest] = list(yaml.safe_load_all(result.stdout))
    return manifest


def ray_start(pod: dict, name: str, start: str, vols: dict, env: dict) -> list[str]:
    """`podman run` for a Ray pod: its template's container with the command KubeRay generates."""
    pod = json.loads(json.dumps(pod))
    container = pod["containers"][0]
    container["command"] = ["/bin/bash", "-lc", "--"]
    container["args"] = [f"ulimit -n 65536; {start}"]
    return ctr.run_args(pod, name=name, volumes=vols, env=env)


def _params(group: dict) -> str:
    return " ".join(f"--{k}={v}" for k, v in group["rayStartParams"].items())


def test_the_search_runs_on_a_head_and_a_worker_and_writes_best_yaml_on_the_shared_volume(ray_image, tmp_path):
    manifest = render(ray_image, tmp_path, "search=ray-tune", "model.lr=tag(log,interval(1e-3,1e-1))",
                      "hydra.sweeper.num_samples=4", "hydra.sweeper.plot=false", "trainer=smoke", "logger=csv",
                      "launcher.workers=1", "run_id=rj1")
    spec = manifest["spec"]
    head_group, [worker_group] = spec["rayClusterSpec"]["headGroupSpec"], spec["rayClusterSpec"]["workerGroupSpecs"]
    port = _free_port()
    outputs = outputs_dir(tmp_path)
    vols = volumes(tmp_path, outputs)
    address = f"127.0.0.1:{port}"
    env = {"RAY_ADDRESS": address, "RAY_USAGE_STATS_ENABLED": "0"}
    # As KubeRay's generated command, with the ports two raylets on one host network need apart.
    head_start = (f"ray start --head --block --port={port} --num-cpus=1 --include-dashboard=false "
                  f"--min-worker-port=12000 --max-worker-port=12999 {_params(head_group)}")
    worker_start = (f"ray start --block --address={address} --num-cpus=1 --min-worker-port=13000 "
                    f"--max-worker-port=13999 {_params(worker_group)}")
    names = {"head": f"aegis-rj-head-{uuid.uuid4().hex[:8]}", "worker": f"aegis-rj-worker-{uuid.uuid4().hex[:8]}"}
    pods = {role: group["template"]["spec"] for role, group in (("head", head_group), ("worker", worker_group))}
    try:
        ctr.start(ray_start(pods["head"], names["head"], head_start, vols, env))
        ready = "import ray, time\nfor _ in range(120):\n    ray.init(address='auto')\n    n = sum(x['Alive'] for x in ray.nodes())\n    ray.shutdown()\n    if n == 2: break\n    time.sleep(1)\nprint('NODES', n)"
        ctr.start(ray_start(pods["worker"], names["worker"], worker_start, vols, env))
        nodes = subprocess.run([*ctr.PODMAN, "exec", names["head"], "python", "-c", ready], capture_output=True,
                               text=True, timeout=300)
        assert "NODES 2" in nodes.stdout, nodes.stdout[-2000:] + nodes.stderr[-2000:] + ctr.logs(names["worker"])[-2000:]
        # The entrypoint as KubeRay's submitter and Ray's job supervisor run it, on the head.
        line = f"python -c {json.dumps(SUBMIT)} {spec['entrypoint']}"
        search = subprocess.run([*ctr.PODMAN, "exec", names["head"], "/bin/bash", "-lc", "--", line],
                                capture_output=True, text=True, timeout=900)
        worker_logs = {role: subprocess.run(
            [*ctr.PODMAN, "exec", name, "/bin/bash", "-c", "cat /tmp/ray/session_latest/logs/worker-*"],
            capture_output=True, text=True).stdout for role, name in names.items()}
    finally:
        for name in names.values():
            ctr.remove(name)
    assert search.returncode == 0, search.stdout[-4000:] + search.stderr[-4000:]
    sweep = outputs / "train" / "multiruns" / "rj1"
    best = yaml.safe_load((sweep / "best.yaml").read_text())
    assert best["metric"] == "val/acc" and "model.lr" in " ".join(best["overrides"])
    assert best["run_dir"].startswith("/outputs/train/multiruns/rj1/")  # a trial's run dir, on the shared volume
    assert (outputs / Path(best["run_dir"]).relative_to("/outputs")).is_dir()
    for role, text in worker_logs.items():  # trials trained on both nodes (aegis' per-epoch line)
        assert re.search(r"epoch \d+/2 .*val/acc", text), f"no trial ran on the {role}: {text[-1500:]}"
