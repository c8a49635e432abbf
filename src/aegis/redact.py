"""Credentials out of everything Aegis prints or writes.

A tracking URI such as ``https://alice:PW@mlflow.example.com`` carries its password in
the URL's userinfo; Aegis records tracking URIs in ``tracking.json``, ``summary.json``,
logs and manifests, so every such place goes through ``mask_url_credentials``.
"""

from __future__ import annotations

import re

MASK = "***"

# scheme://user:password@host  or  scheme://token@host (userinfo without a colon)
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/@\s]+)@")


def url_has_credentials(text: str) -> bool:
    """True when ``text`` holds a URL with userinfo (``user:pass@`` or ``token@``)."""
    return bool(_USERINFO.search(str(text)))


def mask_url_credentials(text: str) -> str:
    """``https://alice:PW@host/x`` -> ``https://alice:***@host/x``; ``s3://TOKEN@b`` -> ``s3://***@b``.

    The user name stays visible (it tells whose credentials were used); the secret does not.
    """

    def _mask(match: re.Match[str]) -> str:
        user, sep, _secret = match.group("userinfo").partition(":")
        shown = f"{user}:{MASK}" if sep else MASK
        return f"{match.group('scheme')}{shown}@"

    return _USERINFO.sub(_mask, str(text))
