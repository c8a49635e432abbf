"""Rendered manifests: valid against the official schemas, and what they run."""

from __future__ import annotations

import copy

import jsonschema
import kubernetes_validate
import pytest

from aegis.k8s.validate import KUBERNETES_VERSION
from aegis.launch.k8s_job.render import render_job
from aegis.launch.pytorchjob.render import render_pytorchjob
from aegis.launch.pytorchjob.validate import pytorchjob_problems, validate_pytorchjob
from aegis.errors import ConfigError
from helpers import crd_schema as upstream_crd_schema
from k8s_helpers import CRD, IMAGE, compose_cfg, context_for


def render(kind, tmp_path, *overrides):
    overrides = (f"launcher={kind}", f"launcher.image={IMAGE}", *overrides)
    cfg = compose_cfg(*overrides)
    ctx = context_for(cfg, [o for o in overrides], tmp_path / "run")
    from aegis.launch import get_launcher

    return get_launcher(kind).render(cfg, ctx)


@pytest.fixture(scope="module")
def crd_schema():
    if not CRD.is_file():
        pytest.skip(f"the upstream PyTorchJob CRD is not at {CRD} (../shared/schemas beside the checkout)")
    return upstream_crd_schema(CRD.name, "v1")


def crd_validate(schema, manifest):
    jsonschema.Draft7Validator(schema).validate(manifest)


def container(manifest, replica=None):
    spec = manifest["spec"]
    template = spec["template"] if replica is None else spec["pytorchReplicaSpecs"][replica]["template"]
    return template["spec"]["containers"][0], template["spec"]


def overrides_of(c):
    """The Hydra overrides the container passes to train.py (after the entrypoint)."""
    args = c["args"]
    return args[args.index("train.py") + 1:]


