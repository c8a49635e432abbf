"""A queued TrainJob's tolerations against what Kueue and Trainer do with them at admission.

Upstream, read at Kueue v0.19.2 and Kubeflow Trainer v2.3.0:

- Kueue's TrainJob webhook appends a ``runtimePatches`` entry of its own, manager
  ``kueue.x-k8s.io/manager``, after the ones the TrainJob was created with
  (``pkg/controller/jobs/trainjob/trainjob_webhook.go``, ``Default``); at admission
  ``RunWithPodSetsInfo`` (``trainjob_controller.go``) fills it, per replicated job, with the
  pod set's info from ``podset.FromAssignment`` (``pkg/podset/podset.go``): the admitting
  ResourceFlavors' nodeLabels and tolerations, nothing of the pod set's own.
- Trainer's ``mergeRuntimePatches`` (``pkg/runtime/core/trainingruntime.go``) applies the
  runtime template, then each entry in list order, as a strategic merge into the JobSet spec;
  ``replicatedJobs`` merge by name, a PodSpec's ``nodeSelector`` (a map) merges key by key, and
  its ``tolerations`` (no patch strategy: an atomic list) are replaced by a later patch that
  has any.
- ``runtimePatches`` is ``listType=map`` keyed by ``manager`` (``trainjob_types.go``): Aegis
  cannot put its entry after Kueue's.
"""

from __future__ import annotations

import copy

import pytest

from aegis.errors import ConfigError
from aegis.launch.trainjob.kind import REPLICATED_JOB
from k8s_helpers import IMAGE, compose_cfg
from test_k8s_render import render

KUEUE_MANAGER = "kueue.x-k8s.io/manager"
USER = {"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}
FLAVOR = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}  # the ResourceFlavor's spec.tolerations
QUEUED = ("strategy=ddp", "launcher.queue=team-a",
          "launcher.tolerations=[{key: dedicated, operator: Exists, effect: NoSchedule}]")


def kueue_patch(flavor_tolerations, node_labels=None):
    """Kueue's entry once the TrainJob is admitted on a flavor (RunWithPodSetsInfo)."""
    pod_spec = {}
    if node_labels:
        pod_spec["nodeSelector"] = dict(node_labels)
    if flavor_tolerations:  # omitempty: a flavor without tolerations leaves the field out
        pod_spec["tolerations"] = list(flavor_tolerations)
    return {"manager": KUEUE_MANAGER, "trainingRuntimeSpec": {"template": {"spec": {"replicatedJobs": [{
        "name": REPLICATED_JOB, "template": {"spec": {"template": {"spec": pod_spec}}}}]}}}}


def node_pod_spec(runtime_pod_spec, patches):
    """Trainer's mergeRuntimePatches for the node replicated job's pod spec: each patch in list
    order; maps merge, the tolerations list is replaced."""
    spec = copy.deepcopy(runtime_pod_spec)
    for patch in patches:
        for rjob in patch["trainingRuntimeSpec"]["template"]["spec"].get("replicatedJobs", []):
            if rjob["name"] != REPLICATED_JOB:
                continue
            pod = rjob["template"]["spec"]["template"].get("spec", {})
            for key, value in pod.items():
                if key == "nodeSelector":
                    spec[key] = {**spec.get(key, {}), **value}
                elif key != "containers":  # containers merge by name; not what is at stake here
                    spec[key] = copy.deepcopy(value)
    return spec


def admitted_tolerations(manifest, flavor_tolerations):
    patches = [*manifest["spec"]["runtimePatches"], kueue_patch(flavor_tolerations)]
    return node_pod_spec({}, patches).get("tolerations", [])


def test_kueue_admission_replaces_the_trainjobs_own_tolerations(tmp_path):
    """What the controllers do with a TrainJob that carries its tolerations in Aegis's patch."""
    manifest = render("trainjob", tmp_path, *QUEUED).manifest  # rendered without the launcher's checks
    assert USER in admitted_tolerations(manifest, [])  # a flavor without tolerations keeps them
    assert admitted_tolerations(manifest, [FLAVOR]) == [FLAVOR]  # one with tolerations replaces them


def test_queued_trainjob_keeps_its_tolerations_or_is_refused(tmp_path):
    """Either the pods Kueue admits still tolerate what launcher.tolerations says, or the config
    is refused before anything is rendered, in one sentence naming the key and the way out."""
    from aegis.config.validation import validate

    cfg = compose_cfg("launcher=trainjob", f"launcher.image={IMAGE}", *QUEUED)
    try:
        validate(cfg)
    except ConfigError as exc:
        text = str(exc)
        assert "launcher.tolerations would be lost with launcher.queue=team-a on a TrainJob" in text
        assert "ResourceFlavor" in text and "launcher.tolerations=[]" in text
        return
    manifest = render("trainjob", tmp_path, *QUEUED).manifest
    assert USER in admitted_tolerations(manifest, [FLAVOR])


@pytest.mark.parametrize("overrides", [
    ("strategy=ddp", "launcher.queue=team-a"),  # queued, no tolerations of its own
    ("strategy=ddp", "launcher.tolerations=[{key: dedicated, operator: Exists, effect: NoSchedule}]"),  # no Kueue
])
def test_tolerations_or_queue_alone_are_accepted(overrides):
    from aegis.config.validation import validate

    validate(compose_cfg("launcher=trainjob", f"launcher.image={IMAGE}", *overrides))
