"""Every ``_target_`` is a class of its group's kind before anything is called (issue 22 #5).

``+callbacks.pwn._target_=shutil.copyfile`` with ``src``/``dst`` copied the file, then the
run failed with "not a Lightning callback", also in a Kubernetes dry run. Validation now
reads what a target names from source (aegis.config.targets), and the training process
imports every target and checks it before building any (training.components.check_targets).
"""

from __future__ import annotations

import sys

import pytest

from aegis.config.validation import problems
from helpers import run_train

K8S_DRY = ["launcher=k8s-job", "launcher.image=reg.example.com/ml/aegis:1", "launcher.dry_run=true"]


def _copy(tmp_path) -> tuple[list[str], object]:
    src, dst = tmp_path / "src.txt", tmp_path / "dst.txt"
    src.write_text("secret\n")
    return ["+callbacks.pwn._target_=shutil.copyfile", f"+callbacks.pwn.src={src}", f"+callbacks.pwn.dst={dst}"], dst


@pytest.mark.parametrize("launcher", [[], K8S_DRY], ids=["local", "k8s-dry-run"])
def test_a_function_as_callback_is_refused_before_it_runs(tmp_path, launcher):
    overrides, dst = _copy(tmp_path)
    root = tmp_path / "root"
    result = run_train([*launcher, *overrides], root)
    assert result.returncode == 1, result.stderr
    assert "callbacks.pwn._target_=shutil.copyfile is a function, not a class" in result.stderr
    assert "Traceback" not in result.stderr
    assert not dst.exists(), "the function ran"
    assert not root.exists() or not any(root.iterdir()), "nothing may be created before a refusal"


@pytest.mark.parametrize("overrides,expected", [
    (["+callbacks.x._target_=os.system", "+callbacks.x.command=id"], "callbacks.x._target_=os.system is a function"),
    (["+callbacks.x._target_=builtins.exec", "+callbacks.x._args_=[1]"], "builtins.exec is a function"),
    (["+callbacks.x._target_=collections.OrderedDict"], "is a class but not a Lightning callback"),
    (["+callbacks.x._target_=aegis.training.models.MLPClassifier"], "is a class but not a Lightning callback"),
    (["model._target_=shutil.rmtree", "+model.path=/tmp/x"], "model._target_=shutil.rmtree is a function"),
    (["data._target_=aegis.training.models.MLPClassifier"], "is a class but not a LightningDataModule"),
    (["model._target_=aegis.training.data.DigitsDataModule"], "is a class but not a LightningModule"),
    (["trainer._target_=shutil.copyfile"], "trainer._target_=shutil.copyfile is a function"),
    # made at import time (a decorator): only importing numpy says it is no class
    (["+callbacks.x._target_=numpy.save", "+callbacks.x.file=x.npy", "+callbacks.x.arr=[1]"],
     "callbacks.x._target_=numpy.save is a function"),
    # a nested _target_ in a component's arguments is instantiated by Hydra too
    (["callbacks=early_stopping", "+callbacks.early_stopping.monitor._target_=shutil.copyfile"],
     "callbacks.early_stopping.monitor._target_=shutil.copyfile is a function"),
])
def test_targets_that_are_not_classes_of_their_kind_are_refused(compose, tmp_path, monkeypatch, overrides, expected):
    monkeypatch.setenv("AEGIS_OUTPUT_ROOT", str(tmp_path / "root"))
    sentences = problems(compose(*overrides)).sentences
    assert len(sentences) == 1 and expected in sentences[0], sentences


@pytest.mark.parametrize("overrides", [
    ["callbacks=[early_stopping,lr_monitor]"],
    ["+callbacks.swa._target_=lightning.pytorch.callbacks.StochasticWeightAveraging", "+callbacks.swa.swa_lrs=1e-3"],
    ["model=cnn"], ["data=synthetic"],
])
def test_real_components_still_validate(compose, overrides):
    assert problems(compose(*overrides)).sentences == []


def test_the_training_process_checks_what_source_cannot_say_before_calling_anything(compose, tmp_path, monkeypatch):
    """A function bound by assignment (``hook = _hook``): its source cannot say it is not a
    class, so validation imports its (light) module to ask; the run imports it and refuses it
    too, before calling any target."""
    pytest.importorskip("lightning")
    from aegis.errors import ConfigErrors
    from aegis.training.components import check_targets

    marker = tmp_path / "called"
    (tmp_path / "sneaky_mod.py").write_text(
        f"def _hook(**kwargs):\n    open({str(marker)!r}, 'w').close()\n\nhook = _hook\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = compose("+callbacks.x._target_=sneaky_mod.hook")
    assert problems(cfg).sentences == ["callbacks.x._target_=sneaky_mod.hook is a function, not a class: expected the "
                                       "import path of a class, e.g. lightning.pytorch.callbacks.EarlyStopping."]
    with pytest.raises(ConfigErrors, match=r"callbacks.x._target_=sneaky_mod.hook is a function, not a class"):
        check_targets(cfg)
    assert not marker.exists()
    sys.modules.pop("sneaky_mod", None)


def test_a_function_as_hydra_callback_is_refused_before_hydra_calls_it(tmp_path):
    """Hydra instantiates hydra.callbacks itself at start-up, before any validation callback."""
    src, dst = tmp_path / "src.txt", tmp_path / "dst.txt"
    src.write_text("secret\n")
    root = tmp_path / "root"
    result = run_train(["+hydra.callbacks.pwn._target_=shutil.copyfile", f"+hydra.callbacks.pwn.src={src}",
                        f"+hydra.callbacks.pwn.dst={dst}"], root)
    assert result.returncode == 1, result.stderr
    assert "hydra.callbacks.pwn._target_=shutil.copyfile is a function, not a class" in result.stderr
    assert "Traceback" not in result.stderr and not dst.exists()
    assert not root.exists() or not any(root.iterdir())


def test_hydra_problems_accept_the_shipped_callbacks_and_refuse_others(compose):
    from omegaconf import open_dict

    from aegis.config.targets import hydra_problems

    cfg = compose(hydra_config=True)
    assert hydra_problems(cfg) == []
    with open_dict(cfg):
        cfg.hydra.callbacks.x = {"_target_": "collections.OrderedDict"}
        cfg.hydra.job_logging.filters.y = {"()": "os.system"}
        cfg.hydra.launcher._target_ = "shutil.copyfile"
    sentences = hydra_problems(cfg)
    assert len(sentences) == 3, sentences
    assert "hydra.launcher._target_=shutil.copyfile is a function" in sentences[1]
    assert "hydra.callbacks.x._target_=collections.OrderedDict is a class but not a Hydra callback" in sentences[0]
    assert "hydra.job_logging.filters.y.()=os.system is a function" in sentences[2]
