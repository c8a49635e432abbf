"""SLURM's commands, run and parsed in one place: sbatch, scontrol, squeue, sacct, scancel, sinfo.

Everything Aegis learns from or asks of SLURM goes through here, as plain data
(``SlurmJob``, ``Partition``, ``Node``), from the submit host: no SSH to compute nodes.
A command that is missing, times out or fails becomes one ``SlurmError`` sentence
carrying SLURM's own words. ``scontrol`` knows a job until ``MinJobAge`` after it ends;
``sacct`` (with accounting on) knows it afterwards.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Optional, Sequence

from aegis.errors import AegisError

TIMEOUT_S = 30.0
_KEY = re.compile(r"(?:^|\s)([A-Za-z][A-Za-z:/_]*)=")


class SlurmError(AegisError):
    """A SLURM command failed, or SLURM is not reachable from here."""


def available() -> bool:
    """SLURM's client commands are installed here (a submit host)."""
    return shutil.which("sbatch") is not None and shutil.which("scontrol") is not None


def run(args: Sequence[str], *, check: bool = True, timeout: float = TIMEOUT_S, cwd: Optional[str] = None,
        failed: Optional[str] = None) -> subprocess.CompletedProcess:
    """Run one SLURM command; with ``check``, a non-zero exit is a ``SlurmError`` that starts
    with ``failed`` (default: the command) and ends with SLURM's last line."""
    try:
        done = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, cwd=cwd)
    except FileNotFoundError:
        raise SlurmError(f"{args[0]} is not installed on this machine: launcher=slurm submits from a SLURM "
                         "submit host (sbatch, squeue, scontrol, scancel on PATH).") from None
    except subprocess.TimeoutExpired:
        raise SlurmError(f"{args[0]} did not answer within {timeout:.0f} s: is slurmctld up (scontrol ping)?") from None
    if check and done.returncode != 0:
        raise SlurmError(f"{failed or ' '.join(args[:2]) + ' failed'}: {last_words(done.stderr or done.stdout)}")
    return done


def last_words(text: str) -> str:
    """SLURM's error as one line (``sbatch: error: Batch job submission failed: Invalid partition name``)."""
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def parse_pairs(line: str) -> dict[str, str]:
    """``scontrol show -o`` output: ``Key=value Key2=value with spaces`` -> dict."""
    found = list(_KEY.finditer(line))
    pairs = {}
    for i, match in enumerate(found):
        end = found[i + 1].start() if i + 1 < len(found) else len(line)
        pairs[match.group(1)] = line[match.end():end].strip()
    return pairs


@dataclass(frozen=True)
class SlurmJob:
    """What SLURM says of one job now."""

    job_id: str
    state: str  # SLURM's word: PENDING, RUNNING, COMPLETED, TIMEOUT, ...
    name: str = ""
    reason: Optional[str] = None  # why it is pending, or how it ended (None for SLURM's "None")
    exit_code: Optional[int] = None
    signal: Optional[int] = None
    restarts: int = 0
    nodes: Optional[str] = None
    stdout: Optional[str] = None
    work_dir: Optional[str] = None
    source: str = "scontrol"  # or sacct: where the answer came from

    @property
    def code(self) -> Optional[int]:
        """The exit status as a shell would show it (128 + signal for a signal)."""
        if self.signal:
            return 128 + self.signal
        return self.exit_code


def _exit(value: str) -> tuple[Optional[int], Optional[int]]:
    match = re.fullmatch(r"(\d+):(\d+)", value or "")
    return (int(match.group(1)), int(match.group(2))) if match else (None, None)


def _reason(value: Optional[str]) -> Optional[str]:
    return None if value in (None, "", "None", "(null)") else value


def job(job_id: str) -> Optional[SlurmJob]:
    """The job as scontrol knows it, else as accounting does; None when SLURM forgot it."""
    done = run(["scontrol", "show", "job", "-o", str(job_id)], check=False)
    line = done.stdout.strip().splitlines()[0] if done.returncode == 0 and done.stdout.strip() else ""
    if line:
        pairs = parse_pairs(line)
        code, sig = _exit(pairs.get("ExitCode", ""))
        return SlurmJob(
            job_id=pairs.get("JobId", str(job_id)), state=pairs.get("JobState", "UNKNOWN").split()[0],
            name=pairs.get("JobName", ""), reason=_reason(pairs.get("Reason")), exit_code=code, signal=sig,
            restarts=int(pairs["Restarts"]) if pairs.get("Restarts", "").isdigit() else 0,
            nodes=_reason(pairs.get("NodeList")), stdout=pairs.get("StdOut"), work_dir=pairs.get("WorkDir"),
        )
    if "Invalid job id" not in (done.stderr or "") and done.returncode != 0:
        raise SlurmError(f"scontrol show job {job_id} failed: {last_words(done.stderr)}")
    return accounting(job_id)


