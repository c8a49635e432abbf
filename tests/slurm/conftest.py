"""The real-SLURM tier (``make test-slurm``, ``pytest -m slurm``): a single-host SLURM 22.05
cluster with two nodes, brought up once per session by the ``slurm_cluster`` fixture
(see cluster.py for what runs where) and torn down at its end.

Every test in this folder is marked ``slurm``, so the other tiers (``-m "not ... and not
slurm"``) never start a cluster. The fixture skips, saying why, where a cluster cannot be
had: not root, or the Debian packages are missing and cannot be apt-installed. A cluster
that is installed but does not come up is an error, not a skip (the daemons' log tails are
in the message).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cluster import ClusterError, SlurmCluster, ensure_installed

HERE = Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Mark every test collected from this folder ``slurm`` (before ``-m`` selects)."""
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.slurm)


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A running cluster (:class:`cluster.SlurmCluster`) for the whole session.

    ``.conf`` slurm.conf, ``.env`` the environment for subprocesses (``SLURM_CONF`` set,
    no inherited SLURM_* job variables), ``.dir`` where everything lives, ``.nodes``
    (``n1``, ``n2``), ``.partitions`` (``debug`` default and preemptable with
    ``.grace_s`` of GraceTime; ``urgent`` preempts it), ``.node_cpus`` (per node: this
    machine's CPUs), ``.kill_wait_s``; helpers ``sbatch``, ``job``, ``state``,
    ``squeue_state``, ``sacct``, ``wait_for``, ``cancel``, ``cancel_all``.
    ``os.environ["SLURM_CONF"]`` points at it for the session (restored afterwards).
    """
    # CI sets AEGIS_REQUIRE_SLURM=1: there a cluster that cannot be had fails the tier instead of skipping it.
    give_up = pytest.fail if os.environ.get("AEGIS_REQUIRE_SLURM") == "1" else pytest.skip
    if os.geteuid() != 0:
        give_up("the SLURM tier needs root (it runs slurmctld/slurmd/slurmdbd/munged/mariadbd)")
    try:
        ensure_installed()
    except (ClusterError, OSError) as exc:
        give_up(f"no SLURM on this machine: {exc}")
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    cluster.start()
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(cluster.conf)
    try:
        yield cluster
    finally:
        if previous is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous
        cluster.stop()
