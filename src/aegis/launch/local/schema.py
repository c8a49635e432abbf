"""The config of ``launcher=local``: nothing to choose, the run happens in this process."""

from __future__ import annotations

from dataclasses import dataclass

from aegis.config.schema import LauncherConfig


@dataclass
class LocalLauncherConfig(LauncherConfig):
    name: str = "local"
