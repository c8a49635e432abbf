"""Kubernetes: render, check and validate manifests; submit, follow, and reattach to jobs.

Rendering and checking import neither torch nor the ``kubernetes`` client; ``client``,
``follow`` and ``logs`` need the client and are imported only when a cluster is
contacted. Everything that differs between kinds (Job, PyTorchJob) is in ``kinds``.
"""
