"""The launcher protocol and the facts about a run that every launcher needs.

A launcher does three things, in the manner of TorchX's schedulers:
``render`` turns the config into the exact request (a command line, a manifest) with no
side effects, no cluster and no torch import, so that everything checkable is checked
there and a dry run can print it; ``submit`` acts on it and returns a handle; ``follow``
reports progress until a terminal state and returns the exit code. After submission,
``status``/``logs``/``cancel`` work from a ``JobRef`` (``job.json`` in the run dir), so
any later process can reattach.
"""

from __future__ import annotations

import abc
import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ContextManager, Generic, Mapping, Iterator, Optional, TypeVar

from omegaconf import DictConfig, OmegaConf

from aegis.core.context import RunContext  # the argument every launcher renders with

if TYPE_CHECKING:
    from aegis.errors import Problems
    from aegis.core.lifecycle import JobRef, JobStatus

# Bounds the launchers' keys share (``Launcher.bounds``).
MOST_NODES = (10_000, "nodes")
MOST_PROCESSES_PER_NODE = (256, "processes per node")
MOST_RESTARTS = (1_000, "restarts")
MOST_RETRIES = (1_000, "retries")
MOST_GPUS_PER_POD = (64, "GPUs per pod")

Rendered = TypeVar("Rendered")
Handle = TypeVar("Handle")


class Launcher(abc.ABC, Generic[Rendered, Handle]):
    name: str
    # Overrides a typical use adds beside launcher=<name> (e.g. strategy=ddp for a gang):
    # examples and the generated manifests in k8s/ use them.
    example_overrides: tuple[str, ...] = ()
    # The training runs on this machine: its classes must import here, its devices exist here.
    trains_here: bool = False
    # Where a Ray Tune search runs with this launcher, in a few words; None: a search cannot
    # (its trials train in-process in Ray workers, never as this launcher's jobs).
    search_runs: Optional[str] = None
    # Example manifests beyond the one per launcher that ``aegis.generate`` writes to k8s/:
    # (file name, overrides added to launcher=<name>). A launcher's own, so the generator
    # names no launcher.
    examples: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # Upper bounds of this launcher's own keys (relative to ``launcher.``): key -> (most
    # allowed, what it counts). ``aegis.config.bounds`` checks them with the shared ones, so
    # renaming a launcher's key touches only its folder. The values are the policy there:
    # far above any real run (``MOST_*`` below).
    bounds: Mapping[str, tuple[int, str]] = {}

    def reproducible(self) -> ContextManager[None]:
        """While entered, ``render`` gives the same output every time (``aegis.generate``'s
        checked-in files): a launcher that renders a random token pins it here. The default
        renders nothing random."""
        return contextlib.nullcontext()

    def world_size(self, cfg: DictConfig) -> Optional[int]:
        """How many ranks this launcher starts for ``cfg`` (shared rules such as
        ``fault.rank``'s ask this instead of reading launcher keys); None where it cannot say."""
        return None

    def check_unresolved(self, cfg: DictConfig, found: "Problems") -> None:
        """Rules on the config as written, before any value is resolved (add to ``found``)."""

    def check(self, cfg: DictConfig, found: "Problems") -> None:
        """This launcher's rules that types and ranges cannot say, one sentence per problem
        added to ``found``; no side effects, no torch, no cluster. Runs in validation, before
        anything is created."""

    def check_backend(self, cfg: DictConfig, found: "Problems") -> None:
        """Rules only the live backend can answer (a SLURM partition exists and can hold the
        request), one sentence per problem; runs in validation once every other rule passed,
        before anything is created, and is skipped where the backend cannot be reached."""

    @abc.abstractmethod
    def render(self, cfg: DictConfig, ctx: RunContext) -> Rendered:
        """The exact request, with no side effects."""

    @abc.abstractmethod
    def submit(self, rendered: Rendered) -> Handle:
        """Act on the rendered request."""

    @abc.abstractmethod
    def follow(self, handle: Handle) -> int:
        """Wait for a terminal state; return the run's exit code."""

    def launch(self, cfg: DictConfig, ctx: RunContext) -> int:
        return self.follow(self.submit(self.render(cfg, ctx)))

    # After submission, from any process: the job as ``job.json`` describes it
    # (``aegis.core.lifecycle``). ``aegis status/logs/cancel RUN`` call these.

    @abc.abstractmethod
    def status(self, ref: "JobRef") -> "JobStatus":
        """The job's state now, per replica, with exit code and reason when it ended."""

    @abc.abstractmethod
    def logs(self, ref: "JobRef", replica: Optional[str] = None, follow: bool = False) -> Iterator[str]:
        """Lines of one replica's log (the primary one by default); ``follow`` waits for more
        until the replica stops."""

    def describe(self, ref: "JobRef") -> str:
        """The job's handle in a few words, as ``aegis list`` and ``aegis status`` show it
        (``SLURM job 12``, ``pid 41 on host``): shared code asks the launcher, which alone knows
        what its ``ref.backend`` mapping holds. The default reads the fields every launcher
        shares, and ``ref.backend["label"]`` where a launcher wrote one."""
        return ref.describe()

    @abc.abstractmethod
    def cancel(self, ref: "JobRef") -> None:
        """Stop the job: a process gets SIGTERM (it checkpoints), a cluster object is deleted."""


@dataclass
class ProcessPlan:
    """A command line to run on this machine."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    description: str = ""
    run_dir: Path | None = None  # where the run it starts records itself
    run_id: str | None = None

    def shell(self) -> str:
        import shlex

        return " ".join(shlex.quote(a) for a in self.argv)


def gang_size(launcher: Any, per_node: str, nodes: str) -> Optional[int]:
    """``launcher.<per_node> x launcher.<nodes>``, where both are whole numbers (an elastic
    range such as ``1:4`` says no one size)."""
    each, count = launcher.get(per_node), launcher.get(nodes)
    return each * count if isinstance(each, int) and isinstance(count, int) else None


def as_plain(cfg: Any) -> Any:
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg
