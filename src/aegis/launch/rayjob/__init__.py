"""``launcher=rayjob``: a search (``search=ray-tune``) run on a Ray cluster in Kubernetes, as a
KubeRay RayJob (``ray.io/v1``).

The Ray Tune sweeper hands the composed search to this launcher before Ray is imported
(``hydra_plugins.aegis_ray_tune._impl``); the RayJob's entrypoint is the same search on the
in-cluster Ray (``launcher=local hydra.sweeper.address=auto``), its overrides pinned. KubeRay
creates the Ray cluster (a head group and one worker group on the training image), submits
the entrypoint from a submitter pod and deletes the cluster when the search ends.

``schema``, ``kind``, ``entrypoint`` (the command and how it survives KubeRay's shells),
``render``, ``validate``, ``checks`` and ``launcher``, as for every Kubernetes launcher.
"""
