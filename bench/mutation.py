"""Mutation score of the modules that decide what is lost or signalled (issue 23).

For one module at a time: copy the checkout's tracked files (plus untracked, not ignored
ones) to a scratch folder, run mutmut there against the default tier's test files that
exercise that module, and print mutants, killed, survived, those listed below as
equivalent, and the score. The checkout itself is never touched (mutmut writes a
``mutants/`` tree and a ``setup.cfg`` next to the code it mutates). mutmut is
pip-installed into the running interpreter if missing.

    .venv/bin/python bench/mutation.py runs          # one module
    .venv/bin/python bench/mutation.py all           # each module in turn
    .venv/bin/python bench/mutation.py cache --show  # and the diff of every survivor

One worker (``--max-children 1``) by default: the figure does not depend on it, and the
build machine's cores are shared. ``PYTHONPATH`` points at mutmut's mutated copy so that
tests which start ``python -m aegis`` in a subprocess run the mutant too.

Score = killed / (mutants - equivalent), where "killed" counts mutmut's killed and timeout
(a mutant that hangs the tests is caught). "no tests" mutants (code no in-process test
reaches) count as survivors. training/checkpoints.py runs with mutmut's forkserver
isolation: forked workers deadlock once torch has started its threads.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MARKERS = "not slow and not container and not ray and not slurm and not cluster"

MODULES: dict[str, tuple[str, list[str]]] = {
    "runs": ("src/aegis/runs.py", ["tests/test_record_readers.py", "tests/test_lifecycle.py", "tests/test_run_lookup.py"]),
    "lifecycle": ("src/aegis/core/lifecycle.py", [
        "tests/test_record_readers.py", "tests/test_lifecycle.py", "tests/test_status_running.py",
        "tests/test_job_records.py"]),
    # Not tests/test_lifecycle.py: its `logs --follow` tests wait out mutmut's timeout (minutes)
    # under every mutant that keeps a dead run "running".
    "process": ("src/aegis/launch/process.py", ["tests/test_record_readers.py", "tests/test_process_records.py"]),
    # Its in-process checks only: tests/test_nothing_lost.py trains a model per test, which
    # would take hours over every mutant on 2 cores (the score is a lower bound for the tier).
    "checkpoints": ("src/aegis/training/checkpoints.py", ["tests/test_checkpoint_files.py"]),
    # tests/test_faults.py's fault injection starts a process per test: too slow over every mutant.
    "record": ("src/aegis/training/record.py", ["tests/test_run_record.py", "tests/test_secrets.py"]),
    "cache": ("src/aegis/data/cache.py", ["tests/data/test_data_cache.py", "tests/test_record_readers.py",
                                          "tests/test_cache_entries.py"]),
}
FORKSERVER = {"checkpoints"}

# Survivors read and judged equivalent: no test can tell them from the original, because
# the behaviour they change is not observable. Reasons in bench/README.md, "Mutation score".
EQUIVALENT: dict[str, set[str]] = {
    "runs": {
        "aegis.runs.x_iter_runs__mutmut_4",  # globbing a missing runs/ folder finds nothing either way
        "aegis.runs.x_iter_runs__mutmut_22",  # the same for multiruns/
        "aegis.runs.x_find_run__mutmut_20",  # one exact match is also the one match the next test returns
    },
    "lifecycle": {
        "aegis.core.lifecycle.x_process_cmdline__mutmut_16",  # "UTF-8" and "utf-8" name one codec
        # /proc/<pid>/stat unreadable after signal 0 succeeded: no /proc, or a process gone in
        # between; neither can be arranged on Linux in a test
        "aegis.core.lifecycle.x_process_alive__mutmut_26",
    },
    "process": {
        "aegis.launch.process.x_tail_file__mutmut_14",  # "UTF-8" and "utf-8" name one codec
    },
    "cache": {
        # a file or a dot-folder let through to get() is refused there by its name or its
        # missing meta.json: the listing is the same
        "aegis.data.cache.xǁCacheǁentries__mutmut_5",
        "aegis.data.cache.xǁCacheǁentries__mutmut_8",
    },
}

STATUS_RE = re.compile(r"^\s+(\S+): (.+)$")


def ensure_mutmut() -> None:
    if importlib.util.find_spec("mutmut") is None:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "mutmut>=3.8,<4"], check=True)


def copy_checkout(dest: Path) -> None:
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO, capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def write_config(dest: Path, module: str) -> None:
    source, tests = MODULES[module]
    tests = [t for t in tests if (dest / t).exists()]
    also = ["conf", "train.py", "launchers", "k8s", "docs", "README.md", "docker", "Makefile", "bench"]
    lines = ["[mutmut]", "source_paths = src", f"only_mutate = {source}",
             "pytest_add_cli_args_test_selection =", *[f"    {t}" for t in tests],
             "pytest_add_cli_args =", "    -p", "    no:cacheprovider", "    -m", f"    {MARKERS}",
             "also_copy =", *[f"    {a}" for a in also]]
    if module in FORKSERVER:
        lines.append("process_isolation = forkserver")
    (dest / "setup.cfg").write_text("\n".join(lines) + "\n")


def mutmut(dest: Path, *args: str, check: bool = True) -> str:
    env = {**os.environ, "PYTHONPATH": str(dest / "mutants" / "src"), "OMP_NUM_THREADS": "1"}
    exe = Path(sys.executable).with_name("mutmut")
    command = [str(exe) if exe.exists() else "mutmut", *args]
    result = subprocess.run(command, cwd=dest, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise SystemExit(f"mutmut {' '.join(args)} failed ({result.returncode}):\n{result.stdout[-4000:]}\n"
                         f"{result.stderr[-4000:]}")
    return result.stdout


def measure(module: str, *, show: bool, workers: int, keep: Path | None) -> dict:
    dest = keep or Path(tempfile.mkdtemp(prefix=f"aegis-mutation-{module}-"))
    shutil.rmtree(dest / "mutants", ignore_errors=True)  # a fresh measurement every time
    # PYTHONPATH's entry must exist when the interpreter starts: Python caches "no such
    # folder" for it, and the tests would then import the unmutated package.
    (dest / "mutants" / "src").mkdir(parents=True)
    copy_checkout(dest)
    write_config(dest, module)
    mutmut(dest, "run", "--max-children", str(workers))
    statuses: dict[str, str] = {}
    for line in mutmut(dest, "results", "--all", "true").splitlines():
        match = STATUS_RE.match(line)
        if match:
            statuses[match.group(1)] = match.group(2).strip()
    killed = [n for n, s in statuses.items() if s in ("killed", "timeout")]
    equivalent = EQUIVALENT.get(module, set())
    stale = equivalent - set(statuses)
    alive = [n for n in statuses if n not in killed]
    counted_equivalent = [n for n in alive if n in equivalent]
    survivors = [n for n in alive if n not in equivalent]
    killable = len(statuses) - len(counted_equivalent)
    score = len(killed) / killable if killable else 0.0
    print(f"{MODULES[module][0]}: {len(statuses)} mutants, {len(killed)} killed, {len(survivors)} survived, "
          f"{len(counted_equivalent)} equivalent, score {score:.0%}")
    for name in survivors:
        print(f"  survived ({statuses[name]}): {name}")
        if show:
            print(mutmut(dest, "show", name, check=False))
    for name in sorted(stale):
        print(f"  listed as equivalent but not a mutant any more: {name}")
    if keep is None:
        shutil.rmtree(dest, ignore_errors=True)
    else:
        print(f"  mutmut's tree kept in {dest}")
    return {"module": module, "mutants": len(statuses), "killed": len(killed), "survived": len(survivors),
            "equivalent": len(counted_equivalent), "score": score}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("module", choices=[*MODULES, "all"])
    parser.add_argument("--show", action="store_true", help="print the diff of each surviving mutant")
    parser.add_argument("--workers", type=int, default=1, help="mutmut --max-children (default 1)")
    parser.add_argument("--keep", type=Path, help="work in (and keep) this folder, to browse the mutants afterwards")
    args = parser.parse_args()
    ensure_mutmut()
    for module in MODULES if args.module == "all" else [args.module]:
        keep = args.keep / module if args.keep and args.module == "all" else args.keep
        measure(module, show=args.show, workers=args.workers, keep=keep)


if __name__ == "__main__":
    main()
