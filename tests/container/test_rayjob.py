"""A RayJob's pods, for real: KubeRay emulated with podman.

An image built with Ray (``docker/build.sh --extras tune``); a head container and a worker
container from the rendered RayJob's head and worker templates (mounts, user, capabilities,
/dev/shm, env), started with the command KubeRay writes for them (``/bin/bash -c -- 'ulimit -n
65536; ray start --head ...'`` and ``... ray start --address=<head>:6379 ...``: KubeRay v1.7.0's
utils.GetContainerCommand, a login shell only where the operator sets ENABLE_LOGIN_SHELL) and the
env it adds (``RAY_ADDRESS``), on the host network with one outputs folder;
then the RayJob's entrypoint run on the head as KubeRay's submitter and Ray's job supervisor
run it (bash, ``ray job submit``'s ``shlex.join``, ``sh -c``). The search must complete with
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
from typing import Iterator

import pytest
import yaml

import container_helpers as ctr
from test_container import _free_port, outputs_dir, volumes

pytestmark = [pytest.mark.container, pytest.mark.ray]

TRAIN = ctr.REPO / "train.py"
# What KubeRay's submitter and Ray's job supervisor do with the entrypoint (see
# aegis.launch.rayjob.entrypoint): bash parses it, `ray job submit` re-joins the words with
# shlex.join (Ray 2.60 on POSIX), the supervisor runs that with shell=True.
SUBMIT = ("import shlex, subprocess, sys; "
          "sys.exit(subprocess.run(['/bin/sh', '-c', shlex.join(sys.argv[1:])]).returncode)")


def _build(tmp_path_factory: pytest.TempPathFactory, extras: str) -> Iterator[str]:
    """build.sh with ``extras``, under a tag of this test's own: the default tag names a commit
    (plus -dirty), which another build of the same tree with other extras would take over."""
    reason = ctr.podman_available()
    if reason:
        pytest.skip(reason)
    records = tmp_path_factory.mktemp("images") / "images.json"
    tag = f"localhost/aegis-training-test:{extras.replace(',', '-')}-{uuid.uuid4().hex[:8]}"
    result = subprocess.run([str(ctr.REPO / "docker" / "build.sh"), "--offline", "--engine", "podman",
                             "--extras", extras, "--tag", tag], cwd=ctr.REPO,
                            env={**os.environ, "AEGIS_IMAGES_FILE": str(records)},
                            capture_output=True, text=True, timeout=2400)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    [reference] = json.loads(records.read_text())
    yield reference
    subprocess.run([*ctr.PODMAN, "rmi", tag], capture_output=True)  # the name only: the layers stay cached


@pytest.fixture(scope="module")
def ray_image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The training image with Ray (the `tune` extra), built once for this module."""
    yield from _build(tmp_path_factory, "tune")


