"""What ``train.py`` does with a composed config: validate, pick the launcher, launch.

The process exit status is the run's: a launcher returns an exit code and a non-zero
one ends the process with it (in a multirun, the job is reported failed instead, so
Hydra still runs the remaining jobs before it exits non-zero). A job stopped by SIGTERM
(exit 143) stops the sweep too: the signal was meant for the process, not for one job,
and a preempted machine has no time for the jobs after it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import traceback
import warnings
from collections.abc import Iterator
from typing import Any, Callable

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from aegis.config.resolvers import register_resolvers
from aegis.config.schema import register_configs
from aegis.config.validation import validate
from aegis.errors import AegisError, ConfigErrors, error_lines
from aegis.core.rank_notes import PREEMPTED_EXIT_CODE
from aegis.core.registry import get_launcher
from aegis.core.context import RunContext
from aegis.redact import mask_credentials

log = logging.getLogger("aegis")


class JobFailed(AegisError):
    """A multirun job whose launcher returned a non-zero exit code."""


# conf/hydra/launcher/{submitit_local,submitit_slurm,ray}.yaml keep the plugins' option
# names and are checked against the plugins' schemas of the same name, which Hydra 1.3
# still does but announces as deprecated on every run.
_SCHEMA_MATCH_WARNING = r"\n'hydra/launcher/(submitit_local|submitit_slurm|ray)' is validated against ConfigStore schema"


def prepare() -> None:
    """Register schemas and resolvers; must run before Hydra composes."""
    warnings.filterwarnings("ignore", message=_SCHEMA_MATCH_WARNING)
    register_configs()
    register_resolvers()


def check_overrides(argv: list[str]) -> None:
    """Each override Hydra cannot parse (``model.lr=interval(1e-4,x)``) is one sentence; exit 1 after all."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:  # Hydra's own command-line parser, private (docs/internals.md)
        from hydra._internal.utils import get_args_parser

        args, _ = get_args_parser().parse_known_args(argv)
    except Exception:  # internals changed: Hydra reports a bad override itself, as before
        return
    parser = OverridesParser.create()
    bad = 0
    for line in args.overrides:
        try:
            parser.parse_override(line)
        except HydraException as exc:
            reason = " ".join(str(exc).split("\n")[1:2] or [str(exc)]).strip().rstrip(".")
            print(f"Error: {mask_credentials(line)} is not a valid override: {mask_credentials(reason)} (see "
                  "https://hydra.cc/docs/advanced/override_grammar/basic/).", file=sys.stderr)
            bad += 1
    if bad:
        sys.exit(1)


def _raised_in_job(exc: BaseException) -> bool:
    """True when ``exc`` came out of the task function (Hydra's ``run_job``), not composition."""
    return any(frame.name == "run_job" for frame in traceback.extract_tb(exc.__traceback__))


def _error_lines(exc: BaseException) -> list[str] | None:
    """The printed form of a user error, one ``Error:`` line per problem (a ``ConfigErrors``
    lists several), or None for anything that deserves a traceback."""
    from aegis.config.hydra_errors import sentence

    if isinstance(exc, ConfigErrors):
        return error_lines(exc)
    if isinstance(exc, AegisError):
        text = str(exc).strip()
        return [f"Error: {mask_credentials(text)}"] if "\n" not in text else None
    line = None if _raised_in_job(exc) else sentence(exc)
    return None if line is None else [f"Error: {mask_credentials(line)}"]  # Hydra's quote the override


@contextlib.contextmanager
def one_line_errors(more: Callable[[BaseException], list[str]] | None = None) -> Iterator[None]:
    """While active, Hydra's composition errors and Aegis's own are ``Error:`` lines (one per problem), exit 1.

    Hydra prints them through ``hydra._internal.utils.run_and_report`` in three or more
    lines; this wraps that function, leaves every other exception (and HYDRA_FULL_ERROR=1)
    to Hydra, and puts it back afterwards. ``more`` gives the sentences of further problems
    when a composition error stopped at the first (aegis.config.collect).
    """
    try:  # private (docs/internals.md)
        from hydra._internal import utils as hydra_utils

        original = hydra_utils.run_and_report
    except Exception:  # a Hydra without this internal: its own reporting, as before
        yield
        return

    def run_and_report(func: Callable[[], Any]) -> Any:
        def reported() -> Any:
            try:
                return func()
            except Exception as exc:
                lines = None if os.environ.get("HYDRA_FULL_ERROR") == "1" else _error_lines(exc)
                if lines is None:
                    raise
                if more is not None and not isinstance(exc, AegisError):
                    lines += [f"Error: {mask_credentials(text)}" for text in more(exc)]
                for line in lines:
                    print(line, file=sys.stderr)
                from aegis.failures.rank import note_user_error

                note_user_error(exc, lines)  # a rank of a gang: its supervisor's report names these lines
                sys.exit(1)

        return original(reported)

    hydra_utils.run_and_report = run_and_report
    try:
        yield
    finally:
        hydra_utils.run_and_report = original


def run(cfg: DictConfig) -> None:
    multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    if multirun:
        # A single run was validated by the ValidateOnStart callback before Hydra created
        # anything; a sweep's callback saw only the base config, so each job is checked here.
        validate(cfg)
    context = RunContext.from_hydra(cfg, HydraConfig.get())
    launcher = get_launcher(cfg.launcher.name)
    code = launcher.launch(cfg, context)
    if code == 0:
        return
    if multirun and code == PREEMPTED_EXIT_CODE:
        log.error("Sweep stopped: job %s was stopped by SIGTERM (its run dir %s resumes it); the jobs after it "
                  "were not started.", context.run_id, context.run_dir)
        sys.exit(code)  # not an Exception: Hydra's launcher lets it end the sweep
    if multirun:
        raise JobFailed(f"job {context.run_id} ({context.run_dir}) exited with code {code}.")
    sys.exit(code)
