"""Record an image docker/build.sh built, for the launchers to read (aegis.k8s.builds).

    python3 docker/record_image.py REFERENCE --id sha256:... --accelerator cpu|cuda \
        [--extras tune,kuberay] [--ray-version 2.60.0] [--revision SHA] [--dirty] [--digest sha256:...]

Merges one entry into the JSON file ``$AEGIS_IMAGES_FILE``, else
``${XDG_CACHE_HOME:-$HOME/.cache}/aegis/images.json``::

    {"<reference as tagged>": {"id": "sha256:...", "accelerator": "cpu",
                               "extras": ["tune", "kuberay"], "ray_version": "2.60.0 or null",
                               "revision": "<git sha or null>", "dirty": false,
                               "built_at": "<ISO 8601 UTC>", "digest": "sha256:... or null"}}

``--digest`` alone (with ``--push-only``) adds the registry digest to the entry the build
wrote. Written atomically (a temporary file in the same folder, then a rename), so a
reader never sees half a file; an unreadable or malformed file is replaced, not fatal.
Standard library only: the host's python3 may not have the project installed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import sys
import tempfile
from pathlib import Path

DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
VERSION = re.compile(r"[0-9]+\.[0-9]+[0-9A-Za-z.+-]*")


def records_file() -> Path:
    explicit = os.environ.get("AEGIS_IMAGES_FILE")
    if explicit:
        return Path(explicit)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "aegis" / "images.json"


def read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write(path: Path, records: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".images.", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(handle, "w") as out:
            json.dump(records, out, indent=2, sort_keys=True)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def image_id(value: str) -> str:
    value = value.strip()
    return value if value.startswith("sha256:") else f"sha256:{value}"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", help="the image reference exactly as tagged")
    parser.add_argument("--id", help="the image id (sha256:... or bare hex)")
    parser.add_argument("--accelerator", choices=("cpu", "cuda"))
    parser.add_argument("--extras", default="", help="the optional dependency groups installed, comma-separated")
    parser.add_argument("--ray-version", default=None, help="the Ray version installed in the image (omit: no Ray)")
    parser.add_argument("--revision", default=None, help="the git commit built (omit: not a checkout)")
    parser.add_argument("--dirty", action="store_true", help="the tree had uncommitted changes")
    parser.add_argument("--digest", default=None, help="the registry digest after a push")
    parser.add_argument("--push-only", action="store_true", help="only add --digest to the existing entry")
    args = parser.parse_args(argv)
    digest = args.digest
    if digest is not None:
        digest = digest.strip().rpartition("@")[2]  # a RepoDigest is name@sha256:...
        if not DIGEST.fullmatch(digest):
            parser.error(f"--digest {args.digest!r} is not sha256:<64 hex digits>")

    if args.ray_version is not None and not VERSION.fullmatch(args.ray_version.strip()):
        parser.error(f"--ray-version {args.ray_version!r} is not a version such as 2.60.0")

    path = records_file()
    records = read(path)
    if args.push_only:
        entry = records.get(args.reference)
        if not isinstance(entry, dict):
            parser.error(f"no build of {args.reference} is recorded in {path}")
        entry["digest"] = digest
    else:
        if not args.id or not args.accelerator:
            parser.error("--id and --accelerator are required")
        records[args.reference] = {
            "id": image_id(args.id),
            "accelerator": args.accelerator,
            "extras": sorted({name.strip() for name in args.extras.split(",") if name.strip()}),
            "ray_version": args.ray_version.strip() if args.ray_version else None,
            "revision": args.revision or None,
            "dirty": bool(args.dirty),
            "built_at": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "digest": digest,
        }
    write(path, records)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
