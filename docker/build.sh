#!/usr/bin/env bash
# Build the training image with docker or podman (whichever works here), tag it with a
# tag that names exactly one build, label it, and record it for the launchers.
#
#   docker/build.sh                      # online: base image from its registry, wheels from PyPI
#   docker/build.sh --offline            # no registry, no outside index (see below)
#   docker/build.sh --tag registry.example.com/team/aegis-training:0.1.0-rc1 --push
#   docker/build.sh --cuda               # CUDA base + CUDA torch wheels
#   docker/build.sh --extras tune        # add optional dependencies (Ray Tune, for KubeRay workers)
#
# The default tag is localhost/aegis-training:<version>-<git short sha>, plus -dirty when
# what the image is built from (pyproject.toml, README.md, train.py, src/, conf/, docker/)
# has uncommitted changes, -nogit outside a git checkout: a code change gives a new tag,
# so a node that cached an older image never runs it under the new name. localhost/ is a
# local name (kind, minikube); for a cluster, --tag REGISTRY/REPO:TAG --push pushes it and
# prints the digest to pin (launcher.image=REPO@sha256:...). Each build is recorded in
# $AEGIS_IMAGES_FILE (default ${XDG_CACHE_HOME:-~/.cache}/aegis/images.json), where the
# Kubernetes launchers look up the digest and whether the image has CUDA.
#
# --offline makes what a registry would have given: a Debian bookworm base image from
# debootstrap (python3 + venv + tini), and every wheel the image needs in docker/wheels
# (reused when they already satisfy the requirements, else fetched by the host's pip), so
# the build itself reaches no network. Extra arguments after `--` go to the engine's
# build command.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/pyproject.toml" | head -n1)"
tag=""
offline=0
cuda=0
push=0
engine="${AEGIS_CONTAINER_ENGINE:-}"
torch_spec="${TORCH_SPEC:-torch==2.13.0}"
extra=()
extras=""
# The offline base's packages; its tag carries their hash, so changing the list builds a
# new base instead of reusing one that lacks a package.
base_packages="python3,python3-venv,ca-certificates,tini"
# What enters the image: a change here (committed or not) is a change of the image.
inputs=(pyproject.toml README.md train.py src launchers conf docker .dockerignore)

usage() { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --offline) offline=1 ;;
    --cuda) cuda=1 ;;
    --push) push=1 ;;
    --tag) tag="$2"; shift ;;
    --extras) extras="$2"; shift ;;
    --engine) engine="$2"; shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "docker/build.sh: unknown option '$1' (expected --offline, --cuda, --push, --tag NAME, --extras LIST, --engine docker|podman)" >&2; exit 2 ;;
  esac
  shift
done

# -- the tag: <version>-<short sha>[-dirty] | <version>-nogit --------------------------------
revision=""
dirty=0
if toplevel="$(git -C "$repo" rev-parse --show-toplevel 2>/dev/null)" && [ "$toplevel" -ef "$repo" ] \
   && revision="$(git -C "$repo" rev-parse HEAD 2>/dev/null)"; then
  suffix="$(git -C "$repo" rev-parse --short HEAD)"
  if [ -n "$(git -C "$repo" status --porcelain --untracked-files=normal -- "${inputs[@]}")" ]; then
    dirty=1
    suffix="$suffix-dirty"
  fi
else
  revision=""
  suffix="nogit"
fi
if [ -z "$tag" ]; then
  tag="localhost/aegis-training:${version}-${suffix}"
fi
accelerator=cpu
[ "$cuda" = 1 ] && accelerator=cuda

# The registry host of a reference, as the runtimes read it: the first path component,
# when it has a '.' or a ':' or is localhost. None: Docker Hub, implicitly.
registry_of() {
  local first="${1%%/*}"
  if [ "$first" != "$1" ] && { [[ "$first" == *.* ]] || [[ "$first" == *:* ]] || [ "$first" = localhost ]; }; then
    echo "$first"
  fi
}
registry="$(registry_of "$tag")"
if [ "$push" = 1 ] && { [ -z "$registry" ] || [ "$registry" = localhost ]; }; then
  echo "docker/build.sh: --push needs a tag with a registry host, e.g. --tag registry.example.com/team/aegis-training:${version}-${suffix} ('$tag' names no registry to push to)" >&2
  exit 2
