"""A model of one's own (README "Bring your own model") is checked like Aegis's (issue 22 #9).

``conf/model/mine.yaml`` naming ``mypkg.tiny.TinyNet`` has no schema: ``model.width=abc`` for
``width: int`` created a run dir and ended in a 57-line InstantiationException, and
``model.widht=3`` got no "did you mean". Validation now reads the class's ``__init__``
annotations and parameter names from source (aegis.config.annotations), without importing it.
"""

from __future__ import annotations

import os

import pytest

from aegis.config.hydra_errors import sentence
from aegis.config.validation import problems
from helpers import run_train

TINY = '''\
from typing import Literal, Optional, Sequence

import lightning.pytorch as L


class TinyNet(L.LightningModule):
    def __init__(self, input_shape: Sequence[int], num_classes: int, width: int = 8, lr: float = 1e-3,
                 act: Literal["relu", "gelu"] = "relu", kernel: tuple[int, int] = (3, 3),
                 tag: Optional[str] = None, sizes: list[int] = ()):
        super().__init__()
'''
MINE = """\
_target_: mypkg.tiny.TinyNet
input_shape: ${data.input_shape}
num_classes: ${data.num_classes}
width: 8
"""


@pytest.fixture
def own(tmp_path, monkeypatch):
    """A package mypkg with TinyNet on sys.path, and conf/model/mine.yaml on Hydra's search path."""
    (tmp_path / "pkg" / "mypkg").mkdir(parents=True)
    (tmp_path / "pkg" / "mypkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "mypkg" / "tiny.py").write_text(TINY)
    (tmp_path / "conf" / "model").mkdir(parents=True)
    (tmp_path / "conf" / "model" / "mine.yaml").write_text(MINE)
    monkeypatch.syspath_prepend(str(tmp_path / "pkg"))
    monkeypatch.setenv("AEGIS_OUTPUT_ROOT", str(tmp_path / "root"))
    return [f"hydra.searchpath=[file://{tmp_path / 'conf'}]", "model=mine"]


def test_own_model_validates(compose, own):
    assert problems(compose(*own)).sentences == []
    assert problems(compose(*own, "model.width=16", "+model.act=gelu", "+model.kernel=[5,5]", "+model.tag=x",
                            "+model.sizes=[1,2]", "+model.lr=1")).sentences == []


@pytest.mark.parametrize("override,expected", [
    ("model.width=abc", "model.width='abc' is invalid: expected a whole number (mypkg.tiny.TinyNet takes width: int)."),
    ("model.width=3.5", "model.width=3.5 is invalid: expected a whole number"),
    ("+model.lr=fast", "model.lr='fast' is invalid: expected a number"),
    ("+model.act=tanh", "model.act='tanh' is invalid: expected one of 'relu', 'gelu'"),
    ("+model.kernel=[3]", "model.kernel=[3] is invalid: expected a list of 2"),
    ("+model.sizes=[1,x]", "model.sizes=[1,x] is invalid: expected a list of whole numbers"),
    ("+model.widht=3", "model.widht is not an argument of mypkg.tiny.TinyNet (did you mean model.width?)"),
])
def test_own_model_values_are_checked_against_its_annotations(compose, own, override, expected):
    sentences = problems(compose(*own, override)).sentences
    assert len(sentences) == 1 and expected in sentences[0], sentences


def test_own_model_every_bad_value_is_listed(compose, own):
    sentences = problems(compose(*own, "model.width=abc", "+model.act=tanh", "+model.kernel=[3]")).sentences
    assert len(sentences) == 3, sentences


def test_own_model_key_typo_without_plus_says_did_you_mean(compose, own):
    with pytest.raises(Exception) as info:
        compose(*own, "model.widht=3")
    assert "model.widht is not an argument of mypkg.tiny.TinyNet (did you mean model.width?)" in sentence(info.value)


def test_own_model_bad_value_through_train_py_creates_nothing(own, tmp_path):
    root = tmp_path / "root"
    result = run_train([*own, "model.width=abc", "logger=none"], root,
                       env={"PYTHONPATH": os.pathsep.join([str(tmp_path / "pkg"), os.environ.get("PYTHONPATH", "")])})
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1 and len(lines) == 1 and "model.width='abc' is invalid" in lines[0], result.stderr
    assert "Traceback" not in result.stderr and not root.exists()
