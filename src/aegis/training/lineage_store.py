"""Lineage into MLflow: the run's tags and artifacts, a registered version's tags and alias.

A resumed run adds and never overwrites. The first attempt sets the lineage tags (and
``config.yaml`` / ``overrides.yaml`` at the artifact root); every attempt N writes its own
``lineage/attempt-N/`` (config, overrides, all its tags as ``lineage.json``) and counts
itself in ``aegis.lineage.attempts``. A later attempt sets only tags the run lacks; where
its value differs from the first attempt's (a new commit, another image), the key is
named in ``aegis.lineage.changed`` (``attempt 2: mlflow.source.git.commit``) and the new
value is in that attempt's ``lineage.json``.

``client`` is an ``mlflow.tracking.MlflowClient``; no other MLflow API is used.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Optional

from aegis.training.lineage import ATTEMPTS, CHANGED, MAX_TAG_VALUE, Lineage, lineage_tags

log = logging.getLogger("aegis.training")

ATTEMPT_DIR = "lineage/attempt-{n}"
SOURCE_RUN_TAG = "aegis.source_run"


def record_run(client: Any, run_id: str, lineage: Lineage, number: Optional[int] = None) -> int:
    """Write one attempt's lineage to the run; returns the attempt's number (1 for the first).

    ``number`` is the attempt's number in the run dir's ``summary.json``: attempts killed before
    they reached MLflow (in start-up) still count, so ``aegis.lineage.attempts`` says what the
    run dir says. Without it (or below what the run already counts) the run's count goes up by one."""
    existing = dict(client.get_run(run_id).data.tags)
    try:
        before = int(existing.get(ATTEMPTS, "0"))
    except ValueError:
        before = 0
    attempt = number if number is not None and number > before else before + 1
    if ATTEMPTS not in existing:  # the run's first lineage (a new run; or one that starts over)
        # MLflow's own context tags set at creation (source name, GitPython's commit) are
        # replaced by this attempt's, which are the same facts collected without GitPython.
        to_set = dict(lineage.tags)
    else:
        to_set = {k: v for k, v in lineage.tags.items() if k not in existing}
        changed = sorted(k for k, v in lineage.tags.items() if k in existing and existing[k] != v)
        if changed:
            note = f"attempt {attempt}: {', '.join(changed)}"
            before = existing.get(CHANGED)
            to_set[CHANGED] = (f"{before}; {note}" if before else note)[-MAX_TAG_VALUE:]
    to_set[ATTEMPTS] = str(attempt)
    from mlflow.entities import RunTag

    client.log_batch(run_id, tags=[RunTag(k, v) for k, v in to_set.items()])
    folder = ATTEMPT_DIR.format(n=attempt)
    for name, text in lineage.files.items():
        client.log_text(run_id, text, f"{folder}/{name}")
        if ATTEMPTS not in existing and name in ("config.yaml", "overrides.yaml"):
            client.log_text(run_id, text, name)
    client.log_text(run_id, json.dumps(lineage.tags, indent=2, sort_keys=True) + "\n", f"{folder}/lineage.json")
    return attempt


def add_tags(client: Any, run_id: str, tags: dict[str, str]) -> None:
    """Tags learnt later in an attempt (where every rank runs), with the same rule: a tag the
    run lacks is set; one with another value is named in ``aegis.lineage.changed`` for the
    current attempt, and this attempt's value goes to ``lineage/attempt-N/<tag>.txt``."""
    existing = dict(client.get_run(run_id).data.tags)
    attempt = existing.get(ATTEMPTS, "1")
    to_set = {k: v for k, v in tags.items() if k not in existing}
    changed = sorted(k for k, v in tags.items() if k in existing and existing[k] != v)
    if changed:
        note = f"attempt {attempt}: {', '.join(changed)}"
        before = existing.get(CHANGED)
        to_set[CHANGED] = (f"{before}; {note}" if before else note)[-MAX_TAG_VALUE:]
        for key in changed:
            client.log_text(run_id, tags[key] + "\n", f"{ATTEMPT_DIR.format(n=attempt)}/{key}.txt")
    if to_set:
        from mlflow.entities import RunTag

        client.log_batch(run_id, tags=[RunTag(k, v) for k, v in to_set.items()])


def tag_version(client: Any, name: str, version: str, run_id: str, alias: Optional[str]) -> None:
    """Copy the source run's lineage onto a registered version, and point ``alias`` at it."""
    tags = lineage_tags(client.get_run(run_id).data.tags)
    tags[SOURCE_RUN_TAG] = run_id
    for key, value in sorted(tags.items()):
        client.set_model_version_tag(name, version, key, value)
    if alias:
        client.set_registered_model_alias(name, alias, version)
        log.info("Model %s version %s is now %s@%s", name, version, name, alias)