fi

if [ -z "$engine" ]; then
  if command -v docker >/dev/null && docker info >/dev/null 2>&1; then engine=docker
  elif command -v podman >/dev/null; then engine=podman
  else echo "docker/build.sh: neither a working docker engine nor podman was found" >&2; exit 1; fi
fi
cmd=("$engine")
build_flags=()
run_flags=()
if [ "$(basename "$engine")" = podman ]; then
  # runc: crun fails in some sandboxes; explicit ulimits: the defaults can exceed the host's.
  cmd+=(--runtime "${AEGIS_PODMAN_RUNTIME:-runc}")
  # docker format: OCI images drop SHELL, and the Dockerfile relies on it (pipefail).
  build_flags+=(--format docker --ulimit nofile=20000:20000 --ulimit nproc=1000:1000)
  run_flags+=(--ulimit nofile=20000:20000 --ulimit nproc=1000:1000)
fi

image_exists() { "${cmd[@]}" image inspect "$1" >/dev/null 2>&1; }

build_args=(--build-arg "TORCH_SPEC=$torch_spec" --build-arg "EXTRAS=$extras"
            --build-arg "SLIM_SHA=$(sha256sum "$here/slim.py" | cut -c1-64)")
if [ "$cuda" = 1 ]; then
  build_args+=(--build-arg "BASE_IMAGE=${CUDA_BASE_IMAGE:-nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04}"
               --build-arg "TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126")
fi
created="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
labels=(--label "org.opencontainers.image.version=$version"
        --label "org.opencontainers.image.created=$created"
        --label "org.opencontainers.image.title=aegis-training"
        --label "dev.aegis.accelerator=$accelerator")
[ -n "$revision" ] && labels+=(--label "org.opencontainers.image.revision=$revision")

