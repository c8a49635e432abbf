"""Names and label values that the API server accepts.

A Job's name becomes a label value on its pods (``job-name``, at most 63 characters),
and a PyTorchJob's name prefixes its pods and Services (``<name>-worker-<i>``, which
must stay a DNS-1035 label), so a derived name is kept well below 63 characters.
"""

from __future__ import annotations

import re
import secrets

DNS_1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS_1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
DNS_1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
# The default run id: ``%Y-%m-%d_%H-%M-%S_<6 hex>`` (aegis.config.resolvers.new_stamp),
# already unique per submission; a pinned run id gets a random suffix instead.
STAMP = re.compile(r"(\d{4})-(\d\d)-(\d\d)_(\d\d)-(\d\d)-(\d\d)_([0-9a-f]{6})(-\d+)?")

# Room left for "-worker-<i>" and the operator's suffixes under the 63-character limit.
MAX_JOB_NAME = 48


def is_dns_1123_label(name: str) -> bool:
    return len(name) <= 63 and DNS_1123_LABEL.fullmatch(name) is not None


def is_dns_1035_label(name: str) -> bool:
    return len(name) <= 63 and DNS_1035_LABEL.fullmatch(name) is not None


def is_dns_1123_subdomain(name: str) -> bool:
    return len(name) <= 253 and DNS_1123_SUBDOMAIN.fullmatch(name) is not None


def is_label_value(value: str) -> bool:
    return len(value) <= 63 and LABEL_VALUE.fullmatch(value) is not None


def is_label_key(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if prefix and not is_dns_1123_subdomain(prefix):
        return False
    return len(name) <= 63 and LABEL_NAME.fullmatch(name) is not None


def slug(text: str, limit: int = 63) -> str:
    """Lowercase letters, digits and single dashes, starting with a letter."""
    text = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    if not text or not text[0].isalpha():
        text = "x-" + text if text else "aegis"
    return text[:limit].rstrip("-")


def label_value(text: str) -> str:
    """``text`` made into a valid label value (characters replaced, cut to 63)."""
    value = re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:63]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", value)


def run_suffix(run_id: str, nonce: str | None = None) -> str:
    """A short, DNS-safe suffix that differs between submissions."""
    stamp = STAMP.fullmatch(run_id)
    if stamp:
        y, mo, d, h, mi, s, rand, job = stamp.groups()
        return f"{y[2:]}{mo}{d}-{h}{mi}{s}-{rand}{job or ''}"
    nonce = nonce if nonce is not None else secrets.token_hex(3)
    return f"{slug(run_id, 24)}-{nonce}"


def job_name(task_name: str, run_id: str, nonce: str | None = None, limit: int = MAX_JOB_NAME) -> str:
    """``<task>-<run>``: derived from the experiment, unique per submission, DNS-1035, at most
    ``limit`` characters (a kind whose pods add longer suffixes passes less)."""
    suffix = run_suffix(run_id, nonce)
    head = slug(task_name, max(1, limit - len(suffix) - 1))
    return f"{head}-{suffix}"[:limit].rstrip("-")
