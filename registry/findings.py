"""Findings: what the evidence says is wrong, odd or notable about a file.

Every finding has a stable ``rule_id``, a severity, a message a person understands and structured
evidence. Rules are declared once with :func:`rule` (at import time of the module that raises them) so
that reports (SARIF, exhibits) can list the catalogue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any


class Severity(IntEnum):
    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            names = ", ".join(s.name.lower() for s in cls)
            raise ValueError(f"unknown severity {text!r}; expected one of {names}") from None

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Rule:
    id: str
    severity: Severity
    title: str
    help: str = ""


@dataclass(frozen=True)
class Finding:
    rule_id: str
    severity: Severity
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "severity": self.severity.label,
            "message": self.message,
            "evidence": self.evidence,
        }


RULES: dict[str, Rule] = {}


def rule(rule_id: str, severity: Severity, title: str, help: str = "") -> Rule:
    """Declare a rule (idempotent for identical declarations)."""
    existing = RULES.get(rule_id)
    new = Rule(rule_id, severity, title, help)
    if existing is not None and existing != new:
        raise ValueError(f"rule {rule_id} declared twice with different attributes")
    RULES[rule_id] = new
    return new


def finding(rule_id: str, message: str, severity: Severity | None = None, **evidence: Any) -> Finding:
    """Make a finding for a declared rule; ``severity`` overrides the rule's default."""
    r = RULES.get(rule_id)
    if r is None:
        raise KeyError(f"finding for undeclared rule {rule_id!r}")
    return Finding(rule_id, severity if severity is not None else r.severity, message, dict(evidence))


def from_error(rule_id: str, message: str, evidence: dict[str, Any]) -> Finding:
    """A finding for an error that carries a declared rule id (e.g. a :class:`FormatError`)."""
    r = RULES.get(rule_id)
    return Finding(rule_id, r.severity if r else Severity.HIGH, message, dict(evidence))


def all_rules() -> list[Rule]:
    """Every rule, after importing every analyzer so that their rules are declared."""
    from registry import analysis

    analysis.load_analyzers()
    return sorted(RULES.values(), key=lambda r: r.id)
