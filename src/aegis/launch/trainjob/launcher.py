"""The TrainJob launcher: the shared Kubernetes lifecycle (``aegis.launch.kubernetes``) with its
renderer and validator, and the runtime the TrainJob names: Aegis's own (``aegis-torch``) is
rendered from the same config, checked, written beside the TrainJob and named, with how to apply
it, before anything is submitted."""

from __future__ import annotations

import sys
from typing import Any, Optional

from omegaconf import DictConfig

from aegis.errors import Problems
from aegis.launch.kubernetes import KubernetesLauncher, Submitted
from aegis.k8s.manifests import Plan, to_yaml
from aegis.launch.base import MOST_NODES, MOST_PROCESSES_PER_NODE, MOST_RESTARTS, RunContext, gang_size
from aegis.launch.trainjob import runtime
from aegis.launch.trainjob.checks import check as own_rules
from aegis.launch.trainjob.render import render_trainjob
from aegis.launch.trainjob.schema import TrainJobLauncherConfig
from aegis.launch.trainjob.validate import validate_runtime, validate_trainjob

RUNTIME_SETTING = "runtime"  # Plan.settings: Aegis's runtime this TrainJob needs, or None


class TrainJobLauncher(KubernetesLauncher):
    name = "trainjob"
    bounds = {**KubernetesLauncher.bounds, "nodes": MOST_NODES, "nproc_per_node": MOST_PROCESSES_PER_NODE,
              "max_restarts": MOST_RESTARTS}
    example_overrides = ("strategy=ddp",)
    render_manifest = render_trainjob
    validate_manifest = validate_trainjob

    def world_size(self, cfg: DictConfig) -> Optional[int]:
        return gang_size(cfg.launcher, "nproc_per_node", "nodes")

    def check(self, cfg: DictConfig, found: Problems) -> None:
        super().check(cfg, found)
        own_rules(cfg, found)

    def spans_nodes(self, cfg: DictConfig) -> bool:
        """The node pods are scheduled apart: their claims must be ReadWriteMany."""
        return cfg.launcher.nodes > 1

    def render(self, cfg: DictConfig, ctx: RunContext) -> Plan:
        plan = super().render(cfg, ctx)
        plan.settings[RUNTIME_SETTING] = self.runtime_for(cfg, plan)
        return plan

    @staticmethod
    def runtime_for(cfg: DictConfig, plan: Plan) -> Optional[dict[str, Any]]:
        """Aegis's runtime, rendered from this config and checked, when the TrainJob names it."""
        if cfg.launcher.runtime != runtime.NAME:
            return None
        manifest = runtime.render_runtime(cfg, plan.manifest["spec"]["trainer"]["image"])
        validate_runtime(manifest)
        return manifest

    def companions(self, cfg: DictConfig, plan: Plan) -> dict[str, dict[str, Any]]:
        """What ``python -m aegis.generate`` writes beside the TrainJob: the runtime it names."""
        manifest = self.runtime_for(cfg, plan)
        return {} if manifest is None else {runtime.FILE: manifest}

    def write(self, plan: Plan) -> None:
        super().write(plan)
        manifest = plan.settings.get(RUNTIME_SETTING)
        if manifest is not None:
            (plan.run_dir / f"{manifest['kind'].lower()}.yaml").write_text(to_yaml(manifest))

    def submit(self, rendered: Plan) -> Submitted:
        print(f"[k8s] {runtime_notice(rendered)}", file=sys.stderr, flush=True)
        return super().submit(rendered)


def runtime_notice(plan: Plan) -> str:
    """One line naming the runtime the TrainJob needs and how to put it on the cluster."""
    ref = plan.manifest["spec"]["runtimeRef"]
    what = f"{ref['kind']} {ref['name']}"
    manifest = plan.settings.get(RUNTIME_SETTING)
    if manifest is None:
        return (f"runtime: this TrainJob runs on the {what}, which must exist on the cluster; its JobSet decides "
                f"restarts (Aegis's retry rules are in launcher.runtime={runtime.NAME})")
    written = plan.run_dir / f"{manifest['kind'].lower()}.yaml"
    restarts = manifest["spec"]["template"]["spec"]["failurePolicy"]["maxRestarts"]
    if ref["kind"] == "ClusterTrainingRuntime" and restarts == TrainJobLauncherConfig.max_restarts:
        how = f"kubectl apply -f k8s/{runtime.FILE} (rendered from this config: {written})"
    elif ref["kind"] == "ClusterTrainingRuntime":
        how = f"kubectl apply -f {written} (launcher.max_restarts={restarts} differs from k8s/{runtime.FILE})"
    else:
        how = f"kubectl apply -n {plan.namespace} -f {written}"
    return (f"runtime: this TrainJob needs the {what} (exit 1-127 fails it at once; 143/137 restart the gang "
            f"up to {restarts} times): {how}")
