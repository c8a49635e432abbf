"""Kubernetes: render, check and validate manifests; submit and follow them.

Rendering and checking import neither torch nor the ``kubernetes`` client; only
``client`` and ``follow`` need the client, and they import it when a job is submitted.
"""
