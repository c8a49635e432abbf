"""Rules of ``launcher=slurm`` that types and ranges cannot say, checked before anything is created.

No SLURM command runs here (``preflight`` asks the cluster, at submission): a time limit
SLURM parses and that outlasts the warning signal, names sbatch takes as one word, extra
sbatch options that do not fight the ones Aegis sets, one task per device for DDP, and
GPUs asked for whenever the Trainer wants them.
"""

from __future__ import annotations

import re

from omegaconf import DictConfig

from aegis.errors import Problems
from aegis.launch.children import check_children_compose
from aegis.launch.slurm import times

_NAME = re.compile(r"[A-Za-z0-9_.-]+(,[A-Za-z0-9_.-]+)*")  # a partition (or a list), an account, a QOS
_CONSTRAINT = re.compile(r"[A-Za-z0-9_.,:&|!*\[\]()-]+")
_MEMORY = re.compile(r"\d+[KMGT]?")
_OPTION = re.compile(r"--([a-z][a-z0-9-]*)(=.*)?", re.DOTALL)
GPU_ACCELERATORS = ("gpu", "cuda")
# sbatch options Aegis writes itself: a second value would silently win or break requeue/logs.
_OWN_OPTIONS = {
    "nodes": "launcher.nodes", "ntasks-per-node": "launcher.tasks_per_node", "partition": "launcher.partition",
    "time": "launcher.time", "account": "launcher.account", "qos": "launcher.qos",
    "gpus-per-node": "launcher.gpus_per_node", "cpus-per-task": "launcher.cpus_per_task", "mem": "launcher.mem",
    "constraint": "launcher.constraint", "exclusive": "launcher.exclusive", "signal": "launcher.signal_lead_s",
    "requeue": "launcher.max_requeues", "no-requeue": "launcher.max_requeues=0",
}
_RESERVED = ("job-name", "output", "error", "open-mode", "chdir", "parsable", "wrap", "ntasks", "array", "export")


def check(cfg: DictConfig, found: Problems) -> None:
    launcher = cfg.launcher
    _time(launcher, found)
    for key in ("partition", "account", "qos"):
        value = launcher.get(key)
        if value is not None and not _NAME.fullmatch(str(value)):
            found.add(f"launcher.{key}={value!r} is not a SLURM {key} name: expected letters, digits, '_', '.' "
                      "and '-' (a comma-separated list for partitions).", f"launcher.{key}")
    if launcher.constraint is not None and not _CONSTRAINT.fullmatch(str(launcher.constraint)):
        found.add(f"launcher.constraint={launcher.constraint!r} is not a SLURM constraint: expected node features "
                  "joined by & | , (e.g. 'a100&ib').", "launcher.constraint")
    if launcher.mem is not None and not _MEMORY.fullmatch(str(launcher.mem)):
        found.add(f"launcher.mem={launcher.mem!r} is not an sbatch --mem value: expected a number of megabytes "
                  "or one with a K, M, G or T suffix (e.g. 8G), or null for the partition's default.", "launcher.mem")
    if launcher.python is not None and not str(launcher.python).startswith("/"):
        found.add(f"launcher.python={launcher.python!r} is not an absolute path: expected the interpreter the "
                  "compute nodes run (e.g. /shared/venv/bin/python), or null for this one.", "launcher.python")
    _sbatch_args(launcher, found)
    for i, line in enumerate(launcher.setup):
        if "\n" in str(line) or "\r" in str(line):
            found.add(f"launcher.setup[{i}] holds a line break: expected one shell line per entry.", "launcher.setup")
    _gang(cfg, found)
    if not found:
        check_children_compose(cfg, found, "the SLURM tasks")


def _time(launcher: DictConfig, found: Problems) -> None:
    if found.refused("launcher.time", "launcher.signal_lead_s"):
        return
    limit = times.seconds(launcher.time)
    if limit is None:
        found.add(f"launcher.time={launcher.time!r} is not a SLURM time limit: expected {times.FORMS}.",
                  "launcher.time")
    elif limit <= launcher.signal_lead_s:
        found.add(f"launcher.time={launcher.time} ends before the warning signal launcher.signal_lead_s="
                  f"{launcher.signal_lead_s} could let the gang checkpoint: expected a time limit longer than "
                  f"{times.shown(launcher.signal_lead_s)}, or a smaller launcher.signal_lead_s.", "launcher.time")


def _sbatch_args(launcher: DictConfig, found: Problems) -> None:
    for i, arg in enumerate(launcher.sbatch_args):
        key = f"launcher.sbatch_args[{i}]"
        match = _OPTION.fullmatch(str(arg))
        if match is None or "\n" in str(arg):
            found.add(f"{key}={arg!r} is not one long sbatch option: expected '--option' or '--option=value' "
                      "(e.g. --reservation=maint).", "launcher.sbatch_args")
            continue
        option = match.group(1)
        if option in _OWN_OPTIONS:
            found.add(f"{key}={arg!r} sets what {_OWN_OPTIONS[option]} says: expected {_OWN_OPTIONS[option]} "
                      "instead.", "launcher.sbatch_args")
        elif option in _RESERVED:
            found.add(f"{key}={arg!r} is an option Aegis sets itself (the job's name, its log files in the run "
                      "dir, one job per run): expected another option.", "launcher.sbatch_args")


def _gang(cfg: DictConfig, found: Problems) -> None:
    launcher, strategy = cfg.launcher, cfg.strategy
    if found.refused("launcher.nodes", "launcher.tasks_per_node", "launcher.gpus_per_node"):
        return
    world = launcher.nodes * launcher.tasks_per_node
    if world > 1 and strategy.name != "ddp":
        found.add(f"launcher=slurm starts {world} tasks but strategy={strategy.name} trains in one: add "
                  "strategy=ddp (or launcher.nodes=1 launcher.tasks_per_node=1).")
    if strategy.name == "ddp":
        for key, flag in (("devices", "tasks_per_node"), ("num_nodes", "nodes")):
            value = strategy.get(key)
            if value is not None and value != launcher[flag]:
                found.add(f"strategy.{key}={value} disagrees with launcher.{flag}={launcher[flag]}: SLURM starts one "
                          f"task per device, so expected strategy.{key}={launcher[flag]} or null (read from SLURM).")
    accelerator = str(cfg.trainer.get("accelerator"))
    gpus = launcher.gpus_per_node
    if accelerator in GPU_ACCELERATORS and gpus == 0:
        found.add(f"trainer.accelerator={accelerator} on SLURM needs GPUs asked for: expected "
                  f"launcher.gpus_per_node={launcher.tasks_per_node} (one per task).", "launcher.gpus_per_node")
    elif gpus and accelerator == "cpu":
        found.add(f"launcher.gpus_per_node={gpus} asks SLURM for GPUs that trainer.accelerator=cpu never uses: "
                  "expected trainer.accelerator=gpu (or auto), or launcher.gpus_per_node=0.", "launcher.gpus_per_node")
    elif gpus and gpus != launcher.tasks_per_node:
        found.add(f"launcher.gpus_per_node={gpus} with launcher.tasks_per_node={launcher.tasks_per_node}: each task "
                  f"drives one GPU, so expected launcher.tasks_per_node={gpus}.", "launcher.tasks_per_node")
