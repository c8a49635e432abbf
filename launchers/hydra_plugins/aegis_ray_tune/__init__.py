"""Aegis's Ray Tune sweeper for Hydra (``hydra/sweeper=ray_tune``, or ``launcher=ray-tune``)."""
