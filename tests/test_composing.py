"""The suite's fast compose (tests/composing.py) gives what Hydra's own compose gives.

Every test that composes in-process relies on it, so this is the test that keeps those
tests honest: the same config node for node (types and interpolations unresolved, Hydra's
node included), or the same error, for overrides of every kind the suite uses."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

import composing
from aegis.cli import prepare

# Taken by the fast path: group choices composed once, values applied to a copy.
FAST = [
    [],
    ["model.lr=0.1"],
    ["seed=3", "run_id=abc", "task_name='a: b'"],
    ["model.hidden_dims=[64,32]", "trainer.max_epochs=2"],
    ["strategy=ddp", "launcher=torchrun", "launcher.nproc_per_node=2"],
    ["launcher=k8s-job", "launcher.image=reg.example.com/ml/aegis:1", "+launcher.labels={team: ml}"],
    ["data=synthetic", "data.num_samples=500", "model=cnn"],
    ["experiment=digits_cnn", "trainer.max_epochs=3"],
    ["trainer.max_epochs=3", "experiment=synthetic_ddp"],  # command line values win, wherever written
    ["+callbacks.extra={_target_: x.Y}"],
    ["++trainer.max_epochs=4", "++model.extra=1"],
    ["~tags", "seed=null"],
    ["callbacks=early_stopping", "callbacks.early_stopping.patience=2"],
    ["logger=lightning", "+logger.flush_logs_every_n_steps=5"],
]
# Refused, by the same words either way.
FAST_ERRORS = [
    ["data.batch_size=abc"],
    ["modle.lr=1"],
    ["model=mlp", "model.nope=1"],
    ["+trainer.max_epochs=3"],
    ["~model.nope"],
    ["launcher=k8s-job", "launcher.labels={team: ml}"],
    ["+trainer.limit_val_batches=2"],
    ["~checkpoint.every_n_steps"],
    ["model.lr=null", "data.source=${oc.env:HOME}/x"],
    ["model=nope"],  # an option that does not exist: Hydra's own compose of the groups says so
]
# Left to Hydra (a sweep, Hydra's node, a package, a group deleted).
FULL = [["model.lr=1,2"], ["hydra.job.chdir=true"], ["hydra/sweeper=basic"], ["model@x=mlp"], ["~callbacks"],
        ["model.lr=choice(1,2)"]]


@pytest.fixture(autouse=True, scope="module")
def _prepared():
    prepare()


def _as_data(cfg):
    return OmegaConf.to_container(cfg, resolve=False)


def _differences(a, b, path=""):
    """The dotted keys where two plain configs differ (a readable failure, not a dict dump)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for key in sorted(set(a) | set(b), key=str)
                for d in _differences(a.get(key, "<missing>"), b.get(key, "<missing>"), f"{path}.{key}")]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


@pytest.mark.parametrize("overrides, hydra_config", [(o, True) for o in FAST] + [(FAST[1], False), (FAST[7], False)],
                         ids=[" ".join(o) or "defaults" for o in FAST] + ["no hydra node", "no hydra node, experiment"])
def test_the_fast_path_gives_hydras_config(overrides, hydra_config):
    assert composing._split(tuple(overrides)) is not None, "this case should take the fast path"
    fast = composing.compose(overrides, hydra_config=hydra_config)
    again = composing.compose(overrides, hydra_config=hydra_config)  # from the cache this time
    full = composing.full(overrides, hydra_config=hydra_config)
    assert _differences(_as_data(fast), _as_data(full)) == []
    assert _differences(_as_data(again), _as_data(full)) == []
    assert OmegaConf.is_struct(fast) == OmegaConf.is_struct(full)
    for node in ("trainer", "data", "model", "launcher"):  # the schema's types came along
        assert OmegaConf.get_type(fast[node]) is OmegaConf.get_type(full[node]), node


def test_a_copy_handed_out_never_changes_the_cache():
    first = composing.compose(["model.lr=0.1"])
    first.model.lr = 5.0
    assert composing.compose(["model.lr=0.2"]).model.lr == 0.2
    assert composing.compose([]).model.lr == composing.full([], hydra_config=False).model.lr


@pytest.mark.parametrize("overrides", FAST_ERRORS, ids=[" ".join(o) for o in FAST_ERRORS])
def test_a_bad_value_is_refused_in_hydras_words(overrides):
    with pytest.raises(Exception) as fast:
        composing.compose(overrides)
    with pytest.raises(Exception) as full:
        composing.full(overrides)
    assert type(fast.value) is type(full.value)
    assert str(fast.value) == str(full.value)


@pytest.mark.parametrize("overrides", FULL, ids=[" ".join(o) for o in FULL])
def test_what_only_hydra_can_judge_goes_to_hydra(overrides):
    assert composing._split(tuple(overrides)) is None
