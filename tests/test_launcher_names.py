"""Launchers plug in: shared code names none of them, and a launcher from outside the package
(registered, not edited into the table) works with ``aegis list/status/logs/cancel`` and shows
its own handle (issue 23).

A launcher's name in shared code is a decision taken for it elsewhere: renaming or adding a
launcher would then touch modules that do not belong to it. Shared code asks the launcher
(``aegis.launch.base.Launcher``) or the registry (``aegis.core.registry``) instead.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from aegis.core.lifecycle import JOB_FILE, JobRef
from aegis.core.registry import LAUNCHERS

SRC = Path(__file__).resolve().parents[1] / "src" / "aegis"
NAMES = set(LAUNCHERS) | {"submitit"}
# (module, literal): why it is not a launcher's name there.
NOT_A_LAUNCHER = {
    ("tune/settings.py", "local"): "Ray's address 'local' (a Ray started here), not the launcher",
    ("launch/elastic.py", "torchrun"): "the torchrun executable this module stands in for, in any launcher's gang",
}


def _allowed(module: str) -> bool:
    parts = module.split("/")
    return module == "core/registry.py" or (parts[0] == "launch" and len(parts) > 2)  # a launcher's own folder


def test_no_launcher_name_is_a_literal_outside_its_folder_and_the_registry():
    found = []
    for path in sorted(SRC.rglob("*.py")):
        module = path.relative_to(SRC).as_posix()
        if _allowed(module):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and node.value in NAMES and (module, node.value) not in NOT_A_LAUNCHER:
                found.append(f"{module}:{node.lineno} {node.value!r}")
    assert not found, "shared code names a launcher (ask the Launcher or the registry instead): " + ", ".join(found)


def test_no_module_outside_a_launchers_folder_chooses_a_launcher_by_name():
    """``add launcher=torchrun`` in a training error, ``launcher=local`` in a docstring: a sentence
    takes the name from the registry, where the launcher that does the job is chosen once, and
    the text around shared code describes the launcher by what it does."""
    pattern = re.compile(r"launcher=(" + "|".join(re.escape(name) for name in sorted(NAMES)) + r")\b")
    found = []
    for path in sorted(SRC.rglob("*.py")):
        module = path.relative_to(SRC).as_posix()
        if _allowed(module):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):  # code, strings, docstrings, comments
            found += [f"{module}:{number} {m.group(0)!r}" for m in pattern.finditer(line)]
    assert not found, "shared code names a launcher (take it from aegis.core.registry): " + ", ".join(found)


TOY = '''
"""A launcher from outside Aegis: its job is a shell process, its handle a ticket."""
import os, signal, socket, subprocess
from pathlib import Path
from aegis.core.lifecycle import CANCEL_FILE, JobRef, JobStatus, State, process_alive
from aegis.errors import AegisError
from aegis.launch.base import Launcher


class EchoLauncher(Launcher):
    name = "echo"

    def render(self, cfg, ctx):
        return ctx

    def submit(self, run_dir):
        log = open(Path(run_dir) / "echo.log", "w")
        proc = subprocess.Popen(["sh", "-c", "echo hello from echo; exec sleep 60"], stdout=log,
                                start_new_session=True)
        ref = JobRef(launcher=self.name, run_id=Path(run_dir).name, run_dir=str(run_dir), kind="echo",
                     backend={"ticket": "T-42", "shell_pid": proc.pid, "host": socket.gethostname()})
        ref.write()
        return proc

    def follow(self, handle):
        return handle.wait()

    def describe(self, ref):
        return f"echo ticket {ref.backend['ticket']}"

    def status(self, ref):
        if process_alive(ref.backend["shell_pid"], ref.backend["host"]):
            return JobStatus(State.running)
        if (Path(ref.run_dir) / CANCEL_FILE).exists():
            return JobStatus(State.cancelled, reason="cancelled by aegis cancel")
        return JobStatus(State.succeeded, exit_code=0)

    def logs(self, ref, replica=None, follow=False):
        yield from (Path(ref.run_dir) / "echo.log").read_text().splitlines()

    def cancel(self, ref):
        if not process_alive(ref.backend["shell_pid"], ref.backend["host"]):
            raise AegisError(f"run {ref.run_id} is not running.")
        (Path(ref.run_dir) / CANCEL_FILE).write_text("")
        os.kill(ref.backend["shell_pid"], signal.SIGTERM)
'''


def _aegis(root: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aegis", "--root", str(root), *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_a_registered_launcher_from_outside_the_package_lists_shows_its_handle_logs_and_cancels(tmp_path):
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "toy_echo.py").write_text(textwrap.dedent(TOY))
    sys.path.insert(0, str(tmp_path / "plugins"))
    try:
        import toy_echo
    finally:
        sys.path.remove(str(tmp_path / "plugins"))
    run_dir = tmp_path / "out" / "train" / "runs" / "echo-run"
    run_dir.mkdir(parents=True)
    proc = toy_echo.EchoLauncher().submit(run_dir)
    env = {**os.environ, "AEGIS_LAUNCHERS": "echo=toy_echo:EchoLauncher",
           "PYTHONPATH": os.pathsep.join([str(tmp_path / "plugins"), os.environ.get("PYTHONPATH", "")])}
    root = tmp_path / "out"
    try:
        assert json.loads((run_dir / JOB_FILE).read_text())["backend"]["ticket"] == "T-42"
        listing = _aegis(root, env, "list")
        assert listing.returncode == 0, listing.stderr
        row = listing.stdout.splitlines()[1]
        assert row.split()[:3] == ["echo-run", "echo", "running"] and row.endswith("echo ticket T-42"), listing.stdout

        status = _aegis(root, env, "status", "echo-run")
        assert status.returncode == 0, status.stderr
        assert status.stdout.splitlines()[0] == "running"
        assert "(launcher echo, echo ticket T-42)" in status.stdout, status.stdout
        as_json = json.loads(_aegis(root, env, "status", "echo-run", "--json").stdout)
        assert as_json["job"] == "echo ticket T-42" and as_json["state"] == "running"

        deadline = time.time() + 30
        while "hello from echo" not in (logs := _aegis(root, env, "logs", "echo-run")).stdout:
            assert logs.returncode == 0 and time.time() < deadline, logs.stderr
            time.sleep(0.2)

        cancel = _aegis(root, env, "cancel", "echo-run")
        assert cancel.returncode == 0, cancel.stderr
        assert cancel.stdout.strip() == "cancelled"
        assert proc.wait(timeout=30) == -15
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_an_unregistered_launcher_name_in_job_json_is_one_sentence(tmp_path):
    run_dir = tmp_path / "train" / "runs" / "r1"
    JobRef(launcher="echo", run_id="r1", run_dir=str(run_dir)).write()
    out = _aegis(tmp_path, {k: v for k, v in os.environ.items() if k != "AEGIS_LAUNCHERS"}, "status", "r1")
    assert out.returncode == 1 and "launcher.name='echo' is not a known launcher" in out.stderr
    assert "Traceback" not in out.stderr


def test_job_json_keeps_the_backend_mapping_and_reads_files_written_before_it(tmp_path):
    ref = JobRef(launcher="slurm", run_id="r", run_dir=str(tmp_path), kind="slurm",
                 backend={"job_id": "12", "cluster": "c", "nested": {"a": [1, 2]}})
    ref.write()
    again = JobRef.read(tmp_path)
    assert again == ref and again.backend["nested"] == {"a": [1, 2]}
    # A job.json as written before the mapping existed (no "backend"), and one with keys this
    # version does not know: both read, and the unknown keys stay reachable in backend.
    old = {"launcher": "local", "run_id": "r", "run_dir": str(tmp_path), "kind": "process", "name": None,
           "namespace": None, "uid": None, "context": None, "pid": 41, "host": "h", "start_time": None,
           "submitted_at": 1.0}
    (tmp_path / JOB_FILE).write_text(json.dumps(old))
    assert JobRef.read(tmp_path) == JobRef(**old)
    (tmp_path / JOB_FILE).write_text(json.dumps({**old, "ticket": "T-1", "backend": {"queue": "q"}}))
    assert JobRef.read(tmp_path).backend == {"ticket": "T-1", "queue": "q"}


def test_a_malformed_or_clashing_plugin_entry_is_one_warning_and_left_out(tmp_path):
    env = {**os.environ, "AEGIS_LAUNCHERS": "nocolon=toy_echo.EchoLauncher,local=toy_echo:EchoLauncher"}
    out = subprocess.run([sys.executable, "-c", "from aegis.core.registry import LAUNCHERS; "
                          "print(LAUNCHERS['local'].launcher, 'nocolon' in LAUNCHERS)"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.split() == ["aegis.launch.local.launcher:LocalLauncher", "False"]
    warnings = out.stderr.splitlines()
    assert len(warnings) == 2 and all(w.startswith("Warning: ") for w in warnings), out.stderr
    assert "'nocolon'" in warnings[0] and "'local' is already registered" in warnings[1]


def test_config_reaches_the_search_and_the_submitit_rules_through_the_registry():
    """Validation imports neither aegis.tune nor a launcher's folder (lint-imports, no ignored
    import left for them); the registry hands it the same rules."""
    from aegis.core.registry import hydra_launcher_rules, search_rules
    from aegis.launch.slurm.submitit import check
    from aegis.tune.checks import check_search

    assert search_rules() is check_search and hydra_launcher_rules() == [check]
