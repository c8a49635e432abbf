"""Hydra's override grammar -> Ray Tune search space, one case per grammar form."""

from __future__ import annotations

import pytest

from aegis.errors import ConfigError
from aegis.tune.space import format_value, parse


def dim(override: str):
    space = parse([override])
    (d,) = space.dims.values()
    return d


@pytest.mark.parametrize(
    "override, kind, expected",
    [
        ("model.lr=0.1,0.01", "choice", {"values": (0.1, 0.01)}),
        ("model=choice(mlp,cnn)", "choice", {"values": ("mlp", "cnn")}),
        ("model.hidden_dims=choice([64],[32,16])", "choice", {"values": ([64], [32, 16])}),
        ("model.optimizer=tag(grid,choice(adam,sgd))", "grid", {"values": ("adam", "sgd")}),
        ("data.batch_size=range(16,65)", "randint", {"low": 16, "high": 65}),
        ("data.batch_size=range(16,65,16)", "choice", {"values": (16, 32, 48, 64)}),
        ("data.batch_size=tag(grid,range(1,4))", "grid", {"values": (1, 2, 3)}),
        ("model.dropout=range(0.0,0.3,0.1)", "choice", {"values": (0.0, 0.1, 0.2)}),
        ("model.dropout=interval(0,0.5)", "uniform", {"low": 0.0, "high": 0.5}),
        ("model.lr=tag(log,interval(1e-4,1e-1))", "loguniform", {"low": 1e-4, "high": 1e-1}),
        ("trainer.max_epochs=tag(int,interval(2,5))", "randint", {"low": 2, "high": 6}),
    ],
)
def test_each_grammar_form_maps_to_its_search_space(override, kind, expected):
    d = dim(override)
    assert d.kind == kind
    for attr, value in expected.items():
        got = getattr(d, attr)
        assert got == pytest.approx(value) if attr != "values" or kind == "randint" else tuple(got) == value


def test_plain_values_are_fixed_and_the_command_line_wins_over_params():
    space = parse(["trainer=smoke", "model.lr=choice(0.1,0.2)", "+tags=[a]"],
                  {"model.lr": "interval(0.001,0.01)", "model.dropout": "interval(0,0.5)"})
    assert space.fixed == ["trainer=smoke", "+tags=[a]"]
    assert space.dims["model.lr"].kind == "choice"  # the command line replaced params
    assert space.dims["model.dropout"].kind == "uniform"


def test_trial_overrides_round_trip_through_hydra_grammar():
    space = parse(["trainer=smoke", "model=choice(mlp,cnn)", "model.hidden_dims=choice([64],[32,16])",
                   "model.lr=tag(log,interval(1e-4,1e-1))", "task_name=choice('a b',c)"])
    overrides = space.trial_overrides({"model": "cnn", "model.hidden_dims": [32, 16], "model.lr": 0.00123,
                                       "task_name": "a b"})
    assert overrides == ["trainer=smoke", "model=cnn", "model.hidden_dims=[32,16]", "model.lr=0.00123",
                         "task_name=a\\ b"]
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    assert [p.value() for p in parsed][1:] == ["cnn", [32, 16], 0.00123, "a b"]
    assert format_value(1e-5) == "1e-05" and format_value(True) == "True"


def test_to_ray_builds_ray_tune_domains():
    pytest.importorskip("ray")
    from ray.tune.search.sample import Categorical, Float, Integer

    space = parse(["a=choice(1,2)", "b=range(1,9)", "c=interval(0,1)", "d=tag(log,interval(1e-3,1))",
                   "e=tag(grid,choice(x,y))"]).to_ray()
    assert isinstance(space["a"], Categorical) and space["a"].categories == [1, 2]
    assert isinstance(space["b"], Integer) and (space["b"].lower, space["b"].upper) == (1, 9)
    assert isinstance(space["c"], Float) and (space["c"].lower, space["c"].upper) == (0.0, 1.0)
    assert isinstance(space["d"].get_sampler(), Float._LogUniform)
    assert space["e"] == {"grid_search": ["x", "y"]}


@pytest.mark.parametrize(
    "override, why",
    [
        ("model.lr=interval(0.1,0.01)", "lower bound 0.1 is not below the upper bound 0.01"),
        ("model.lr=tag(log,interval(0,1))", "a log interval needs a lower bound above 0"),
        ("model.lr=tag(fancy,interval(1,2))", "unknown tag 'fancy'"),
        ("model.lr=tag(grid,interval(1,2))", "an interval has no grid"),
        ("model.lr=tag(log,choice(1,2))", "choice takes only the grid tag"),
        ("data.batch_size=range(5,1)", "the range is empty"),
        ("model=glob(*)", "glob() selects config files"),
        ("model.lr=tag(int,interval(1.5,3))", "whole-number bounds"),
    ],
)
def test_bad_expressions_fail_in_one_sentence_naming_the_key(override, why):
    with pytest.raises(ConfigError) as err:
        parse([override])
    message = str(err.value)
    assert message.startswith(override.split("=")[0] + "=") and why in message
    assert "\n" not in message and message.count(". ") == 0


def test_a_bad_params_entry_names_its_hydra_sweeper_key():
    with pytest.raises(ConfigError, match=r"^hydra\.sweeper\.params\.model\.lr=interval\(1,x\) is not a valid"):
        parse([], {"model.lr": "interval(1,x)"})
