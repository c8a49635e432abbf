"""A real single-host SLURM 22.05 cluster for tests, brought up and down by subprocess.

Debian 12's packages (slurm-wlm, slurmdbd, munge, mariadb-server): :func:`ensure_installed`
apt-installs them when missing (root only). Everything the cluster writes lives under one
folder, ``SlurmCluster.dir``::

    etc/slurm.conf, etc/slurmdbd.conf (0600)    the configuration
    munge/munge.socket, munge/key/munge.key     a munged of its own (its own key and socket)
    mysql/                                      the MariaDB datadir (loopback TCP + own socket)
    state/ctld, state/<node>                    StateSaveLocation, SlurmdSpoolDir per node
    run/*.pid, run/mysqld.sock                  pid files (stop() kills by them)
    log/*.log                                   every daemon's log (tail shown on failure)

Nothing is written to /etc: every command (sbatch, squeue, sacct, sacctmgr, scontrol,
scancel, sinfo, srun) and every daemon (slurmctld, slurmd, slurmdbd) is pointed at the
configuration by the ``SLURM_CONF`` environment variable (:attr:`SlurmCluster.env`).
slurmdbd finds slurmdbd.conf next to ``$SLURM_CONF`` (SLURM's ``get_extra_conf_path``;
the file must be 0600);
slurmstepd gets the configuration from slurmd; a batch job inherits ``SLURM_CONF`` from
sbatch's environment (``--export=ALL``, the default), so ``srun``/``scontrol`` inside a job
work too. Without ``SLURM_CONF`` a client falls back to /etc/slurm/slurm.conf and then to a
DNS SRV lookup ("Could not establish a configuration source"): a subprocess that is not
given :attr:`SlurmCluster.env` does not see this cluster.

munge: a munged of its own (``AuthInfo=socket=...`` in both configurations; crypto/munge
reads the same option; connections to slurmdbd take their socket from
``AccountingStoragePass``, without which sacct/sacctmgr try /run/munge/munge.socket.2),
so /etc/munge and a system munged are left alone. munged checks
that every parent of its socket is executable by all and refuses otherwise; pytest's
temporary folders are 0700, so it runs with ``--force`` (that check becomes a warning; all
of the cluster runs as root, which is the only user that talks to it).

Ports: slurmctld, each slurmd, slurmdbd and MariaDB get free TCP ports picked at start-up
(bound to port 0, then released), so the cluster does not clash with another one left
running on this machine (the usual 6817-6819/3306 are never used).

Two nodes on one host: Debian's 22.05 build is configured with ``--enable-multiple-slurmd``
(``scontrol show config`` reports ``MULTIPLE_SLURMD = Yes``), so two slurmd processes run
side by side, each started as ``slurmd -N <node>`` with its own ``Port=`` on its NodeName
line (same NodeHostname, NodeAddr 127.0.0.1); the per-node paths use ``%n``
(SlurmdSpoolDir, SlurmdPidFile, SlurmdLogFile). See :data:`NODE_NAMES`.

No delegated cgroups on these machines: ``ProctrackType=proctrack/linuxproc`` and
``TaskPlugin=task/none`` (no CPU binding, no memory enforcement).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

#: Debian packages providing every binary the cluster runs.
PACKAGES = ("slurm-wlm", "slurmdbd", "munge", "mariadb-server")
#: The binaries that must be on PATH (their absence triggers the apt install).
BINARIES = ("slurmctld", "slurmd", "slurmdbd", "sbatch", "sacct", "sacctmgr", "munged", "mungekey",
            "mariadbd", "mariadb-install-db", "mariadb")
#: The node names, one slurmd each (``slurmd -N <name>``), all on this host.
NODE_NAMES = ("n1", "n2")
#: Daemons in the order stop() ends them (the reverse of start-up).
STOP_ORDER = ("slurmd-*", "slurmctld", "slurmdbd", "mariadbd", "munged")
#: A daemon's pid file is trusted only if /proc/<pid>/cmdline names this program.
PROGRAMS = {"slurmctld": "slurmctld", "slurmdbd": "slurmdbd", "mariadbd": "mariadbd", "munged": "munged"}

#: sacct fields returned by :meth:`SlurmCluster.sacct` (22.05 has no "Restarts" field in sacct;
#: the restart count comes from ``scontrol show job``, see :meth:`SlurmCluster.sacct`).
SACCT_FIELDS = ("JobID", "JobName", "Partition", "State", "ExitCode", "DerivedExitCode", "Reason",
                "NodeList", "AllocCPUS", "Submit", "Start", "End", "Elapsed")

# States after which a job runs nothing more (a requeued job leaves these again: PENDING).
TERMINAL_STATES = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED",
                             "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", "REVOKED", "SPECIAL_EXIT"})


class ClusterError(RuntimeError):
    """The cluster did not come up (or a command failed); the message carries log tails."""


def missing_binaries() -> list[str]:
    return [b for b in BINARIES if shutil.which(b) is None]


def ensure_installed(timeout: float = 900) -> None:
    """apt-get install the Debian packages if a binary is missing (root, noninteractive).

    Raises :class:`ClusterError` saying why when that is impossible or fails; the caller (the
    pytest fixture) turns it into a skip.
    """
    missing = missing_binaries()
    if not missing:
        return
    if os.geteuid() != 0:
        raise ClusterError(f"SLURM binaries missing ({', '.join(missing)}) and not root: cannot apt-get install")
    if shutil.which("apt-get") is None:
        raise ClusterError(f"SLURM binaries missing ({', '.join(missing)}) and no apt-get on this machine")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-q"],
                ["apt-get", "install", "-y", "-q", *PACKAGES]):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise ClusterError(f"{' '.join(cmd)} failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
    # The packages' postinst may start the system munged/mariadb/slurm services where an init
    # system runs; this cluster uses none of them (own ports, own socket, own key).
    still = missing_binaries()
    if still:
        raise ClusterError(f"apt-get install {' '.join(PACKAGES)} did not provide {', '.join(still)}")


def free_ports(n: int) -> list[int]:
    """n distinct free TCP ports on loopback (held open together so they differ)."""
    with ExitStack() as stack:
        ports = []
        for _ in range(n):
            s = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
        return ports


def parse_scontrol(line: str) -> dict[str, str]:
    """``scontrol show job -o`` output (one line of Key=Value, values may contain spaces)."""
    return {m.group(1): m.group(2) for m in re.finditer(r"(\S+?)=(.*?)(?=\s+[A-Za-z/:]+=|\s*$)", line.strip())}


@dataclass
class SlurmCluster:
    """One cluster under ``dir``: :meth:`start`, use, :meth:`stop`.

    The attributes the tests rely on: ``conf`` (slurm.conf), ``env`` (the environment for
    any subprocess that talks to the cluster), ``partitions``, ``nodes``, ``node_cpus``
    (per node), ``grace_s`` (GraceTime of the preemptable ``debug`` partition),
    ``kill_wait_s``.
    """

    dir: Path
    cluster_name: str = "aegistest"
    nodes: tuple[str, ...] = NODE_NAMES
    node_cpus: int = field(default_factory=lambda: os.cpu_count() or 1)
    real_memory_mb: int = 4000
    grace_s: int = 20
    kill_wait_s: int = 5
    cred_expire_s: int = 10
    partitions: tuple[str, ...] = ("debug", "urgent")
    ports: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.dir = Path(self.dir).resolve()

    # ---- paths and environment -------------------------------------------------------------
    @property
    def conf(self) -> Path:
        return self.dir / "etc" / "slurm.conf"

    @property
    def dbd_conf(self) -> Path:
        return self.dir / "etc" / "slurmdbd.conf"

    @property
    def munge_socket(self) -> Path:
        return self.dir / "munge" / "munge.socket"

    @property
    def mysql_socket(self) -> Path:
        return self.dir / "run" / "mysqld.sock"

    @property
    def log_dir(self) -> Path:
        return self.dir / "log"

    @property
    def env(self) -> dict[str, str]:
        """os.environ with ``SLURM_CONF`` set and no SLURM_*/SBATCH_*/SRUN_*/SALLOC_* variables
        inherited from an enclosing job (so a test run inside a SLURM job does not leak into
        this cluster's jobs)."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("SLURM_", "SBATCH_", "SRUN_", "SALLOC_", "SQUEUE_", "SACCT_"))}
        env["SLURM_CONF"] = str(self.conf)
        return env

    # ---- configuration ---------------------------------------------------------------------
    def write_config(self) -> None:
        for sub in ("etc", "run", "log", "state/ctld", "mysql", "munge/key", *(f"state/{n}" for n in self.nodes)):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        # munged: the socket's folder must be searchable by all, the key's private.
        os.chmod(self.dir, 0o755)
        os.chmod(self.dir / "munge", 0o755)
        os.chmod(self.dir / "munge" / "key", 0o700)
        if not self.ports:
            names = ["slurmctld", "slurmdbd", "mysql", *(f"slurmd-{n}" for n in self.nodes)]
            self.ports = dict(zip(names, free_ports(len(names))))
        d, host = self.dir, socket.gethostname()
        nodes = ",".join(self.nodes)
        node_lines = "\n".join(
            f"NodeName={n} NodeHostname={host} NodeAddr=127.0.0.1 Port={self.ports[f'slurmd-{n}']} "
            f"CPUs={self.node_cpus} RealMemory={self.real_memory_mb} State=UNKNOWN"
            for n in self.nodes)
        # cred_expire: a requeued job may not start again before its old credential has expired
        # (begin time = requeue time + cred_expire + 1); SLURM's default is 120 s.
        auth = f"AuthInfo=socket={self.munge_socket},cred_expire={self.cred_expire_s}"
        self.conf.write_text(f"""\
# Written by tests/slurm/cluster.py; everything lives under {d}
ClusterName={self.cluster_name}
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={self.ports['slurmctld']}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
{auth}
MpiDefault=none
MailProg=/bin/true
StateSaveLocation={d}/state/ctld
SlurmdSpoolDir={d}/state/%n
SlurmctldPidFile={d}/run/slurmctld.pid
SlurmdPidFile={d}/run/slurmd-%n.pid
SlurmctldLogFile={d}/log/slurmctld.log
SlurmdLogFile={d}/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
# No delegated cgroups: track processes through /proc, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=256
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,sched_min_interval=0,bf_interval=2
ReturnToService=2
SlurmdTimeout=60
InactiveLimit=0
# A requeue (scontrol requeue, preemption) must be allowed.
JobRequeue=1
# SIGTERM -> SIGKILL after KillWait seconds (cancel, time limit); small for fast teardown.
KillWait={self.kill_wait_s}
OverTimeLimit=0
MinJobAge=300
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort={self.ports['slurmdbd']}
# Connections to slurmdbd authenticate through the munge socket named here, not AuthInfo's.
AccountingStoragePass={self.munge_socket}
{node_lines}
# A job in 'urgent' preempts (requeues) a running 'debug' job: SIGCONT+SIGTERM, then SIGKILL
# after the partition's GraceTime.
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
PartitionName=debug Nodes={nodes} Default=YES MaxTime=INFINITE State=UP PriorityTier=1 PreemptMode=REQUEUE GraceTime={self.grace_s}
PartitionName=urgent Nodes={nodes} MaxTime=INFINITE State=UP PriorityTier=10 PreemptMode=OFF
""")
        # slurmdbd refuses a configuration readable by others.
        self.dbd_conf.write_text(f"""\
AuthType=auth/munge
{auth}
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort={self.ports['slurmdbd']}
SlurmUser=root
LogFile={d}/log/slurmdbd.log
PidFile={d}/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={self.ports['mysql']}
StorageUser=slurm
StoragePass=slurmtest
StorageLoc=slurm_acct_db
""")
        os.chmod(self.dbd_conf, 0o600)

    # ---- start-up --------------------------------------------------------------------------
    def start(self, timeout: float = 60) -> SlurmCluster:
        """Write the configuration, start munged, mariadbd, slurmdbd, slurmctld and one slurmd
        per node, and wait until every node is idle and ``srun -N1 -n1 true`` runs.

        Raises :class:`ClusterError` with the tail of the daemons' logs after ``timeout``
        seconds (per stage waits are bounded by what is left of it).
        """
        deadline = time.monotonic() + timeout
        self.write_config()
        try:
            self._start_munged(deadline)
            self._start_mariadb(deadline)
            self._daemon("slurmdbd", ["slurmdbd"], deadline)
            self._until(deadline, "slurmdbd answering sacctmgr",
                        lambda: self.run(["sacctmgr", "-n", "list", "cluster"], check=False).returncode == 0)
            self.run(["sacctmgr", "-i", "add", "cluster", self.cluster_name], check=False)
            self._daemon("slurmctld", ["slurmctld"], deadline)
            for node in self.nodes:
                self._daemon(f"slurmd-{node}", ["slurmd", "-N", node], deadline)
            self._until(deadline, f"nodes {','.join(self.nodes)} idle in sinfo", self._all_idle)
            self._until(deadline, "srun -N1 -n1 true",
                        lambda: self.run(["srun", "-N1", "-n1", "--immediate=5", "true"],
                                         check=False, timeout=15).returncode == 0)
        except BaseException:
            self.stop()
            raise
        return self

    def _all_idle(self) -> bool:
        out = self.run(["sinfo", "-h", "-N", "-o", "%N %T"], check=False).stdout.split("\n")
        states = dict(line.split() for line in out if line.strip())
        return all(states.get(n) == "idle" for n in self.nodes)

    def _start_munged(self, deadline: float) -> None:
        key = self.dir / "munge" / "key" / "munge.key"
        if not key.exists():
            self.run(["mungekey", "-c", "-k", str(key)])
        self._daemon("munged", [
            "munged", "--force", f"--socket={self.munge_socket}", f"--key-file={key}",
            f"--pid-file={self.dir / 'run' / 'munged.pid'}", f"--log-file={self.log_dir / 'munged.log'}",
            f"--seed-file={self.dir / 'munge' / 'munged.seed'}"], deadline)
        self._until(deadline, "munge -n | unmunge", lambda: subprocess.run(
            f"munge -S {self.munge_socket} -n | unmunge -S {self.munge_socket}", shell=True,
            capture_output=True).returncode == 0)

    def _mariadb(self, sql: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run(["mariadb", "--no-defaults", "-u", "root", "-S", str(self.mysql_socket), "-e", sql],
                        check=check)

    def _start_mariadb(self, deadline: float) -> None:
        datadir = self.dir / "mysql"
        if not (datadir / "mysql").is_dir():
            proc = subprocess.run(
                ["mariadb-install-db", "--no-defaults", "--user=root", f"--datadir={datadir}",
                 "--auth-root-authentication-method=socket", "--skip-test-db"],
                capture_output=True, text=True, timeout=max(5.0, deadline - time.monotonic()))
            (self.log_dir / "mariadb-install.log").write_text(proc.stdout + proc.stderr)
            if proc.returncode != 0:
                raise ClusterError(f"mariadb-install-db failed:\n{(proc.stdout + proc.stderr)[-3000:]}")
        # mariadbd does not daemonize: a session of its own, output to its error log.
        self._spawn("mariadbd", [
            "mariadbd", "--no-defaults", "--user=root", f"--datadir={datadir}", "--bind-address=127.0.0.1",
            f"--port={self.ports['mysql']}", f"--socket={self.mysql_socket}",
            f"--pid-file={self.dir / 'run' / 'mariadbd.pid'}", f"--log-error={self.log_dir / 'mariadb.log'}",
            "--innodb-buffer-pool-size=32M", "--skip-name-resolve", "--skip-log-bin"])
        self._until(deadline, "mariadbd answering", lambda: self._mariadb("select 1", check=False).returncode == 0)
        self._mariadb(
            "CREATE DATABASE IF NOT EXISTS slurm_acct_db; "
            "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurmtest'; "
            "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;")

    def _spawn(self, name: str, cmd: list[str]) -> None:
        with open(self.log_dir / f"{name}.out", "ab") as out:
            subprocess.Popen(cmd, env=self.env, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                             start_new_session=True, cwd=self.dir)

    def _daemon(self, name: str, cmd: list[str], deadline: float) -> None:
        """Run a self-daemonizing program and wait for its pid file."""
        proc = subprocess.run(cmd, env=self.env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              cwd=self.dir, timeout=max(5.0, deadline - time.monotonic()))
        if proc.returncode != 0:
            raise ClusterError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stdout}{proc.stderr}\n"
                               + self.log_tails())
        self._until(deadline, f"{name} pid file", lambda: self.pid(name) is not None)

    def _until(self, deadline: float, what: str, ready) -> None:
        while True:
            try:
                if ready():
                    return
            except (subprocess.SubprocessError, OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise ClusterError(f"SLURM test cluster under {self.dir}: timed out waiting for {what}\n"
                                   + self.log_tails())
            time.sleep(0.5)

    # ---- pids and shutdown -----------------------------------------------------------------
    def pid(self, name: str) -> int | None:
        """The live pid in run/<name>.pid, if it is the expected program (checked in /proc)."""
        path = self.dir / "run" / f"{name}.pid"
        try:
            pid = int(path.read_text().split()[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            return None
        program = PROGRAMS.get(name, name.split("-")[0])
        return pid if cmdline and Path(cmdline[0].decode(errors="replace")).name == program else None

    def stop(self, timeout: float = 20) -> None:
        """End every job (:meth:`cancel_all`), then SIGTERM each daemon by its pid file (the
        slurmds first, munged last) and wait for it to exit (SIGKILL after ``timeout``
        seconds); last, kill any process left that carries this cluster's ``SLURM_CONF``
        (a slurmstepd or job process that outlived its slurmd). Safe to call twice."""
        if self.pid("slurmctld") is not None:
            self.cancel_all()
        for pattern in STOP_ORDER:
            for pidfile in sorted((self.dir / "run").glob(f"{pattern}.pid")):
                pid = self.pid(pidfile.stem)
                if pid is not None:
                    _terminate(pid, timeout)
        for pid in self._leftovers():
            _terminate(pid, 5)

    def _leftovers(self) -> list[int]:
        """Pids of processes whose environment names this cluster's slurm.conf (slurmstepd
        inherits slurmd's environment, a job's processes sbatch's), other than this process
        and its ancestors."""
        mine, pid = {os.getpid()}, os.getppid()
        while pid > 1 and pid not in mine:
            mine.add(pid)
            try:
                pid = int(Path(f"/proc/{pid}/stat").read_text().split(") ")[1].split()[1])
            except (OSError, IndexError, ValueError):
                break
        marker = f"SLURM_CONF={self.conf}".encode()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) in mine:
                continue
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
        return found

    # ---- diagnostics -----------------------------------------------------------------------
    def log_tails(self, lines: int = 25) -> str:
        parts = []
        for log in sorted(self.log_dir.glob("*")):
            try:
                tail = log.read_text(errors="replace").splitlines()[-lines:]
            except OSError:
                continue
            parts.append(f"--- {log} (last {len(tail)} lines)\n" + "\n".join(tail))
        return "\n".join(parts)

    # ---- commands --------------------------------------------------------------------------
    def run(self, cmd: list[str], check: bool = True, timeout: float = 30, **kw) -> subprocess.CompletedProcess:
        """Run a SLURM client command against this cluster (text output captured)."""
        proc = subprocess.run(cmd, env=kw.pop("env", self.env), capture_output=True, text=True,
                              timeout=timeout, **kw)
        if check and proc.returncode != 0:
            raise ClusterError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
        return proc

    def sbatch(self, script: str, *args: str, cwd: Path | str | None = None) -> str:
        """Submit a batch script (its text) with extra sbatch args; returns the job id."""
        proc = self.run(["sbatch", "--parsable", *args], input=script, cwd=cwd)
        return proc.stdout.strip().split(";")[0]

    def job(self, job_id: str) -> dict[str, str] | None:
        """``scontrol show job -o`` as a dict (JobState, Restarts, ExitCode, Reason, BatchHost,
        ...); None once slurmctld has forgotten the job (after MinJobAge)."""
        proc = self.run(["scontrol", "show", "job", "-o", str(job_id)], check=False)
        if proc.returncode != 0 or not proc.stdout.strip():
            return None
        return parse_scontrol(proc.stdout.splitlines()[0])

    def squeue_state(self, job_id: str) -> str | None:
        """The job's state as squeue shows it (PENDING, RUNNING, COMPLETING...), None when it is
        no longer in the queue."""
        proc = self.run(["squeue", "-h", "-j", str(job_id), "-o", "%T"], check=False)
        out = proc.stdout.strip()
        return out.splitlines()[0] if proc.returncode == 0 and out else None

    def state(self, job_id: str) -> str | None:
        """The job's state by scontrol (still known) or else by sacct (its last record)."""
        info = self.job(job_id)
        if info is not None:
            return info.get("JobState")
        rows = [r for r in self.sacct(job_id) if r["JobID"] == str(job_id)]
        return rows[-1]["State"].split()[0] if rows else None

    def sacct(self, job_id: str, duplicates: bool = True) -> list[dict[str, str]]:
        """sacct's rows for a job (the allocation, ``.batch``, ``.extern``, steps), as dicts of
        :data:`SACCT_FIELDS`. With ``duplicates`` (``sacct -D``), each earlier run of a
        requeued job is a row of its own (State REQUEUED/PREEMPTED...), oldest first; each row
        of the allocation also carries ``Restarts``: scontrol's count while it still knows
        the job (SLURM 22.05's sacct has no such field), else the number of earlier runs."""
        cmd = ["sacct", "-j", str(job_id), "-P", "-o", ",".join(SACCT_FIELDS)]
        if duplicates:
            cmd.append("-D")
        proc = self.run(cmd, check=False)
        lines = [line for line in proc.stdout.splitlines() if line.strip()]
        if proc.returncode != 0 or not lines:
            return []
        header = lines[0].split("|")
        rows = [dict(zip(header, line.split("|"))) for line in lines[1:]]
        info = self.job(job_id)
        runs = [r for r in rows if r["JobID"] == str(job_id)]
        restarts = info.get("Restarts") if info else str(max(len(runs) - 1, 0))
        for r in runs:
            r["Restarts"] = restarts
        return rows

    def wait_for(self, job_id: str, states: str | Iterable[str], timeout: float = 60,
                 poll: float = 0.5) -> str:
        """Poll until the job's state (:meth:`state`) is one of ``states``; returns it.

        Raises TimeoutError with the last state seen and scontrol's record."""
        wanted = {states} if isinstance(states, str) else set(states)
        end = time.monotonic() + timeout
        last = None
        while True:
            last = self.state(job_id)
            if last in wanted:
                return last
            if time.monotonic() > end:
                raise TimeoutError(f"job {job_id}: state {last!r}, not {sorted(wanted)} after {timeout}s; "
                                   f"scontrol: {self.job(job_id)}")
            time.sleep(poll)

    def cancel(self, *job_ids: str, wait: float = 20) -> None:
        """End jobs for good, whatever their batch scripts do on SIGTERM: a plain ``scancel``
        SIGTERMs the batch shell, and a script that answers with ``scontrol requeue`` brings
        the job back (see test_cluster.py), so running jobs get SIGKILL (``--full``: batch
        shell and steps) before the cancel; pending ones are simply cancelled."""
        ids = [str(j) for j in job_ids]
        if not ids:
            return
        self.run(["scancel", "--quiet", "--full", "--signal=KILL", *ids], check=False)
        end = time.monotonic() + wait
        while True:
            self.run(["scancel", "--quiet", *ids], check=False)
            queued = self.run(["squeue", "-h", "-o", "%i", "-j", ",".join(ids)], check=False).stdout.split()
            if not queued or time.monotonic() > end:
                return
            time.sleep(0.5)

    def cancel_all(self, wait: float = 20) -> None:
        """:meth:`cancel` every job in the queue and wait until it is empty."""
        queued = self.run(["squeue", "-h", "-o", "%i"], check=False).stdout.split()
        self.cancel(*queued, wait=wait)

def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (our own unreaped child, e.g. mariadbd spawned by Popen) counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


def _terminate(pid: int, timeout: float) -> None:
    """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    end = time.monotonic() + timeout
    while time.monotonic() < end and _alive(pid):
        time.sleep(0.2)
    if _alive(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
