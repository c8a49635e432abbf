"""``launcher=pytorchjob``: a Kubeflow PyTorchJob, one Master and ``nodes - 1`` Workers, each
running torchrun driven by the operator's ``PET_*`` variables.

``schema``, ``kind``, ``render``, ``validate`` (CRD fields and the operator's admission rules) and
``launcher``, as for every Kubernetes launcher.
"""
