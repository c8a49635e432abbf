"""The Hydra callback that runs validation before Hydra creates the run (or sweep) directory.

``conf/hydra/default.yaml`` names it in ``hydra.callbacks``. It is apart from the rules
and the pass because it is the one place that talks to Hydra's callback protocol and to
the terminal: Hydra turns exceptions raised in callbacks into warnings and carries on,
so this module prints every problem, one ``Error:`` line each, and exits 1 itself.
"""

from __future__ import annotations

import sys
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from aegis.config import where
from aegis.config.sweep import validate_sweep
from aegis.config.validation import problems
from aegis.errors import ConfigError, error_lines
from aegis.redact import mask_credentials


class ValidateOnStart(Callback):
    """Hydra callback: validate before Hydra creates the run (or sweep) directory.

    Hydra turns exceptions raised in callbacks into warnings and carries on, so a
    failure here prints every problem, one ``Error:`` line each, and exits 1 itself.
    """

    def _validate(self, config: DictConfig, sweep: bool = False) -> None:
        HydraConfig.instance().set_config(config)  # lets ${hydra:...} resolve here
        try:
            found = problems(config)
            from aegis.core.registry import hydra_launcher_rules  # hydra/launcher=submitit_slurm's, ...

            for check_hydra_launcher in hydra_launcher_rules():
                found.run(check_hydra_launcher, config)
            if not found:  # the config holds together: ask the backend whether it can ever run it
                found.run(where.launcher(config).check_backend, config, found)
            if sweep and not found:  # each job would repeat the base config's problems
                found.run(validate_sweep, config)
            found.raise_if_any()
        except ConfigError as exc:
            for line in error_lines(exc):
                print(line, file=sys.stderr)
            sys.exit(1)
        except OmegaConfBaseException as exc:
            key = getattr(exc, "full_key", None)
            reason = str(exc).splitlines()[0].rstrip(".")
            print(f"Error: {key + ' ' if key else ''}could not be read from the config: {mask_credentials(reason)}.",
                  file=sys.stderr)
            sys.exit(1)
        except Exception:  # a bug in validation: Hydra would only warn and run anyway
            import traceback

            traceback.print_exc()
            sys.exit(1)

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._validate(config)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._validate(config, sweep=True)
