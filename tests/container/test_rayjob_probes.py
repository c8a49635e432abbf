"""A RayJob's Ray pods as KubeRay v1.7.0 and the kubelet treat them, with the image, in podman.

KubeRay v1.7.0 (ray-operator/controllers/ray/common/pod.go, BuildPod and
initLivenessAndReadinessProbe; utils/constant.go) rewrites the Ray container's command to
``/bin/bash -c -- 'ulimit -n ${RAY_START_ULIMIT_OPEN_FILES:-65536}; ray start ... --block'`` (a
login shell only with ENABLE_LOGIN_SHELL, off by default since v1.4) and injects the readiness
and liveness probes: for ``rayVersion`` >= 2.53.0 an HTTP GET of ``/api/healthz`` on the
dashboard agent's port (rayStartParams ``dashboard-agent-listen-port``, default 52365), head and
worker alike; otherwise ``bash -c 'wget ... | grep success'`` exec probes. Both tests below start
head and worker containers from the rendered RayJob's templates with that command.

- The probes: the one KubeRay injects for the rendered rayVersion is the HTTP one, and the
  image's head and worker answer it from the pod's address within KubeRay's probe timeout;
  the exec probe (Ray < 2.53) cannot run in the image (no wget), which is why
  ``aegis.launch.rayjob.checks`` refuses such a version.
- The pod's end: KubeRay deletes the Ray cluster on a Kueue suspension and on ``aegis cancel``;
  the kubelet runs each container's preStop hook (the rendered one, exactly), then SIGTERMs
  the container (``podman kill --signal TERM``: PID 1, which is ``ray start``, bash having
  exec'd it). The search records its trials interrupted and exits 130 before that SIGTERM,
  within the grace period; the same entrypoint on a new cluster then continues the search,
  every trial's epochs reported once, in order.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

import container_helpers as ctr
from test_container import _free_port, outputs_dir, volumes
from test_rayjob import SUBMIT, kuberay_image, render  # noqa: F401 (a module fixture)

pytestmark = [pytest.mark.container, pytest.mark.ray]

# KubeRay v1.7.0 utils/constant.go.
DEFAULT_AGENT_PORT = 52365
DEFAULT_DASHBOARD_PORT = 8265
HEALTH_PATH = "/api/healthz"
WGET = "wget --tries 1 -T %d -q -O- http://localhost:%d/%s | grep success"
HEAD_PROBE_TIMEOUT_S, WORKER_PROBE_TIMEOUT_S = 5, 2  # Default{Head,}ReadinessProbeTimeoutSeconds


def kuberay_probe(role: str, ray_version: str, params: dict[str, str]) -> dict[str, Any]:
    """The readiness (= liveness) probe KubeRay v1.7.0 injects (pod.go initLivenessAndReadinessProbe)."""
    agent = int(params.get("dashboard-agent-listen-port", DEFAULT_AGENT_PORT))
    try:
        http = tuple(int(x) for x in ray_version.split(".")[:3]) >= (2, 53, 0)
    except ValueError:  # apimachinery's ParseGeneric fails: exec probes
        http = False
    if http:
        return {"httpGet": {"path": HEALTH_PATH, "port": agent}}
    commands = [WGET % (2, agent, "api/local_raylet_healthz")]
    if role == "head":
        commands.append(WGET % (10, int(params.get("dashboard-port", DEFAULT_DASHBOARD_PORT)), "api/gcs_healthz"))
    return {"exec": {"command": ["bash", "-c", " && ".join(commands)]}}


def pod_address() -> str:
    """The address the kubelet probes: the pod's IP (the host's, on the host network)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))
            return probe.getsockname()[0]
        except OSError:
            return "127.0.0.1"


