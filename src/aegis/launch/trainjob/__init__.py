"""``launcher=trainjob``: a Kubeflow Trainer v2 TrainJob (``trainer.kubeflow.org/v1alpha1``) on a
torch runtime, ``nodes`` pods each running torchrun driven by the ``PET_*`` variables the
runtime's torch plugin injects.

``schema``, ``kind``, ``render``, ``validate`` (the fields Aegis emits and Trainer's admission
rules the CRD schema does not encode), ``checks`` and ``launcher``, as for every Kubernetes
launcher, and ``runtime``: Aegis's ClusterTrainingRuntime ``aegis-torch`` (the default
``launcher.runtime``), whose JobSet carries the retry rules a TrainJob cannot. Pod-level settings (volumes, security, grace period) travel as a ``runtimePatches``
entry, the only pod-level surface Trainer v2.3 offers a TrainJob.
"""
