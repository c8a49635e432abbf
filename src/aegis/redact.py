"""Credentials out of everything Aegis prints or writes.

A tracking URI such as ``https://alice:PW@mlflow.example.com`` carries its password in
the URL's userinfo; Aegis records tracking URIs in ``tracking.json``, ``summary.json``,
logs and manifests, so every such place goes through ``mask_url_credentials``.

Config values are another way in: a ``DATABASE_URL`` with a password, a ``?token=`` in a
query string or a pasted GitHub token would travel into ``.hydra/``, ``config.yaml``,
MLflow params and a pod's manifest. ``find_credential`` recognises them so that
validation refuses them before anything is written, and ``mask_credentials`` hides them
wherever text of unknown origin (an exception, a log line, a tag) is written anyway.

The patterns are the shapes credentials really have (URL userinfo, ``password=`` pairs,
the prefixes providers give their tokens), not words that merely appear in names: a
path like ``/data/token-cache`` or a key like ``max_tokens=5`` is not a credential.
Pure ``re``: imported on the validation path, so no heavy imports here.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Optional

MASK = "***"

# Names of things that hold credentials (an env var, a config key): their values belong in a
# Secret or the process's environment, never in a config or manifest. Whole words of the
# name only: TOKENIZERS_PARALLELISM is not a token.
# PASSWORD, SECRET and TOKEN also glued to a word before them (APITOKEN, DBPASSWORD,
# CLIENTSECRET); PASS, PWD, AUTH, KEY and the rest as whole words only (BYPASS, AUTHOR and
# KEYBOARD are not credentials). A few well-known names that hold no secret are excepted.
_CREDENTIAL_NAME = re.compile(
    r"(?:^|[_.\-])(?:PASS|PWD|AUTH|KEY|CREDENTIALS?|CREDS|PRIVATE_KEY|ACCESS_KEY|API_KEY|APIKEY)(?=$|[_.\-])"
    r"|(?:PASSWORD|PASSWD|SECRET|TOKEN)(?=$|[_.\-])", re.I)
NOT_CREDENTIAL_NAMES = frozenset({"PWD", "OLDPWD", "SSH_AUTH_SOCK", "GPG_AGENT_INFO"})

# scheme://user:password@host  or  scheme://token@host (userinfo without a colon)
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/@\s]+)@")

# name=value where the name ends in a word that names a secret: ?token=..., password=... in a
# libpq DSN ("host=db password=pw"), AWS_SECRET_ACCESS_KEY=... The value stops at the
# separators of query strings, DSNs and shell-like lists.
# A value that only points at a secret ($VAR, ${oc.env:VAR}, <placeholder>, ***) is not one.
# Signed URLs (S3's X-Amz-Signature, GCS's X-Goog-Signature, Azure SAS's sig=) are bearer
# credentials too: anyone holding the URL reads the object until it expires.
_SECRET_NAME = (r"(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|signature|sig"
                r"|credential)")
_PAIR = re.compile(
    r"(?P<name>(?<![A-Za-z0-9])(?:[A-Za-z0-9]+[_.-])*" + _SECRET_NAME + r")="
    r"(?P<value>(?!\*\*\*|\.\.\.)[^\s&;,'\"$<][^\s&;,'\"]*)",
    re.IGNORECASE,
)

# Token shapes: (description, pattern, visible prefix length). Bounded on both sides so a
# longer word that merely contains one does not count.
_B = r"(?<![A-Za-z0-9_\-])"
_E = r"(?![A-Za-z0-9_\-])"
_TOKENS: tuple[tuple[str, re.Pattern[str], int], ...] = tuple(
    (what, re.compile(pattern), shown)
    for what, pattern, shown in (
        ("an AWS access key id", _B + r"(?:AKIA|ASIA)[0-9A-Z]{16}" + _E, 4),
        ("a GitHub token", _B + r"gh[pousr]_[A-Za-z0-9]{36,}" + _E, 4),
        ("a GitHub token", _B + r"github_pat_[A-Za-z0-9_]{22,}" + _E, 11),
        ("a GitLab token", _B + r"glpat-[A-Za-z0-9_\-]{20,}" + _E, 6),
        ("a Slack token", _B + r"xox[abprs]-[A-Za-z0-9\-]{10,}" + _E, 5),
        # Short ones too (a truncated or test token is still one): a digit or a capital in it,
        # so a word such as hf_transfer is not one.
        ("a Hugging Face token", _B + r"hf_(?=[a-z]*[A-Z0-9])[A-Za-z0-9]{6,}" + _E, 3),
        ("a bearer token", r"(?<![A-Za-z0-9])Bearer\s+[A-Za-z0-9\-._~+/]{8,}=*", 7),
        ("an API key", _B + r"sk-(?:(?:proj|svcacct|admin|ant-api\d\d|ant-admin\d\d)-[A-Za-z0-9_\-]{20,}|[A-Za-z0-9]{32,})" + _E, 3),
        ("a JSON Web Token", _B + r"eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*", 3),
    )
)
# The key material follows the header; masked from the header to the footer (or the end).
_PEM = re.compile(r"-----BEGIN (?P<kind>(?:[A-Z0-9]+ )*)PRIVATE KEY-----(?!\*\*\*)(?:.*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|.*)",
                  re.DOTALL)


def is_credential_name(name: str) -> bool:
    """True for a name such as ``MLFLOW_TRACKING_PASSWORD``, ``AWS_SECRET_ACCESS_KEY``,
    ``APITOKEN``, ``DB_PASS`` or ``AUTH_HEADER``."""
    name = str(name)
    return name.upper() not in NOT_CREDENTIAL_NAMES and bool(_CREDENTIAL_NAME.search(name))


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


def _userinfo_secret(match: re.Match[str]) -> bool:
    """``user:secret@`` always; a lone ``token@`` only when it is long and has digits, as
    tokens do (``ssh://git@host`` names a user, not a secret)."""
    user, sep, secret = match.group("userinfo").partition(":")
    if sep:
        return secret != MASK and secret != ""
    return user != MASK and len(user) >= 16 and any(c.isdigit() for c in user)


def find_credential(text: Any) -> Optional[str]:
    """What kind of credential ``text`` carries (``"a GitHub token"``), or None.

    Used to refuse a config value before it is written anywhere; the description goes in
    the sentence, the value (masked) too, never the secret itself."""
    text = str(text)
    if _PEM.search(text):
        return "a private key"
    if any(_userinfo_secret(match) for match in _USERINFO.finditer(text)):
        return "credentials in its URL"
    pair = _PAIR.search(text)
    if pair is not None:
        return f"a secret ({pair.group('name')}=...)"
    for what, pattern, _shown in _TOKENS:
        if pattern.search(text):
            return what
    return None


def mask_credentials(text: Any) -> str:
    """``text`` with every credential ``find_credential`` knows replaced by ``***``.

    Token shapes keep their provider's prefix (``ghp_***``) and pairs their name
    (``password=***``), so the masked text still says what was there."""
    text = mask_url_credentials(str(text))
    text = _PEM.sub(lambda m: f"-----BEGIN {m.group('kind')}PRIVATE KEY-----{MASK}", text)
    text = _PAIR.sub(lambda m: m.group("name") + "=" + MASK, text)
    for _what, pattern, shown in _TOKENS:
        text = pattern.sub(lambda m, n=shown: m.group(0)[:n] + MASK, text)
    return text


def mask_tree(value: Any) -> Any:
    """``mask_credentials`` over every string of a JSON-like tree (dict keys stay as they are)."""
    if isinstance(value, dict):
        return {key: mask_tree(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_tree(item) for item in value]
    if isinstance(value, str):
        return mask_credentials(value)
    return value


def print_exc(file: Any = None) -> None:
    """``traceback.print_exc()`` with credentials masked: the exception of a failed run can
    quote the URL a library called (MLflow's "API request to http://user:PW@host/...")."""
    import sys
    import traceback

    print(mask_credentials(traceback.format_exc()).rstrip("\n"), file=file or sys.stderr)


class MaskCredentials(logging.Filter):
    """A logging filter that masks credentials in a record's message and traceback.

    Installed on the run's handlers (console and ``train.log``, conf/hydra/default.yaml):
    a library's error can quote the URL it called, password included, and a log line
    lasts longer than the run."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_credentials(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_credentials(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_credentials(record.stack_info)
        return True
