"""The lowest layer: torch-free records, names and helpers that every other package may import.

What a launcher, the Kubernetes plumbing, training and the search all read lives here, so
none of them has to import another to get it: the run context a launcher renders with
(``context``), a job's record and states (``lifecycle``: ``JobRef``, ``job.json``), the rank
notes a gang's supervisor reads and the variables that name their folder and grace period
(``rank_notes``), how the user asked for the run (``launch_origin``), atomic JSON files
(``files``), Kubernetes quantities that config bounds compare (``quantities``), what the
``logger`` option does (``logger_kind``: Aegis's MLflow layer or not, a Lightning logger or
none) and the table of launchers (``registry``, loaded by name on demand). Nothing here imports torch,
Lightning, the kubernetes client or any Aegis package but ``aegis.errors``; the import
contracts in pyproject.toml hold it to that (docs/launchers.md, "Layers").
"""
