"""One hierarchy of errors. Each carries the exit code the CLI maps it to.

Exit codes: 0 done, 1 findings at or above ``--fail-on``, 2 usage error, 3 runtime failure.
"""

from __future__ import annotations

from collections.abc import Sequence


class RegistryError(Exception):
    """Base class of every error the library raises on purpose."""

    exit_code = 3


class UsageError(RegistryError):
    """The user asked for something that cannot be done as asked (bad reference, bad option)."""

    exit_code = 2


class NotFound(UsageError):
    """A reference matched nothing in the registry."""


class AmbiguousRef(UsageError):
    """A reference matched several models; ``candidates`` lists them."""

    def __init__(self, message: str, candidates: Sequence[object]) -> None:
        super().__init__(message)
        self.candidates = list(candidates)


class RegistryBusy(RegistryError):
    """Another process holds the registry file and did not release it in time."""


class RegistryCorrupt(RegistryError):
    """The registry's own data is inconsistent (for example a broken event chain)."""


class FormatError(RegistryError):
    """A model file violates the rules of its format.

    ``rule_id`` is a stable identifier (``safetensors.truncated`` …) and the message says in words
    what is wrong and where.
    """

    def __init__(self, rule_id: str, message: str, **evidence: object) -> None:
        super().__init__(message)
        self.rule_id = rule_id
        self.evidence = evidence


class SafetensorsError(FormatError):
    """A safetensors file broke one of the format's rules."""


class PickleError(FormatError):
    """A pickle stream could not be scanned (it is then "unscannable", never "safe")."""


class DeclarationInvalid(UsageError):
    """A training-data declaration failed validation; ``errors`` holds (json_path, message)."""

    def __init__(self, message: str, errors: Sequence[tuple[str, str]]) -> None:
        super().__init__(message)
        self.errors = list(errors)


class MissingExtra(RegistryError):
    """An optional feature needs packages that are not installed (e.g. the probe extra)."""
