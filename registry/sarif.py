"""Findings as a SARIF 2.1.0 log (the format code-scanning tools read).

One run; ``tool.driver.rules`` is the rule catalogue (every declared rule, plus any rule id met in the
findings that this process has not declared); each result names its rule by ``ruleId`` and ``ruleIndex``,
has a ``level`` (HIGH and CRITICAL are ``error``, MEDIUM ``warning``, LOW and INFO ``note``), a message
and, when the finding concerns a file, a location whose URI is the file's ``file://`` URI (or the
``hf://`` reference of a remote file). The registry's severity is kept in ``properties`` and, for GitHub
code scanning, as a numeric ``security-severity`` on each rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from registry.findings import RULES, Rule, Severity

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_VERSION = "2.1.0"

_LEVEL = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}
#: GitHub code scanning reads ``security-severity`` (0.0–10.0) from rule properties
_SECURITY_SEVERITY = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
    Severity.INFO: "0.0",
}


def level(sev: Severity) -> str:
    return _LEVEL[sev]


def artifact_uri(path: str) -> str:
    """A URI for a finding's path: ``file://`` for absolute local paths, the text itself for URIs."""
    if "://" in path:
        return path
    p = Path(path)
    if p.is_absolute():
        return p.as_uri()
    return Path(path).as_posix()


def _rule_descriptor(r: Rule) -> dict[str, Any]:
    d: dict[str, Any] = {
        "id": r.id,
        "name": "".join(part.capitalize() for part in r.id.replace("-", ".").split(".")),
        "shortDescription": {"text": r.title},
        "fullDescription": {"text": r.help or r.title},
        "defaultConfiguration": {"level": level(r.severity)},
        "properties": {
            "severity": r.severity.label,
            "security-severity": _SECURITY_SEVERITY[r.severity],
            "tags": ["security", r.id.split(".", 1)[0]],
        },
    }
    if r.help:
        d["help"] = {"text": r.help}
    return d


def sarif_log(
    findings: Iterable[Mapping[str, Any]],
    *,
    tool_version: str,
    rules: Iterable[Rule] | None = None,
    invocation: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Build a SARIF 2.1.0 log from finding rows.

    A row has ``rule_id``, ``severity`` (label), ``message``, and optionally ``path``, ``blob_sha256``
    and ``evidence``. ``invocation`` may carry ``exit_code`` and ``arguments`` (list of strings).
    """
    rows = list(findings)
    catalogue: dict[str, Rule] = {r.id: r for r in (rules if rules is not None else RULES.values())}
    for row in rows:
        rid = str(row["rule_id"])
        if rid not in catalogue:
            sev = Severity.parse(str(row.get("severity") or "info"))
            catalogue[rid] = Rule(rid, sev, rid)
    ordered = sorted(catalogue.values(), key=lambda r: r.id)
    index = {r.id: i for i, r in enumerate(ordered)}

    results = []
    for row in rows:
        sev = Severity.parse(str(row.get("severity") or "info"))
        rid = str(row["rule_id"])
        result: dict[str, Any] = {
            "ruleId": rid,
            "ruleIndex": index[rid],
            "level": level(sev),
            "message": {"text": str(row.get("message") or catalogue[rid].title)},
        }
        path = row.get("path")
        if path:
            result["locations"] = [{"physicalLocation": {"artifactLocation": {"uri": artifact_uri(str(path))}}}]
        props: dict[str, Any] = {"severity": sev.label}
        sha = row.get("blob_sha256")
        if sha:
            props["sha256"] = sha
            result["partialFingerprints"] = {"contentSha256/v1": str(sha)}
        evidence = row.get("evidence")
        if evidence:
            props["evidence"] = evidence
        result["properties"] = props
        results.append(result)

    inv: dict[str, Any] = {"executionSuccessful": True}
    if invocation:
        if "exit_code" in invocation:
            inv["exitCode"] = int(invocation["exit_code"])
        if invocation.get("arguments") is not None:
            inv["arguments"] = [str(a) for a in invocation["arguments"]]
    return {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "modelreg",
                        "version": tool_version,
                        "semanticVersion": tool_version,
                        "rules": [_rule_descriptor(r) for r in ordered],
                    }
                },
                "invocations": [inv],
                "columnKind": "unicodeCodePoints",
                "results": results,
            }
        ],
    }
