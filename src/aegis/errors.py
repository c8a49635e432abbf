"""User-facing errors.

They subclass Hydra's ``CompactHydraException`` so that ``@hydra.main`` prints only the
message (no traceback) and exits 1: a bad override is the user's input, not a bug.
"""

from hydra.errors import CompactHydraException


class AegisError(CompactHydraException):
    """An error the user can fix; its message says which key or file and what is valid."""


class ConfigError(AegisError):
    """A composed config that Aegis refuses to run."""
