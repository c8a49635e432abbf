"""Aegis's Ray Tune sweeper for Hydra (``hydra/sweeper=ray_tune``, selected by ``search=ray-tune``)."""
