"""Every ``python train.py ...`` command in README.md and docs/*.md composes and validates as
written, and every ``Error:`` line a doc shows under a command is what validation says.

An example that drifts from the config (a renamed key, a group option that moved) would
otherwise be found by the first reader who pastes it. Composing and validating in-process
is what ``python train.py`` does before anything is created, and costs ~0.1 s a command;
the slow and cluster tiers run the commands that train.

Placeholders are filled the way a reader would (an image for ``$IMAGE`` or ``...``, a sha256
for ``<sha256>``); the local files data.md trains on are made in a temp dir. Templates of
what a pod or task runs (``<your overrides> ...``) are not commands. A sweep (``-m``) is
validated with each swept key at its first value; a search's space is parsed by Hydra's own
grammar, and the base config validated without it.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from hydra import initialize_config_dir

from aegis.cli import prepare
from aegis.config.validation import problems
from aegis.errors import ConfigError
from composing import compose as composed
from helpers import CONF, REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
IMAGE = "ghcr.io/acme/aegis:0.1.0"
FILLED = {"$IMAGE": IMAGE, "launcher.image=...": f"launcher.image={IMAGE}", "REG/aegis:TAG": IMAGE,
          "<the sha256>": "0" * 64, "<sha256>": "0" * 64}
# Refusals only a live SLURM cluster gives (its partitions, its nodes' GPUs): the SLURM tier's
# preflight tests (tests/slurm/test_launcher.py) check these sentences against a real cluster.
NEEDS_A_CLUSTER = ("launcher=slurm launcher.partition=gpu", "launcher=slurm launcher.gpus_per_node=1 trainer.accelerator=gpu")
SEARCH_SPACE = re.compile(r"^[\w.+/-]+=(tag|interval|range|choice|glob)\(")


def _commands() -> list[tuple[str, str, str | None]]:
    """(where, the overrides, the Error: line shown under it or None) of every command."""
    found = []
    for doc in DOCS:
        for block in re.findall(r"```[a-z]*\n(.*?)```", doc.read_text(), re.S):
            lines = block.replace("\\\n", " ").splitlines()
            for index, line in enumerate(lines):
                match = re.match(r"\s*(?:\$\s*)?python3? train\.py(?P<rest>.*)", line)
                if not match:
                    continue
                rest = re.split(r"\s+#", match.group("rest"))[0].strip().rstrip("&").strip()
                if "<your overrides>" in rest or "<id>" in rest or "<run id>" in rest:
                    continue  # what a launcher's processes run, not a command of the reader's
                shown = next((later.strip() for later in lines[index + 1:] if later.strip()), None)
                error = shown if shown and shown.startswith("Error:") else None
                found.append((f"{doc.name}: python train.py {rest}", rest, error))
    return found


COMMANDS = _commands()


def _overrides(rest: str) -> list[str]:
    for placeholder, value in FILLED.items():
        rest = rest.replace(placeholder, value)
    args = [a for a in shlex.split(rest) if a not in ("-m", "--multirun", "...")]  # "...": overrides left out
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(args)  # a space Hydra cannot parse fails here
    kept = []
    for arg, override in zip(args, parsed):
        if SEARCH_SPACE.match(arg):
            continue  # a search space: the sweeper's to sample
        if override.is_sweep_override():
            arg = f"{override.get_key_element()}={next(iter(override.sweep_string_iterator()))}"
        kept.append(arg)
    return kept


@pytest.fixture()
def data_md_files(tmp_path, monkeypatch):
    """The local sources data.md trains on: an image folder and an npz."""
    from PIL import Image

    # Enough of each class for a stratified train/val/test split: the slow tier trains on them.
    for label in ("cat", "dog"):
        (tmp_path / "pets" / label).mkdir(parents=True)
        for n in range(20):
            Image.new("RGB", (8, 8), (n * 12, 0, 0)).save(tmp_path / "pets" / label / f"{n}.png")
    np.savez(tmp_path / "set.npz", x=np.zeros((60, 4), np.float32), y=np.arange(60) % 2)
    (tmp_path / "path" / "to").mkdir(parents=True)
    with zipfile.ZipFile(tmp_path / "path" / "to" / "other.ckpt", "w") as ckpt:  # README's resume=...: the
        ckpt.writestr("archive/data.pkl", b"")  # zip archive torch.save writes (validation reads no more)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AEGIS_OUTPUT_ROOT", str(tmp_path / "outputs"))


def test_the_docs_have_commands_to_check():
    assert len(COMMANDS) >= 30
    assert sum(error is not None for _, _, error in COMMANDS) >= 1


@pytest.mark.parametrize("where,rest,error", COMMANDS, ids=[c[0][:90] for c in COMMANDS])
def test_every_documented_command_composes_and_validates_as_shown(where, rest, error, data_md_files, tmp_path):
    if rest in NEEDS_A_CLUSTER:
        pytest.skip("a refusal only a live SLURM cluster gives (the SLURM tier checks it)")
    overrides = _overrides(rest)
    prepare()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        try:
            cfg = composed(overrides, hydra_config=True)
            sentences = problems(cfg).sentences
        except ConfigError as exc:
            sentences = [str(exc)]
    said = ["Error: " + s for s in sentences]
    if error is None:
        assert said == [], where
        return
    if not said:  # a search space's own refusal: the sweeper's, so ask train.py itself
        done = subprocess.run([sys.executable, str(REPO / "train.py"), *shlex.split(rest)], cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)
        said = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
        assert done.returncode != 0, where
    shown = error[:-3] if error.endswith("...") else error  # a doc may cut a long sentence short
    assert said and (said[0] == error or (shown != error and said[0].startswith(shown))), (where, said)
