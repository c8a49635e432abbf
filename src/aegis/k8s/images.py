"""Container image references, as the distribution/reference grammar defines them.

A cluster launcher needs a tag or a digest: an untagged image means ``:latest``, which
pulls whatever was pushed last and makes a run unrepeatable. It also needs a registry
host: a node's runtime resolves ``aegis:1`` to ``docker.io/library/aegis:1``, so an image
built and tagged on a laptop fails to pull on a cluster (kind and minikube, where images
are loaded onto the node, are the exception a config can state).
"""

from __future__ import annotations

import re
from typing import Optional

_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(rf"(?P<name>{_NAME})(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?")


def problem(image: str) -> Optional[str]:
    """What is wrong with ``image`` for a cluster launcher, or None."""
    match = _REFERENCE.fullmatch(image)
    if not match or len(match["name"]) > 255:
        return "is not an image reference"
    if not match["tag"] and not match["digest"]:
        return "has no tag or digest"
    return None


def registry(image: str) -> Optional[str]:
    """The registry host ``image`` names, or None when it names none (Docker Hub, implicitly).

    The rule the runtimes apply: the first path component is a host when it contains a
    '.' or a ':' or is ``localhost``; ``team/aegis:1`` is ``docker.io/team/aegis:1``."""
    first, slash, _ = image.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first
    return None
