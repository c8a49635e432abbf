#!/usr/bin/env bash
# Build the training image with docker or podman (whichever works here) and tag it as
# the Kubernetes launchers' default image.
#
#   docker/build.sh                      # online: base image from its registry, wheels from PyPI
#   docker/build.sh --offline            # no registry, no outside index (see below)
#   docker/build.sh --tag registry.example.com/team/aegis-training:0.1.0
#   docker/build.sh --cuda               # CUDA base + CUDA torch wheels
#   docker/build.sh --extras tune        # add optional dependencies (Ray Tune, for KubeRay workers)
#
# --offline makes what a registry would have given: a Debian bookworm base image from
# debootstrap (python3 + venv, imported as aegis-base:bookworm), and every wheel the image
# needs downloaded into docker/wheels by the host's pip, so the build itself reaches no
# network. Extra arguments after `--` go to the engine's build command.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/pyproject.toml" | head -n1)"
tag="aegis-training:${version}"
offline=0
cuda=0
engine="${AEGIS_CONTAINER_ENGINE:-}"
base_offline="aegis-base:bookworm"
torch_spec="${TORCH_SPEC:-torch==2.13.0}"
extra=()
extras=""

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --offline) offline=1 ;;
    --cuda) cuda=1 ;;
    --tag) tag="$2"; shift ;;
    --extras) extras="$2"; shift ;;
    --engine) engine="$2"; shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "docker/build.sh: unknown option '$1' (expected --offline, --cuda, --tag NAME, --extras LIST, --engine docker|podman)" >&2; exit 2 ;;
  esac
  shift
done

if [ -z "$engine" ]; then
  if command -v docker >/dev/null && docker info >/dev/null 2>&1; then engine=docker
  elif command -v podman >/dev/null; then engine=podman
  else echo "docker/build.sh: neither a working docker engine nor podman was found" >&2; exit 1; fi
fi
cmd=("$engine")
build_flags=()
if [ "$engine" = podman ]; then
  # runc: crun fails in some sandboxes; explicit ulimits: the defaults can exceed the host's.
  cmd+=(--runtime "${AEGIS_PODMAN_RUNTIME:-runc}")
  # docker format: OCI images drop SHELL, and the Dockerfile relies on it (pipefail).
  build_flags+=(--format docker --ulimit nofile=20000:20000 --ulimit nproc=1000:1000)
fi

image_exists() { "${cmd[@]}" image inspect "$1" >/dev/null 2>&1; }

build_args=(--build-arg "TORCH_SPEC=$torch_spec" --build-arg "EXTRAS=$extras")
if [ "$cuda" = 1 ]; then
  build_args+=(--build-arg "BASE_IMAGE=${CUDA_BASE_IMAGE:-nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04}"
               --build-arg "TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126")
fi

if [ "$offline" = 1 ]; then
  if ! image_exists "$base_offline"; then
    rootfs="$(mktemp -d /var/tmp/aegis-rootfs.XXXXXX)"
    echo "==> debootstrap bookworm into $rootfs"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
      bookworm "$rootfs" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >/dev/null
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | "${cmd[@]}" import --change 'CMD ["/bin/bash"]' - "$base_offline" >/dev/null
    rm -rf "$rootfs"
  fi
  echo "==> downloading wheels into docker/wheels"
  EXTRAS="$extras" python3 "$here/requirements.py" "$repo/pyproject.toml" > "$here/wheels/requirements.txt"
  # `pip wheel`, not `pip download`: a few dependencies ship only as sdists, and the
  # offline build must not need build tools. The host must match the image's Python
  # (3.11, Linux, same architecture), as it does on the machines this is written for.
  python3 -m pip wheel --quiet --wheel-dir "$here/wheels" "$torch_spec" -r "$here/wheels/requirements.txt"
  rm -f "$here/wheels/requirements.txt"
  build_args+=(--build-arg "BASE_IMAGE=$base_offline" --build-arg PIP_NO_INDEX=1)
fi

echo "==> $engine build -t $tag"
started=$(date +%s)
"${cmd[@]}" build "${build_flags[@]}" --network host -f "$here/Dockerfile.training" -t "$tag" \
  "${build_args[@]}" "${extra[@]}" "$repo"
echo "==> built $tag in $(( $(date +%s) - started ))s; push it and set launcher.image to its pushed name"
