"""Findings as a SARIF 2.1.0 log (the format code-scanning tools read).

One run; ``tool.driver.rules`` is the rule catalogue (every declared rule, plus any rule id met in the
findings that this process has not declared); each result names its rule by ``ruleId`` and ``ruleIndex``,
has a ``level`` (HIGH and CRITICAL are ``error``, MEDIUM ``warning``, LOW and INFO ``note``), a message
and, when the finding concerns a file, a location. A file under the base folder (``base``, by default the
working directory) has a relative URI with ``uriBaseId`` ``ROOT``, and ``run.originalUriBaseIds`` says
what ``ROOT`` is, so the log can be read on another machine (SARIF 2.1.0 §3.4.4, §3.14.14); a file
elsewhere keeps its absolute ``file://`` URI, and a remote file its ``hf://`` reference. Each result's
``partialFingerprints["contentAndPath/v1"]`` is the SHA-256 of (rule, content SHA-256, URI): one file at
two paths gives two results that a code-scanning tool keeps apart. The registry's severity is kept in
``properties`` and, for GitHub code scanning, as a numeric ``security-severity`` on each rule.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from registry.findings import RULES, Rule, Severity

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_VERSION = "2.1.0"
#: the uriBaseId of paths under the base folder
ROOT_ID = "ROOT"

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


def relative_uri(path: str, base: Path | None) -> tuple[str, str | None]:
    """``(uri, uriBaseId)``: a relative URI against ``ROOT`` for a local path under ``base``, else
    :func:`artifact_uri` and no base id."""
    if base is None or "://" in path:
        return artifact_uri(path), None
    p = Path(os.path.abspath(path))
    try:
        rel = p.relative_to(base)
    except ValueError:
        return artifact_uri(str(p)), None
    # percent-encode like as_uri() does, without the scheme
    quoted = (Path("/") / rel).as_uri()[len("file:///"):] if rel.parts else "."
    return quoted, ROOT_ID


def fingerprint(rule_id: str, sha256: str | None, uri: str) -> str:
    """SHA-256 over the rule id, the content hash and the location: one value per (content, path)."""
    return hashlib.sha256("\0".join((rule_id, sha256 or "", uri)).encode("utf-8")).hexdigest()


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
    base: str | Path | None = None,
) -> dict[str, Any]:
    """Build a SARIF 2.1.0 log from finding rows.

    A row has ``rule_id``, ``severity`` (label), ``message``, and optionally ``path``, ``blob_sha256``
    and ``evidence``. ``invocation`` may carry ``exit_code`` and ``arguments`` (list of strings).
    ``base`` is the folder relative URIs are taken against (default: the working directory).
    """
    base_dir = Path(os.path.abspath(base if base is not None else os.getcwd()))
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
    used_base = False
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
        sha = row.get("blob_sha256")
        uri = ""
        if path:
            uri, base_id = relative_uri(str(path), base_dir)
            loc: dict[str, Any] = {"uri": uri}
            if base_id:
                loc["uriBaseId"] = base_id
                used_base = True
            result["locations"] = [{"physicalLocation": {"artifactLocation": loc}}]
        props: dict[str, Any] = {"severity": sev.label}
        if sha:
            props["sha256"] = sha
        if sha or path:
            result["partialFingerprints"] = {"contentAndPath/v1": fingerprint(rid, str(sha) if sha else None, uri)}
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
    run: dict[str, Any] = {}
    if used_base:
        root_uri = base_dir.as_uri()
        run["originalUriBaseIds"] = {ROOT_ID: {"uri": root_uri if root_uri.endswith("/") else root_uri + "/"}}
    return {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [
            {
                **run,
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
