"""Validation is one pass that collects: every problem is one ``Error:`` line, exit 1, nothing created.

Independent bad values are all listed at once; a value that only fails because another
one was refused (a cascade) is not, so each line is a root cause.
"""

from __future__ import annotations

import pickle

import pytest

from aegis.config.validation import problems, validate
from aegis.errors import ConfigError, ConfigErrors, Problems, error_lines
from helpers import run_train

K8S = ["launcher=k8s-job", "launcher.dry_run=true"]


def _refused(result, root) -> list[str]:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1, result.stderr
    assert all(line.startswith("Error: ") for line in lines), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not root.exists() or not any(root.iterdir()), "a rejected config must not create anything"
    return lines


def _sentences(compose, *overrides: str) -> list[str]:
    return problems(compose(*overrides)).sentences


# ------------------------------------------------------------------ train.py


def test_three_independent_bad_values_are_three_lines(tmp_path):
    root = tmp_path / "root"
    lines = _refused(run_train(["model.lr=-1", "data.batch_size=0", "trainer.max_epochs=0"], root), root)
    assert len(lines) == 3, lines
    for key in ("model.lr=-1", "data.batch_size=0", "trainer.max_epochs=0"):
        assert sum(key in line for line in lines) == 1, (key, lines)


@pytest.mark.slow  # in-process: test_k8s_and_search_checks_return_their_sentences (the same two, and a third)
def test_a_bad_image_and_a_bad_quantity_are_both_listed(tmp_path):
    root = tmp_path / "root"
    result = run_train([*K8S, "launcher.image=not an image", "launcher.resources.memory=lots"], root)
    lines = _refused(result, root)
    assert len(lines) == 2, lines
    assert "launcher.image=" in lines[0] and "launcher.resources.memory='lots'" in lines[1], lines


@pytest.mark.slow  # in-process: test_a_value_refused_once_is_one_sentence (data.num_classes=1 among its cases)
def test_a_cascade_prints_only_its_root_cause(tmp_path):
    root = tmp_path / "root"
    # data.num_classes=1 is out of range; its mismatch with data=digits (10 classes) and the
    # model.num_classes that follows it would be consequences.
    lines = _refused(run_train(["data.num_classes=1"], root), root)
    assert len(lines) == 1 and "data.num_classes=1 is invalid" in lines[0], lines


def test_a_sweep_lists_each_bad_value_once(tmp_path):
    root = tmp_path / "root"
    result = run_train(["-m", "model.lr=1e-3,inf", "data.batch_size=0,8", "trainer=smoke", "logger=none"], root)
    lines = _refused(result, root)
    assert len(lines) == 2, lines
    assert any("model.lr=inf" in line for line in lines) and any("data.batch_size=0" in line for line in lines)


# ------------------------------------------------------------------ in-process


@pytest.mark.parametrize("overrides,root_cause", [
    (["data.num_classes=1"], "data.num_classes=1 is invalid"),
    (["data.num_classes=???"], "data.num_classes has no value"),  # not "model.num_classes could not be resolved"
    (["data.val_fraction=inf"], "data.val_fraction=inf is invalid"),  # not also its range, nor the sum
    (["data=synthetic", "data.num_features=0"], "data.num_features=0 is invalid"),  # not model.input_shape
    (["data.batch_size=0"], "data.batch_size=0 is invalid"),  # the batch counts are not divided by it
    (["data.batch_size=0", "trainer.limit_train_batches=0.0001"], "data.batch_size=0 is invalid"),
    (["data.val_fraction=0.9", "data.test_fraction=0.5"], "leaves no training data"),
    (["trainer.max_epochs=0", "trainer.min_epochs=2"], "trainer.max_epochs=0 is invalid"),
    (["task_name=a/b"], "task_name='a/b' is invalid"),  # not the experiment name derived from it
    ([*K8S, "launcher.image=r.example.com/a:1", "launcher.resources.cpu=abc", "launcher.resources.cpu_limit=1"],
     "launcher.resources.cpu='abc'"),  # no limit-below-request comparison with a non-quantity
])
def test_a_value_refused_once_is_one_sentence(compose, tmp_path, monkeypatch, overrides, root_cause):
    monkeypatch.setenv("AEGIS_OUTPUT_ROOT", str(tmp_path / "root"))
    sentences = _sentences(compose, *overrides)
    assert len(sentences) == 1 and root_cause in sentences[0], sentences


def test_independent_problems_across_groups_are_all_listed(compose, tmp_path, monkeypatch):
    monkeypatch.setenv("AEGIS_OUTPUT_ROOT", str(tmp_path / "root"))
    sentences = _sentences(compose, "model.lr=nan", "data.num_classes=5", "checkpoint.monitor=nope",
                           "trainer.min_epochs=9", "trainer.max_epochs=3", "seed=-5")
    assert len(sentences) == 5, sentences
    for expected in ("model.lr=nan", "data.num_classes=5", "checkpoint.monitor=nope", "trainer.min_epochs=9",
                     "seed=-5"):
        assert sum(expected in s for s in sentences) == 1, (expected, sentences)