def http_probe(port: int, path: str, timeout: float) -> tuple[int, float]:
    """The kubelet's HTTP probe: success is a status in [200, 400) within the timeout."""
    import urllib.error
    import urllib.request

    started = time.monotonic()
    try:
        with urllib.request.urlopen(f"http://{pod_address()}:{port}{path}", timeout=timeout) as answer:
            return answer.status, time.monotonic() - started
    except urllib.error.HTTPError as exc:
        return exc.code, time.monotonic() - started
    except OSError:
        return 0, time.monotonic() - started


class Cluster:
    """Head and worker containers of one Ray cluster, on the host network with ports of their
    own (added to each group's rayStartParams, where KubeRay's probes read them too)."""

    def __init__(self, manifest: dict, vols: dict, tag: str):
        spec = manifest["spec"]["rayClusterSpec"]
        self.version = spec["rayVersion"]
        self.groups = {"head": spec["headGroupSpec"], "worker": spec["workerGroupSpecs"][0]}
        self.names = {role: f"aegis-rjp-{role}-{tag}" for role in self.groups}
        self.vols = vols
        gcs = _free_port()
        self.address = f"127.0.0.1:{gcs}"
        self.params: dict[str, dict[str, str]] = {}
        for role, group in self.groups.items():
            params = dict(group["rayStartParams"])
            params.update({"num-cpus": "1", "dashboard-agent-listen-port": str(_free_port()),
                           "dashboard-agent-grpc-port": str(_free_port()), "metrics-export-port": str(_free_port()),
                           "disable-usage-stats": ""})
            low = 22000 if role == "head" else 23000  # apart from test_rayjob's ranges and each other
            params.update({"min-worker-port": str(low), "max-worker-port": str(low + 999)})
            if role == "head":
                params.update({"port": str(gcs), "dashboard-host": "0.0.0.0", "dashboard-port": str(_free_port()),
                               "ray-client-server-port": str(_free_port())})
            else:
                params["address"] = self.address
            self.params[role] = params

    def start_command(self, role: str) -> str:
        """KubeRay's generated command (pod.go BuildPod/generateRayStartCommand)."""
        flags = " ".join(f"--{k}={v}" if v else f"--{k}" for k, v in self.params[role].items())
        head = " --head" if role == "head" else ""
        return f"ulimit -n ${{RAY_START_ULIMIT_OPEN_FILES:-65536}}; ray start{head} {flags} --block"

    def start(self) -> dict[str, tuple[int, float]]:
        """Head, then worker once the head's probe passes (KubeRay's wait-gcs-ready init container
        holds a worker until the head's GCS answers); each probe's last answer (status, seconds)."""
        env = {"RAY_ADDRESS": self.address, "RAY_USAGE_STATS_ENABLED": "0"}
        answers: dict[str, tuple[int, float]] = {}
        for role in ("head", "worker"):
            pod = json.loads(json.dumps(self.groups[role]["template"]["spec"]))
            container = pod["containers"][0]
            container["command"], container["args"] = ["/bin/bash", "-c", "--"], [self.start_command(role)]
            args = ctr.run_args(pod, name=self.names[role], volumes=self.vols, env=env)
            at = args.index("run") + 1
            args[at:at] = ["--hostname", self.names[role]]  # each pod its own hostname, as in a cluster
            ctr.start(args)
            answers[role] = self.wait_ready(role)
        return answers

    def exec(self, role: str, *command: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([*ctr.PODMAN, "exec", self.names[role], *command], capture_output=True, text=True,
                              timeout=timeout)

    def wait_ready(self, role: str, timeout: float = 180) -> tuple[int, float]:
        """Polls the pod's injected probe, as the kubelet does (every 5 s there), until it passes."""
        deadline = time.monotonic() + timeout
        probe = kuberay_probe(role, self.version, self.params[role])["httpGet"]
        limit = HEAD_PROBE_TIMEOUT_S if role == "head" else WORKER_PROBE_TIMEOUT_S
        while True:
            found = http_probe(probe["port"], probe["path"], limit)
            if 200 <= found[0] < 400 or time.monotonic() > deadline:
                return found
            time.sleep(1)

    def remove(self) -> None:
        for name in self.names.values():
            ctr.remove(name)


def _search(image: str, tmp_path: Path, run_id: str, *extra: str) -> dict:
    return render(image, tmp_path, "search=ray-tune", "model.lr=tag(log,interval(1e-3,1e-1))", "hydra.sweeper.plot=false",
                  "trainer=smoke", "logger=csv", "launcher.workers=1", f"run_id={run_id}", *extra)


def test_the_head_and_worker_pass_the_probes_kuberay_injects_for_the_rendered_ray_version(kuberay_image, tmp_path):
    manifest = _search(kuberay_image, tmp_path, "rjp1")
    outputs = outputs_dir(tmp_path)
    cluster = Cluster(manifest, volumes(tmp_path, outputs), uuid.uuid4().hex[:8])
    assert all("httpGet" in kuberay_probe(role, cluster.version, cluster.params[role]) for role in cluster.groups)
    try:
        answers = cluster.start()
        old = kuberay_probe("head", "2.52.0", cluster.params["head"])["exec"]["command"]
        exec_probe = cluster.exec("head", *old, timeout=60)
        logs = {role: ctr.logs(name)[-2000:] for role, name in cluster.names.items()}
    finally:
        cluster.remove()
    for role, (status, took) in answers.items():
        assert 200 <= status < 400, f"{role}: {status}\n{logs[role]}"
        assert took < (HEAD_PROBE_TIMEOUT_S if role == "head" else WORKER_PROBE_TIMEOUT_S)
    # What Ray < 2.53 would get: an exec probe the image cannot run (checks refuse such a version).
    assert exec_probe.returncode != 0 and "wget" in exec_probe.stderr, exec_probe


def _progress(sweep: Path) -> dict[str, list[int]]:
    import csv

    found = {}
    for progress in (sweep / "ray").glob("*/progress.csv"):
        with progress.open(newline="") as handle:
            found[progress.parent.name] = [int(row["epoch"]) for row in csv.DictReader(handle)]
    return found


def _summaries(sweep: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sweep.glob("[0-9]*/summary.json")}


def test_deleting_the_ray_pods_runs_the_prestop_hook_records_the_search_interrupted_and_a_rerun_continues_it(
        kuberay_image, tmp_path):
    # Enough epochs that neither node's trial can finish in the seconds between seeing both train
    # and the driver stopping them (30 smoke epochs did, under CI load: the worker's trial completed).
    epochs = 200
    # One trial's CPU on the head: the second trial must go to the worker, so both nodes train
    # (with the head's own CPUs, Ray could place both there and the worker's hook wait for nothing).
    manifest = _search(kuberay_image, tmp_path, "rjp2", "hydra.sweeper.num_samples=3", f"trainer.max_epochs={epochs}",
                       "launcher.head.num_cpus=1", "hydra.sweeper.resources.cpu=1")
    templates = manifest["spec"]["rayClusterSpec"]
    hooks = {role: group["template"]["spec"]["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
             for role, group in (("head", templates["headGroupSpec"]), ("worker", templates["workerGroupSpecs"][0]))}
    grace = templates["headGroupSpec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    outputs = outputs_dir(tmp_path)
    vols = volumes(tmp_path, outputs)
    sweep = outputs / "train" / "multiruns" / "rjp2"
    line = f"python -c {json.dumps(SUBMIT)} {manifest['spec']['entrypoint']}"
    first = Cluster(manifest, vols, uuid.uuid4().hex[:8])
    hook_runs: dict[str, tuple[float, subprocess.CompletedProcess]] = {}
    try:
        assert all(200 <= s < 400 for s, _ in first.start().values())
        driver = subprocess.Popen([*ctr.PODMAN, "exec", first.names["head"], "/bin/bash", "-c", "--", line],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 600
        # Both nodes train a trial (two at a time, one CPU each), some epochs in.
        while time.monotonic() < deadline and driver.poll() is None:
            training = {s.get("host") for s in _summaries(sweep).values()
                        if s.get("status") == "running" and (s.get("epochs_completed") or 0) >= 2}
            if training >= set(first.names.values()):
                break
            time.sleep(0.5)
        assert driver.poll() is None, (f"hosts {first.names} never all trained at once: "
                                       f"{ {k: (v.get('host'), v.get('status')) for k, v in _summaries(sweep).items()} }\n"
                                       + driver.communicate()[0][-3000:])

        def hook(role: str) -> None:  # the kubelet runs each pod's preStop at once, in parallel
            started = time.monotonic()
            done = first.exec(role, *hooks[role], timeout=grace + 10)
            hook_runs[role] = (time.monotonic() - started, done)

        threads = [threading.Thread(target=hook, args=(role,)) for role in hooks]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for name in first.names.values():  # then SIGTERM to PID 1 (ray start), as the kubelet
            subprocess.run([*ctr.PODMAN, "kill", "--signal", "TERM", name], capture_output=True)
        driver_out = driver.communicate(timeout=120)[0]
        for name in first.names.values():
            ctr.wait(name, timeout=grace)
    finally:
        first.remove()
    for role, (took, done) in hook_runs.items():
        print(f"preStop on the {role}: {took:.1f}s: {done.stdout.strip()}")
        assert done.returncode == 0 and took < grace - 5, (role, took, done.stdout, done.stderr)
    assert "1 search driver(s) signalled" in hook_runs["head"][1].stdout
    # The worker's hook waited for its trial, which the head's driver stopped: it ended interrupted.
    assert "still running: 0 driver(s), 0 trial(s)" in hook_runs["worker"][1].stdout
    on_worker = [s for s in _summaries(sweep).values() if s.get("host") == first.names["worker"]]
    assert on_worker and all(s["status"] in ("interrupted", "completed") for s in on_worker), on_worker
    assert any(s["status"] == "interrupted" for s in on_worker), on_worker
    assert driver.returncode == 130, driver_out[-4000:]  # the search's interrupted exit, not a kill
    assert "Interrupted:" in driver_out, driver_out[-4000:]
    before = _progress(sweep)
    statuses = {n: s["status"] for n, s in _summaries(sweep).items()}
    assert "interrupted" in statuses.values() and "running" not in statuses.values(), statuses
    assert (sweep / "ray" / "tuner.pkl").is_file() and not (sweep / "best.yaml").exists()
    finished_before = {n: s for n, s in _summaries(sweep).items() if s["status"] in ("completed", "stopped")}

    # Kueue resumes the RayJob (or the user resubmits it): a new cluster, the same entrypoint.
    second = Cluster(manifest, vols, uuid.uuid4().hex[:8])
    try:
        assert all(200 <= s < 400 for s, _ in second.start().values())
        again = second.exec("head", "/bin/bash", "-c", "--", line, timeout=900)
    finally:
        second.remove()
    assert again.returncode == 0, again.stdout[-4000:] + again.stderr[-4000:]
    assert "Continuing the interrupted search" in again.stdout + again.stderr
    after = _progress(sweep)
    assert len(after) == 3
    for name, reported in after.items():  # each epoch reported once, in order: nothing redone
        assert reported == list(range(1, epochs + 1)), (name, reported)
        assert reported[: len(before.get(name, []))] == before.get(name, []), name
    summaries = _summaries(sweep)
    assert {s["status"] for s in summaries.values()} == {"completed"}, summaries
    for number, record in finished_before.items():  # a trial that had ended is not run again
        assert summaries[number]["attempts"] == record["attempts"], number
    assert yaml.safe_load((sweep / "best.yaml").read_text())["run_dir"].startswith("/outputs/train/multiruns/rjp2/")
