"""User-facing errors.

They subclass Hydra's ``CompactHydraException`` so that ``@hydra.main`` prints only the
message (no traceback) and exits 1: a bad override is the user's input, not a bug.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Optional

from hydra.errors import CompactHydraException


class AegisError(CompactHydraException):
    """An error the user can fix; its message says which key or file and what is valid."""


class ConfigError(AegisError):
    """A composed config that Aegis refuses to run.

    ``key`` (optional) is the full config key the sentence refuses, so a collecting pass
    can skip the checks that would only repeat it (see :class:`Problems`).
    """

    def __init__(self, message: str, key: Optional[str] = None) -> None:
        super().__init__(message)
        self.key = key


class ConfigErrors(ConfigError):
    """Every problem one validation pass found, one sentence each, in the order found.

    ``str()`` is the sentences one per line; :func:`error_lines` gives the printed form.
    """

    def __init__(self, sentences: Iterable[str]) -> None:
        self.sentences = list(sentences)
        super().__init__("\n".join(self.sentences))

    def __reduce__(self) -> Any:  # pickled whole (a Ray trial's error), not as one joined string
        return (type(self), (self.sentences,))


def error_lines(exc: BaseException) -> list[str]:
    """The printed form of a user error: one ``Error: <sentence>`` line per problem.

    A sentence quotes the value it refuses, which may carry a credential (a URL with a
    password given to the wrong key): masked here, the one place every sentence passes."""
    from aegis.redact import mask_credentials

    sentences = exc.sentences if isinstance(exc, ConfigErrors) else [str(exc).strip()]
    return [f"Error: {mask_credentials(sentence)}" for sentence in sentences]


def _related(a: str, b: str) -> bool:
    """``a`` is ``b``, or a node above or below it (``data`` and ``data.num_classes``)."""
    return a == b or a.startswith((b + ".", b + "[")) or b.startswith((a + ".", a + "["))


def _within(key: str, node: str) -> bool:
    return key == node or key.startswith((node + ".", node + "["))


class Problems:
    """The sentences of one collecting validation pass, and the keys they refused.

    A check adds a sentence (``add``) and goes on to the next independent problem; a check
    that only makes sense for a value already refused asks ``refused(...)`` first and skips,
    so one bad value is one sentence, not a cascade of its consequences.
    """

    def __init__(self) -> None:
        self.sentences: list[str] = []
        self.keys: set[str] = set()

    def __bool__(self) -> bool:
        return bool(self.sentences)

    def __len__(self) -> int:
        return len(self.sentences)

    def add(self, sentence: str, *keys: Optional[str]) -> None:
        if sentence not in self.sentences:
            self.sentences.append(sentence)
        self.keys.update(k for k in keys if k)

    def refused(self, *keys: str) -> bool:
        """Some key among ``keys``, a node above it or a key under it was refused."""
        return any(_related(key, bad) for key in keys for bad in self.keys)

    def covers(self, key: str) -> bool:
        """``key`` itself or a node above it was refused (its value is not worth reading)."""
        return any(_within(key, bad) for bad in self.keys)

    def run(self, check: Callable[..., Any], *args: Any) -> None:
        """Run a check written in the raising style; what it raises joins the list.

        An OmegaConf error (a value that cannot be read) becomes one sentence too, unless
        it is about a key already refused, e.g. a ``???`` another check read again.
        """
        from omegaconf.errors import OmegaConfBaseException

        try:
            check(*args)
        except ConfigErrors as exc:
            for sentence in exc.sentences:
                self.add(sentence)
        except ConfigError as exc:
            if exc.key is None or not self.covers(exc.key):
                self.add(str(exc).strip(), exc.key)
        except OmegaConfBaseException as exc:
            key = getattr(exc, "full_key", None) or None
            if key is not None and self.covers(key):
                return
            reason = str(exc).splitlines()[0].rstrip(".")
            self.add(f"{key + ' ' if key else ''}could not be read from the config: {reason}.", key)

    def raise_if_any(self) -> None:
        if self.sentences:
            raise ConfigErrors(self.sentences)
