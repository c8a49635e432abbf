"""The validation pass's rules, one module per area of the config.

Each module adds its sentences to a ``Problems`` list and skips values another rule
already refused; ``aegis.config.validation`` runs them in order. They share how values
are read (``values``) and where the run goes (``aegis.config.where``), and never import
the pass itself, the sweep check or the Hydra callback above them (import-linter
contract in pyproject.toml), so an area can be read, changed and tested on its own.
"""
