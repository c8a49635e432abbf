"""Launchers: one folder each, named in one table (``aegis.core.registry``).

A launcher's folder holds everything that is that launcher's: its config schema
(``schema``), its rules, its renderer and backend (``launcher``), and for a Kubernetes
launcher the kind it submits (``kind``). What the Kubernetes launchers share is
``aegis.launch.kubernetes``; what every launcher shares with the layers below it (the run
context, ``job.json``, the rank notes) is ``aegis.core``. Adding a launcher: docs/launchers.md.
The registry's names are re-exported here for callers that predate ``aegis.core.registry``.
"""

from aegis.core.registry import LAUNCHERS, Registered, get_launcher, kinds, schemas, search_launchers  # noqa: F401
