"""Why a run failed, in one record, from whoever saw it: the one package for failures.

- ``record``: the :class:`~aegis.failures.record.Failure` itself (what, where, which rank,
  the log tail, masked), its MLflow tags and its ``summary.json`` form;
- ``rank``: a rank's own account (torchelastic's error file, the gang supervisor's notes
  folder, a config error before training);
- ``triage``: which rank's failure is the gang's cause (the rank that failed on its own
  account, not the peers that lost it);
- ``report``: the failure on the terminal, in the run dir's ``summary.json`` and on the
  MLflow run;
- ``tags``: a Kubernetes job's failure on its MLflow run, from the submitting machine.

Kubernetes triage (reading pods, container states and events into a ``Failure``) stays in
``aegis.k8s.triage``: it needs the cluster client and the kinds, and the follower in
``aegis.k8s`` calls it, so moving it here would make this package import ``aegis.k8s``
while ``aegis.k8s`` imports this one (a cycle), and would put the kubernetes client under
training, which imports ``rank``. Everything here is torch-free and imports only
``aegis.core``, ``aegis.redact`` and its own modules, so training, the launchers, the
Kubernetes plumbing and the search may all use it.
"""