if [ "$offline" = 1 ]; then
  # The recipe below, named in the tag: change the packages or the trimming, get a new base.
  recipe="minbase bookworm $base_packages; trimmed: apt caches, docs but copyright, man, info, translations"
  base_offline="localhost/aegis-base:bookworm-$(printf '%s' "$recipe" | sha256sum | cut -c1-8)"
  if ! image_exists "$base_offline"; then
    rootfs="$(mktemp -d /var/tmp/aegis-rootfs.XXXXXX)"
    echo "==> debootstrap bookworm ($base_packages) into $rootfs"
    debootstrap --variant=minbase --include="$base_packages" \
      bookworm "$rootfs" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >/dev/null
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    # What no pod reads (~50 MB), as Debian's slim images leave out: documentation but the
    # copyright files, manual and info pages, message translations (locale.alias stays).
    find "$rootfs/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete
    rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/*
    find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -type d -exec rm -rf {} +
    tar -C "$rootfs" -c . | "${cmd[@]}" import --change 'CMD ["/bin/bash"]' - "$base_offline" >/dev/null
    rm -rf "$rootfs"
  fi
  requirements="$(mktemp /tmp/aegis-requirements.XXXXXX)"
  trap 'rm -f "$requirements"' EXIT
  EXTRAS="$extras" python3 "$here/requirements.py" "$repo/pyproject.toml" > "$requirements"
  # The wheel directory is reused when it already satisfies the requirements (a code-only
  # rebuild): resolving against it alone takes seconds, asking the index again ~70 s.
  started=$(date +%s)
  if python3 -m pip install --quiet --dry-run --ignore-installed --no-index --find-links "$here/wheels" \
       "$torch_spec" -r "$requirements" >/dev/null 2>&1; then
    echo "==> docker/wheels already satisfies the requirements ($(( $(date +%s) - started ))s)"
  else
    echo "==> fetching the missing wheels into docker/wheels"
    # `pip wheel`, not `pip download`: a few dependencies ship only as sdists, and the
    # offline build must not need build tools. The host must match the image's Python
    # (3.11, Linux, same architecture), as it does on the machines this is written for.
    python3 -m pip wheel --quiet --find-links "$here/wheels" --wheel-dir "$here/wheels" \
      "$torch_spec" -r "$requirements"
    echo "==> wheels ready ($(( $(date +%s) - started ))s)"
  fi
  build_args+=(--build-arg "BASE_IMAGE=$base_offline" --build-arg PIP_NO_INDEX=1)
fi

echo "==> $engine build -t $tag"
started=$(date +%s)
"${cmd[@]}" build "${build_flags[@]}" --network host -f "$here/Dockerfile.training" -t "$tag" \
  "${labels[@]}" "${build_args[@]}" "${extra[@]}" "$repo"
seconds=$(( $(date +%s) - started ))

id="$("${cmd[@]}" image inspect --format '{{.Id}}' "$tag")"
id="sha256:${id#sha256:}"
size="$("${cmd[@]}" image inspect --format '{{.Size}}' "$tag")"
record=(python3 "$here/record_image.py" "$tag" --id "$id" --accelerator "$accelerator" --extras "$extras")
[ -n "$revision" ] && record+=(--revision "$revision")
[ "$dirty" = 1 ] && record+=(--dirty)
# The Ray the image holds, asked of the image (pip resolved it there): a RayJob renders it as
# rayClusterSpec.rayVersion, by which KubeRay chooses HTTP probes (Ray >= 2.53) over exec probes
# that run wget, which the image does not have.
if [[ ",$extras," == *,tune,* || ",$extras," == *,kuberay,* ]]; then
  ray_version="$("${cmd[@]}" run --rm --network none "${run_flags[@]}" "$tag" \
    python -c 'import importlib.metadata as m; print(m.version("ray"))' 2>/dev/null || true)"
  [ -n "$ray_version" ] && record+=(--ray-version "$ray_version")
fi
records="$("${record[@]}")"

echo "==> built $tag in ${seconds}s"
echo "    image id  $id"
echo "    size      $(awk -v b="$size" 'BEGIN { printf "%.2f GB (%d bytes)", b / 1e9, b }')"

if [ "$push" = 1 ]; then
  echo "==> $engine push $tag"
  name="$tag"
  # The repository without the tag (a ':' after the last '/'; a registry port stays).
  [[ "${tag##*/}" == *:* ]] && name="${tag%:*}"
  if [ "$(basename "$engine")" = podman ]; then
    digestfile="$(mktemp /tmp/aegis-digest.XXXXXX)"
    "${cmd[@]}" push --digestfile "$digestfile" "$tag"
    digest="$(cat "$digestfile")"
    rm -f "$digestfile"
  else
    "${cmd[@]}" push "$tag"
    # RepoDigests lists one name@sha256:... per repository the image was pushed to.
    digest="$("${cmd[@]}" image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$tag" \
              | grep -F "$name@" | head -n1 || true)"
    digest="${digest#*@}"
  fi
  if [ -z "$digest" ]; then
    echo "docker/build.sh: pushed $tag, but $engine reported no registry digest for it; nothing recorded" >&2
    exit 1
  fi
  python3 "$here/record_image.py" "$tag" --push-only --digest "$digest" >/dev/null
  echo "    digest    $digest"
  recommended="$name@$digest"
else
  echo "    digest    none until pushed (--push records it)"
  recommended="$tag"
fi
echo "    recorded  $records"

if [ -z "$registry" ]; then
  echo "note: '$tag' names no registry host, so a cluster would pull it from Docker Hub and fail." \
       "For a cluster: docker/build.sh --tag REGISTRY/aegis-training:${version}-${suffix} --push." \
       "For kind/minikube: load it onto the node (kind load docker-image / minikube image load) under a" \
       "localhost/ name (the default tag), or set launcher.allow_unqualified_image=true."
elif [ "$registry" = localhost ]; then
  echo "note: '$tag' is a local name: kind/minikube can run it once loaded onto the node" \
       "(kind load docker-image $tag / minikube image load $tag); for a cluster that pulls," \
       "docker/build.sh --tag REGISTRY/aegis-training:${version}-${suffix} --push."
fi
echo "==> launcher.image=$recommended"
