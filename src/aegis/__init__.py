"""Aegis: one Hydra config, the same Lightning training, any launcher.

Importing the package is free of side effects and of torch/lightning: the launch
path (compose, validate, render) must stay about as cheap as importing Hydra.
"""

__version__ = "0.1.0"
