# Two commands on a fresh machine: `make train` and `make test`.
# The virtualenv is created on first use; torch is installed before the project so that
# pip takes the CPU wheel (TORCH_SPEC) instead of resolving a multi-GB CUDA build.

PYTHON ?= python3
TORCH_SPEC ?= torch==2.13.0
VENV ?= .venv
BIN := $(VENV)/bin
READY := $(VENV)/.aegis-installed

.PHONY: setup train test test-slow test-ray test-slurm test-container test-all image bench clean

$(READY): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e '.[dev,tune,k8s,ui,s3,metrics]'
	touch $(READY)

setup: $(READY)

## Train on the default config (digits, MLP, CPU, MLflow). Extra overrides: make train ARGS="model=cnn"
train: $(READY)
	$(BIN)/python train.py $(ARGS)

# Test processes for `make test` (pytest-xdist): one per core and one more by default (the tier
# spends ~15% of its time waiting on subprocesses, fake clusters and timeouts, which the extra
# process fills: 2:44-2:58 against 3:05-3:08 on two cores, docs/testing.md); TEST_WORKERS=0
# runs the tier in this one process (a debugger, or a test's output in order).
TEST_WORKERS ?= $(shell echo $$(( $$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1) + 1 )))

## The suite a newcomer needs to trust: under 3 minutes on a quiet 2-core machine
## (docs/testing.md says where the time goes). Training, resume, SIGTERM and bad input are
## tested in-process, spread over one process per core and one more; a few `python train.py`
## runs stand for the entrypoint.
test: $(READY)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal -m "not slow and not container and not ray and not slurm" -q

## Slower tier: DDP gangs of processes, and the `python train.py` end-to-end versions of
## what the default tier tests in-process (SIGTERM/resume, progress bar, kill -9, multirun,
## every bad-override case through the entrypoint).
test-slow: $(READY)
	$(BIN)/python -m pytest -m "slow and not container and not ray and not slurm" -q

## Build the training image and run rendered pods in it (needs podman + runc, or docker).
test-container: $(READY)
	$(BIN)/python -m pytest -m "container and not slurm" -q

## Ray Tune searches and the submitit/Ray launchers (starts a local Ray; a few minutes).
test-ray: $(READY)
	$(BIN)/python -m pytest -m "ray and not slurm" -q

## A real single-host SLURM cluster (slurmctld, two slurmd, slurmdbd + MariaDB, munged), all
## under a temp dir, brought up and down by the tests (root; apt-installs Debian's slurm-wlm,
## slurmdbd, munge, mariadb-server when missing). About 8 minutes: real DDP jobs, requeues,
## a time limit, a preemption, cancels.
test-slurm: $(READY)
	$(BIN)/python -m pytest -m slurm -q

test-all: test test-slow test-ray test-slurm test-container

## The training image, with an immutable tag it prints and records (docker/build.sh --help for options).
image:
	docker/build.sh $(ARGS)

## Benchmarks (print ratios against a baseline run side by side; see bench/README.md).
bench: $(READY)
	$(BIN)/python bench/config_paths.py
	$(BIN)/python bench/training_overhead.py
	$(BIN)/python bench/ddp_scaling.py

clean:
	rm -rf outputs multirun .pytest_cache
