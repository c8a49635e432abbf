"""Print the project's dependencies (plus optional groups named in $EXTRAS, comma-separated)
from pyproject.toml, one per line: what the image installs, and what build.sh --offline
fetches as wheels beforehand. One list, read in both places, so they cannot drift."""

import os
import sys
import tomllib

with open(sys.argv[1] if len(sys.argv) > 1 else "pyproject.toml", "rb") as handle:
    project = tomllib.load(handle)["project"]
extras = [name for name in os.environ.get("EXTRAS", "").split(",") if name]
print("\n".join(project["dependencies"] + [d for name in extras for d in project["optional-dependencies"][name]]))