def test_an_environment_interpolation_is_refused_and_the_rest_still_checked(compose, tmp_path, monkeypatch):
    monkeypatch.setenv("AEGIS_OUTPUT_ROOT", str(tmp_path / "root"))
    monkeypatch.setenv("AEGIS_TEST_SECRET", "do-not-print-me")
    sentences = _sentences(compose, *K8S, "launcher.image=r.example.com/a:1",
                           "+launcher.env.TOKENLESS=${oc.env:AEGIS_TEST_SECRET}", "model.lr=-1")
    assert len(sentences) == 2, sentences
    assert "launcher.env.TOKENLESS=" in sentences[0] and "model.lr=-1" in sentences[1], sentences
    assert "do-not-print-me" not in "".join(sentences)


def test_validate_raises_one_config_errors_with_every_sentence(compose, tmp_path, monkeypatch):
    monkeypatch.setenv("AEGIS_OUTPUT_ROOT", str(tmp_path / "root"))
    with pytest.raises(ConfigError) as info:  # existing `except ConfigError` keeps working
        validate(compose("model.lr=-1", "data.batch_size=0"))
    assert isinstance(info.value, ConfigErrors) and len(info.value.sentences) == 2
    assert error_lines(info.value) == [f"Error: {s}" for s in info.value.sentences]
    assert str(info.value) == "\n".join(info.value.sentences)
    copy = pickle.loads(pickle.dumps(info.value))  # a Ray trial's error travels whole
    assert copy.sentences == info.value.sentences


def test_one_problem_is_one_line():
    exc = ConfigErrors(["model.lr=-1.0 is invalid: expected a number > 0."])
    assert error_lines(exc) == ["Error: model.lr=-1.0 is invalid: expected a number > 0."]
    assert error_lines(ConfigError("x is bad: expected y.")) == ["Error: x is bad: expected y."]


def test_k8s_and_search_checks_return_their_sentences(compose):
    from aegis.k8s.checks import check_config
    from aegis.tune.checks import check_search

    cfg = compose(*K8S, "launcher.image=not an image", "launcher.resources.memory=lots", "launcher.namespace=Bad_NS")
    sentences = check_config(cfg)
    assert [s.split("=")[0] for s in sentences] == ["launcher.image", "launcher.resources.memory",
                                                    "launcher.namespace"], sentences
    found = Problems()
    cfg = compose("search=ray-tune", "launcher=torchrun", "strategy=ddp", "strategy.devices=2", hydra_config=True)
    assert check_search(cfg, cfg.hydra, found) == found.sentences and len(found.sentences) >= 2, found.sentences


def test_every_unparsable_override_is_listed(capsys):
    from aegis.cli import check_overrides

    with pytest.raises(SystemExit) as info:
        check_overrides(["model.lr=interval(1e-4,x)", "trainer.max_epochs=1", "data.batch_size=[1,"])
    assert info.value.code == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 2 and all(line.startswith("Error: ") for line in lines), lines


# ------------------------------------------------------------------ issue 22 #13


def test_a_wrong_type_is_listed_with_every_range_error(tmp_path):
    """Hydra stops composing at data.batch_size=abc; the other four were hidden behind it."""
    root = tmp_path / "root"
    lines = _refused(run_train(["data.batch_size=abc", "model.lr=-1", "trainer.max_epochs=0", "seed=-1",
                                "data.num_workers=-1"], root), root)
    assert len(lines) == 5, lines
    for key in ("data.batch_size=abc", "model.lr=-1", "trainer.max_epochs=0", "seed=-1", "data.num_workers=-1"):
        assert sum(key in line for line in lines) == 1, (key, lines)


def test_bad_choices_and_unknown_keys_are_listed_together_without_their_consequences(tmp_path):
    root = tmp_path / "root"
    # trainer.min_epochs=3 is fine on its own: its clash with the max_epochs default left once
    # trainer.max_epochs=abc is dropped is a consequence, not a problem.
    lines = _refused(run_train(["model.optimizer=sgdd", "checkpoint.mode=avg", "model.hiden=2",
                                "trainer.max_epochs=abc", "trainer.min_epochs=30", "model.lr=-1"], root), root)
    assert len(lines) == 5, lines
    for key in ("model.optimizer=sgdd", "checkpoint.mode=avg", "model.hiden", "trainer.max_epochs=abc",
                "model.lr=-1"):
        assert sum(key in line for line in lines) == 1, (key, lines)