def test_job_validates_and_runs_train_py_locally_with_pinned_run_dir(tmp_path):
    plan = render("k8s-job", tmp_path, "model.lr=0.01", "trainer.max_epochs=3")
    kubernetes_validate.validate(plan.manifest, KUBERNETES_VERSION, strict=True)
    kubernetes_validate.validate(plan.manifest, kubernetes_validate.latest_version(), strict=True)
    c, pod = container(plan.manifest)
    run_id = plan.run_id
    # The command is the container's args: the image's ENTRYPOINT (its init) stays PID 1.
    assert "command" not in c
    assert c["args"][:2] == ["python", "train.py"]
    assert "model.lr=0.01" in c["args"] and "trainer.max_epochs=3" in c["args"]
    assert "launcher=local" in c["args"]
    assert not any(a.startswith("launcher.") for a in c["args"])  # launcher overrides stay here
    assert f"run_id={run_id}" in c["args"]
    assert f"hydra.run.dir=/outputs/train/runs/{run_id}" in c["args"]
    assert "paths.root=/outputs" in c["args"]
    assert plan.pod_run_dir == f"/outputs/train/runs/{run_id}"
    # unique, DNS-safe name derived from the experiment
    assert plan.name.startswith("train-") and len(plan.name) <= 48
    labels = plan.manifest["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == "aegis" and labels["aegis.dev/run-id"] == run_id
    assert pod["restartPolicy"] == "Never" and plan.manifest["spec"]["backoffLimit"] == 2


def test_job_names_differ_per_submission(tmp_path):
    a = render("k8s-job", tmp_path, "run_id=same")
    b = render("k8s-job", tmp_path, "run_id=same")
    assert a.name != b.name and a.name.startswith("train-same-")


def test_job_security_resources_and_volumes(tmp_path):
    plan = render("k8s-job", tmp_path, "launcher.resources.gpu=2", "launcher.resources.cpu=4",
                  "launcher.resources.memory=16Gi", "launcher.resources.cpu_limit=8", "launcher.shm_size=4Gi",
                  "launcher.service_account=trainer", "+launcher.node_selector.pool=gpu",
                  "launcher.tolerations=[{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]",
                  "launcher.image_pull_secrets=[regcred]", "launcher.active_deadline_seconds=3600")
    kubernetes_validate.validate(plan.manifest, KUBERNETES_VERSION, strict=True)
    c, pod = container(plan.manifest)
    assert c["resources"] == {"requests": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "2"},
                              "limits": {"cpu": "8", "memory": "16Gi", "nvidia.com/gpu": "2"}}
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["serviceAccountName"] == "trainer" and pod["nodeSelector"] == {"pool": "gpu"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    vols = {v["name"]: v for v in pod["volumes"]}
    assert vols["outputs"]["persistentVolumeClaim"]["claimName"] == "aegis-outputs"
    assert vols["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "4Gi"}
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert mounts == {"outputs": "/outputs", "dshm": "/dev/shm"}  # digits uses no dataset cache
    assert plan.manifest["spec"]["activeDeadlineSeconds"] == 3600


@pytest.mark.parametrize("kind, replica", [("k8s-job", None), ("pytorchjob", "Master"), ("pytorchjob", "Worker")])
def test_the_dataset_cache_is_mounted_only_when_the_data_uses_it(tmp_path, kind, replica):
    plain = render(kind, tmp_path, "launcher.nodes=2" if kind == "pytorchjob" else "data=digits")
    c, pod = container(plain.manifest, replica)
    assert "dataset-cache" not in {v["name"] for v in pod["volumes"]}
    assert "AEGIS_DATASET_CACHE" not in {e["name"] for e in c["env"]}
    cached = render(kind, tmp_path, "data.uses_dataset_cache=true", "launcher.dataset_cache.read_only=true")
    kubernetes_validate.validate(cached.manifest if kind == "k8s-job" else
                                 {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"},
                                  "template": cached.manifest["spec"]["pytorchReplicaSpecs"][replica]["template"]},
                                 KUBERNETES_VERSION, strict=True)
    c, pod = container(cached.manifest, replica)
    vols = {v["name"]: v for v in pod["volumes"]}
    assert vols["dataset-cache"]["persistentVolumeClaim"] == {"claimName": "aegis-dataset-cache", "readOnly": True}
    assert {"name": "dataset-cache", "mountPath": "/data", "readOnly": True} in c["volumeMounts"]
    assert {"name": "AEGIS_DATASET_CACHE", "value": "/data"} in c["env"]
    no_claim = render(kind, tmp_path, "data.uses_dataset_cache=true", "launcher.dataset_cache.claim=null")
    c, pod = container(no_claim.manifest, replica)
    assert "dataset-cache" not in {v["name"] for v in pod["volumes"]}


@pytest.mark.parametrize("kind, replica", [("k8s-job", None), ("pytorchjob", "Worker")])
def test_termination_grace_period_reaches_the_pod_and_the_run(tmp_path, kind, replica):
    c, pod = container(render(kind, tmp_path).manifest, replica)
    assert pod["terminationGracePeriodSeconds"] == 60
    assert {"name": "AEGIS_TERMINATION_GRACE_S", "value": "60"} in c["env"]
    plan = render(kind, tmp_path, "launcher.termination_grace_period_s=300")
    kubernetes_validate.validate(plan.manifest, KUBERNETES_VERSION, strict=True) if kind == "k8s-job" else None
    c, pod = container(plan.manifest, replica)
    assert pod["terminationGracePeriodSeconds"] == 300
    assert {"name": "AEGIS_TERMINATION_GRACE_S", "value": "300"} in c["env"]


@pytest.mark.parametrize("kind, replica", [("k8s-job", None), ("pytorchjob", "Master")])
def test_the_pods_run_never_claims_the_run_dir_as_a_local_job(tmp_path, kind, replica):
    """job.json belongs to the submitting side (kind, namespace, name): a pod's run writing
    its own (a pid in the pod) onto a shared volume would point aegis status at nothing."""
    c, _ = container(render(kind, tmp_path).manifest, replica)
    assert {"name": "AEGIS_SUPERVISED", "value": "1"} in c["env"]


def test_default_shm_is_half_a_gigabyte(tmp_path):
    _, pod = container(render("k8s-job", tmp_path).manifest)
    assert {v["name"]: v for v in pod["volumes"]}["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "512Mi"}


def test_credentials_come_from_secret_refs_never_literals(tmp_path):
    plan = render("k8s-job", tmp_path, "+launcher.secret_env.MLFLOW_TRACKING_TOKEN=mlflow/token",
                  "+launcher.env.MLFLOW_TRACKING_URI=https://mlflow.example.com", "launcher.env_from=[tracking]")
    kubernetes_validate.validate(plan.manifest, KUBERNETES_VERSION, strict=True)
    c, _ = container(plan.manifest)
    env = {e["name"]: e for e in c["env"]}
    assert env["MLFLOW_TRACKING_TOKEN"] == {"name": "MLFLOW_TRACKING_TOKEN",
                                            "valueFrom": {"secretKeyRef": {"name": "mlflow", "key": "token"}}}
    assert env["MLFLOW_TRACKING_URI"]["value"] == "https://mlflow.example.com"
    assert c["envFrom"] == [{"secretRef": {"name": "tracking"}}]


def test_host_path_and_empty_dir_outputs(tmp_path):
    plan = render("k8s-job", tmp_path, "launcher.outputs.claim=null", "launcher.outputs.host_path=/mnt/aegis",
                  "launcher.outputs.allow_host_path=true",
                  "launcher.dataset_cache.claim=null", "launcher.shm_size=null")
    kubernetes_validate.validate(plan.manifest, KUBERNETES_VERSION, strict=True)
    _, pod = container(plan.manifest)
    assert pod["volumes"] == [{"name": "outputs", "hostPath": {"path": "/mnt/aegis", "type": "DirectoryOrCreate"}}]


def test_pytorchjob_validates_against_crd_and_admission_rules(tmp_path, crd_schema):
    plan = render("pytorchjob", tmp_path, "launcher.nodes=3", "launcher.nproc_per_node=2", "model.lr=0.01")
    crd_validate(crd_schema, plan.manifest)
    assert pytorchjob_problems(plan.manifest) == []
    spec = plan.manifest["spec"]
    assert spec["nprocPerNode"] == "2"
    assert spec["pytorchReplicaSpecs"]["Master"]["replicas"] == 1
    assert spec["pytorchReplicaSpecs"]["Worker"]["replicas"] == 2
    assert spec["runPolicy"] == {"cleanPodPolicy": "None", "backoffLimit": 3, "ttlSecondsAfterFinished": 86400}
    for replica in ("Master", "Worker"):
        c, pod = container(plan.manifest, replica)
        assert c["name"] == "pytorch"
        # args, not command: the image's init stays PID 1, in front of the gang's supervisor
        assert "command" not in c
        # torchrun is driven by the operator's PET_* env: no rendezvous flags of its own
        assert c["args"][c["args"].index("torchrun") + 1] == "train.py"
        assert not any(a.startswith("--") for a in c["args"])
        assert "strategy=ddp" in c["args"] and "launcher=local" in c["args"]
        assert f"hydra.run.dir=/outputs/train/runs/{plan.run_id}" in c["args"]
        kubernetes_validate.validate({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"},
                                      "template": spec["pytorchReplicaSpecs"][replica]["template"]},
                                     KUBERNETES_VERSION, strict=True)


def test_pytorchjob_one_node_has_no_workers_and_keeps_user_ddp_settings(tmp_path, crd_schema):
    plan = render("pytorchjob", tmp_path, "launcher.nodes=1", "strategy=ddp", "strategy.timeout_s=600")
    crd_validate(crd_schema, plan.manifest)
    assert list(plan.manifest["spec"]["pytorchReplicaSpecs"]) == ["Master"]
    c, _ = container(plan.manifest, "Master")
    assert "strategy=ddp" in c["args"] and "strategy.timeout_s=600" in c["args"]


def test_pytorchjob_elastic_policy(tmp_path, crd_schema):
    plan = render("pytorchjob", tmp_path, "launcher.nodes=2", "launcher.elastic.enabled=true",
                  "launcher.elastic.min_nodes=1", "launcher.elastic.max_nodes=4", "launcher.active_deadline_seconds=60")
    crd_validate(crd_schema, plan.manifest)
    assert plan.manifest["spec"]["elasticPolicy"] == {"minReplicas": 1, "maxReplicas": 4, "maxRestarts": 3,
                                                      "rdzvBackend": "c10d"}
    assert plan.manifest["spec"]["runPolicy"]["activeDeadlineSeconds"] == 60


def _broken(plan, change):
    manifest = copy.deepcopy(plan.manifest)
    change(manifest)
    return manifest


# (the change, the words of the admission check's sentence, whether the CRD schema alone
# refuses it). The CRD schema lets all but one through: the operator's webhook would
# refuse them at submission, so Aegis refuses them before.
@pytest.mark.parametrize("change, words, crd_refuses", [
    (lambda m: m["metadata"].update(name="1-starts-with-digit"), "DNS-1035", False),
    (lambda m: m["spec"]["pytorchReplicaSpecs"]["Master"].update(replicas=2), "Master.replicas must be exactly 1", False),
    (lambda m: m["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0].update(name="main"),
     "no container named 'pytorch'", False),
    (lambda m: m["spec"].update(nprocPerNode=2), "must be a string", True),
    (lambda m: (m["spec"]["pytorchReplicaSpecs"].pop("Worker"), m["spec"].update(elasticPolicy={"rdzvBackend": "c10d"})),
     "elasticPolicy needs Worker.replicas >= 1", False),
    (lambda m: m["spec"]["pytorchReplicaSpecs"].pop("Master"), "must have a Master", False),
    (lambda m: m["spec"]["runPolicy"].update(cleanPodPolicy="Sometimes"), "clean_pod_policy", False),
])
def test_admission_rules_the_crd_schema_does_not_encode(tmp_path, crd_schema, change, words, crd_refuses):
    plan = render("pytorchjob", tmp_path)
    manifest = _broken(plan, change)
    crd_errors = list(jsonschema.Draft7Validator(crd_schema).iter_errors(manifest))
    assert bool(crd_errors) == crd_refuses, [e.message for e in crd_errors]
    with pytest.raises(ConfigError, match=words):
        validate_pytorchjob(manifest)


def test_pod_template_fields_are_schema_checked(tmp_path):
    plan = render("pytorchjob", tmp_path)
    manifest = _broken(plan, lambda m: m["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]
                       .update(tolerations=[{"key": "a", "tolerationSecs": 1}]))
    with pytest.raises(ConfigError, match="launcher.tolerations"):
        validate_pytorchjob(manifest)


@pytest.mark.parametrize("kind, replica", [("k8s-job", None), ("pytorchjob", "Master")])
def test_the_pod_command_composes_to_a_valid_local_run(tmp_path, kind, replica):
    """What the pod will run is a config train.py accepts: launcher=local, run dir pinned."""
    from aegis.config.validation import validate

    plan = render(kind, tmp_path, "model.lr=0.01", "data=synthetic")
    c, _ = container(plan.manifest, replica)
    cfg = compose_cfg(*overrides_of(c))
    validate(cfg)
    assert cfg.launcher.name == "local" and cfg.paths.root == "/outputs"
    assert cfg.run_id == plan.run_id and cfg.hydra.run.dir == plan.pod_run_dir
    assert cfg.model.lr == 0.01 and cfg.data.name == "synthetic"
    assert cfg.strategy.name == ("ddp" if kind == "pytorchjob" else "single")