def accounting(job_id: str) -> Optional[SlurmJob]:
    """The job's allocation record in ``sacct`` (None without accounting, or for an unknown job)."""
    if shutil.which("sacct") is None:
        return None
    done = run(["sacct", "-j", str(job_id), "-X", "-n", "-P",
                "--format=JobID,JobName,State,ExitCode,NodeList,WorkDir,Reason"], check=False)
    rows = [line.split("|") for line in done.stdout.strip().splitlines() if line.count("|") >= 6]
    rows = [row for row in rows if row[0] == str(job_id)]
    if done.returncode != 0 or not rows:
        return None
    row = rows[-1]  # a requeued job's latest record
    code, sig = _exit(row[3])
    return SlurmJob(job_id=row[0], state=row[2].split()[0], name=row[1], reason=_reason(row[6]), exit_code=code,
                    signal=sig, nodes=_reason(row[4]), work_dir=row[5] or None, source="sacct")


def submit(script_path: str, cwd: Optional[str] = None) -> tuple[str, Optional[str]]:
    """``sbatch --parsable``: (job id, cluster name or None)."""
    done = run(["sbatch", "--parsable", script_path], cwd=cwd, failed="sbatch refused the job")
    answer = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    job_id, _, cluster = answer.partition(";")
    if not job_id.isdigit():
        raise SlurmError(f"sbatch answered {answer!r}, not a job id.")
    return job_id, cluster or None


def cancel(job_id: str, signal: Optional[str] = None, timeout: float = TIMEOUT_S) -> None:
    """``scancel``: the job ends; with ``signal``, that signal goes to its steps' tasks only."""
    run(["scancel", *([f"--signal={signal}"] if signal else []), str(job_id)], timeout=timeout)


def requeue(job_id: str) -> tuple[bool, str]:
    """``scontrol requeue``: (done, SLURM's words)."""
    done = run(["scontrol", "requeue", str(job_id)], check=False)
    return done.returncode == 0, last_words(done.stderr or done.stdout) if done.returncode else "requeued"


@dataclass(frozen=True)
class Partition:
    name: str
    default: bool = False
    state: str = "UP"
    max_time: Optional[str] = None  # SLURM's spelling; UNLIMITED/INFINITE for none


@dataclass(frozen=True)
class Node:
    name: str
    cpus: int
    memory_mb: int
    gpus: int = 0
    state: str = ""
    partitions: tuple[str, ...] = field(default_factory=tuple)


def partitions() -> dict[str, Partition]:
    done = run(["scontrol", "show", "partition", "-o"])
    found = {}
    for line in done.stdout.strip().splitlines():
        pairs = parse_pairs(line)
        if "PartitionName" not in pairs:
            continue
        found[pairs["PartitionName"]] = Partition(
            name=pairs["PartitionName"], default=pairs.get("Default") == "YES", state=pairs.get("State", "UP"),
            max_time=pairs.get("MaxTime"))
    return found


def gpus_in(gres: str) -> int:
    """GPUs in a node's gres (``gpu:a100:4(S:0-1),nic:1`` -> 4)."""
    total = 0
    for item in (gres or "").split(","):
        parts = item.split("(")[0].split(":")
        if parts and parts[0] == "gpu":
            count = parts[-1]
            total += int(count) if count.isdigit() else 1
    return total


def nodes(partition: str) -> list[Node]:
    done = run(["sinfo", "-h", "-N", "-p", partition, "-o", "%N|%c|%m|%G|%t|%P"])
    found = []
    for line in done.stdout.strip().splitlines():
        parts = line.split("|")
        if len(parts) < 6 or not parts[1].isdigit():
            continue
        memory = parts[2].rstrip("+")
        found.append(Node(parts[0], int(parts[1]), int(memory) if memory.isdigit() else 0, gpus_in(parts[3]),
                          parts[4], tuple(p.rstrip("*") for p in parts[5].split(","))))
    return found


def node_address(name: str) -> Optional[str]:
    """The address SLURM reaches node ``name`` by (its NodeAddr)."""
    done = run(["scontrol", "show", "node", "-o", name], check=False)
    pairs = parse_pairs(done.stdout.strip().splitlines()[0]) if done.returncode == 0 and done.stdout.strip() else {}
    return pairs.get("NodeAddr") or None