@pytest.fixture(scope="module")
def kuberay_image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The image a RayJob in K8sJobMode needs: Ray Tune and Ray's dashboard (job server)."""
    yield from _build(tmp_path_factory, "tune,kuberay")


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
    container["command"] = ["/bin/bash", "-c", "--"]
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
        search = subprocess.run([*ctr.PODMAN, "exec", names["head"], "/bin/bash", "-c", "--", line],
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


def test_kuberays_submitter_submits_the_entrypoint_to_the_heads_job_server(kuberay_image, tmp_path):
    """K8sJobMode end to end: the head runs Ray's dashboard; a third container from the rendered
    submitterPodTemplate runs the command KubeRay v1.7 gives the submitter (``ray job status ||
    ray job submit --no-wait ... -- <entrypoint>; ray job logs --follow``); Ray's job supervisor
    starts the entrypoint on the head, in the directory ``ray start`` ran in (the image's WORKDIR)."""
    manifest = render(kuberay_image, tmp_path, "search=ray-tune", "model.lr=tag(log,interval(1e-3,1e-1))",
                      "hydra.sweeper.num_samples=2", "hydra.sweeper.plot=false", "trainer=smoke", "logger=csv",
                      "launcher.workers=1", "run_id=rj2")
    spec = manifest["spec"]
    head_group, [worker_group] = spec["rayClusterSpec"]["headGroupSpec"], spec["rayClusterSpec"]["workerGroupSpecs"]
    port, dashboard = _free_port(), _free_port()
    agents = {role: (_free_port(), _free_port(), _free_port()) for role in ("head", "worker")}
    outputs = outputs_dir(tmp_path)
    vols = volumes(tmp_path, outputs)
    address, url = f"127.0.0.1:{port}", f"http://127.0.0.1:{dashboard}"
    env = {"RAY_ADDRESS": address, "RAY_USAGE_STATS_ENABLED": "0"}

    def ports(role: str) -> str:
        listen, grpc, metrics = agents[role]
        return (f"--dashboard-agent-listen-port={listen} --dashboard-agent-grpc-port={grpc} "
                f"--metrics-export-port={metrics}")

    head_start = (f"ray start --head --block --port={port} --num-cpus=1 --dashboard-host=127.0.0.1 "
                  f"--dashboard-port={dashboard} {ports('head')} --min-worker-port=14000 --max-worker-port=14999 "
                  f"{_params(head_group)}")
    worker_start = (f"ray start --block --address={address} --num-cpus=1 {ports('worker')} "
                    f"--min-worker-port=15000 --max-worker-port=15999 {_params(worker_group)}")
    job_id = "rayjob-rj2-abcde"
    submit = (f"if ! ray job status --address {url} {job_id} >/dev/null 2>&1 ; then ray job submit --address {url} "
              f"--no-wait --submission-id {job_id} -- {spec['entrypoint']} ; fi ; "
              f"ray job logs --address {url} --follow {job_id}")
    submitter = json.loads(json.dumps(spec["submitterPodTemplate"]["spec"]))
    submitter["containers"][0].update(command=["/bin/bash", "-ce", "--"], args=[submit])  # common/job.go
    tag = uuid.uuid4().hex[:8]
    names = {"head": f"aegis-rj-head-{tag}", "worker": f"aegis-rj-worker-{tag}", "submitter": f"aegis-rj-submit-{tag}"}
    pods = {role: group["template"]["spec"] for role, group in (("head", head_group), ("worker", worker_group))}
    try:
        ctr.start(ray_start(pods["head"], names["head"], head_start, vols, env))
        ctr.start(ray_start(pods["worker"], names["worker"], worker_start, vols, env))
        healthy = ("import time, urllib.request\nfor _ in range(180):\n    try:\n        urllib.request.urlopen("
                   f"'{url}/api/gcs_healthz', timeout=2); print('HEALTHY'); break\n    except Exception: "
                   "time.sleep(1)")
        probe = subprocess.run([*ctr.PODMAN, "exec", names["head"], "python", "-c", healthy], capture_output=True,
                               text=True, timeout=300)
        assert "HEALTHY" in probe.stdout, probe.stderr[-2000:] + ctr.logs(names["head"])[-3000:]
        ctr.start(ctr.run_args(submitter, name=names["submitter"], volumes=vols))
        code = ctr.wait(names["submitter"], timeout=900)
        submitted = ctr.logs(names["submitter"])
        status = subprocess.run([*ctr.PODMAN, "exec", names["head"], "ray", "job", "status", "--address", url, job_id],
                                capture_output=True, text=True, timeout=60)
    finally:
        for name in names.values():
            ctr.remove(name)
    assert code == 0, submitted[-4000:]
    assert f"Job '{job_id}' succeeded" in status.stdout + status.stderr, status.stdout[-2000:] + submitted[-4000:]
    best = yaml.safe_load((outputs / "train" / "multiruns" / "rj2" / "best.yaml").read_text())
    assert best["run_dir"].startswith("/outputs/train/multiruns/rj2/")
    assert "Best trial" in submitted  # the submitter's log is the search's progress
