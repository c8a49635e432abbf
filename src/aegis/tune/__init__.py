"""Hyperparameter search over Ray Tune: search space, trials, results, tracking.

The Hydra side lives in ``launchers/hydra_plugins/aegis_ray_tune``; everything here is
usable without Hydra's plugin machinery. Nothing here imports Ray at import time.
"""
