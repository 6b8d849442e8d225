"""Training-data declarations in the registry: recorded append-only, checked against the evidence.

A declaration is recorded for one blob as a new version (never edited, never deleted) together with an
event in the hash-chained log, in one transaction. Each recording also records a *check*: the
contradictions (:func:`registry.declarations.check_declaration`) and overfitting indicators computed from
the evidence the registry holds at that moment. :func:`recheck` records a new check of the current
declaration when the evidence has grown (a rescan with identification, a registered base, a probe).

Evidence read here: the blob's hashes and embedded metadata (turned into
:class:`~registry.training.TrainingFacts`), identification rows when an identification table exists,
registered blobs that the base-model hashes point to, and the number of adapter parameters.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import duckdb

from registry.declarations import (
    Evidence,
    Indicator,
    LoadedDeclaration,
    check_declaration,
    overfitting_indicators,
)
from registry.errors import NotFound, RegistryError
from registry.findings import Finding
from registry.store.events import actor, append_event
from registry.store.write import insert_rows
from registry.training import TrainingFacts

# ---------------------------------------------------------------------------------------------------
# Evidence
# ---------------------------------------------------------------------------------------------------


def training_facts(metadata: Any) -> tuple[TrainingFacts | None, str]:
    """TrainingFacts from a blob's embedded metadata (issue 3's parser), and which parser made them."""
    if not isinstance(metadata, Mapping) or not metadata:
        return None, "none"
    md = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}
    from registry import training

    facts, _findings = training.parse_training_metadata(md)
    return facts, "registry.training.parse_training_metadata"


def identification(con: duckdb.DuckDBPyConnection, sha256: str) -> dict[str, Any] | None:
    """What identification found from the shapes (issue 3's ``identity`` table), or None."""
    rows = con.execute(
        "SELECT kind, adapter_type, arch, source FROM identity WHERE blob_sha256 = ? LIMIT 1", [sha256]
    ).fetchall()
    return dict(zip(("kind", "adapter_type", "arch", "source"), rows[0], strict=True)) if rows else None


def _registered(con: duckdb.DuckDBPyConnection, sha256: str, hashes: Mapping[str, Iterable[str]]) -> list[dict[str, Any]]:
    """Registered blobs (other than ``sha256``) having any of the given hashes."""
    conds: list[str] = []
    params: list[Any] = []
    for alg, vals in hashes.items():
        for v in {x.lower() for x in vals if x}:
            if alg == "sha256":
                conds.append("sha256 = ?")
            elif alg == "autov1":
                conds.append("autov1 = ?")
            elif alg == "autov2":
                conds.append("starts_with(sha256, ?)")
            elif alg == "autov3":
                conds.append("starts_with(autov3, ?)")
            else:
                continue
            params.append(v)
    if not conds:
        return []
    rows = con.execute(
        f"SELECT sha256, autov1, autov2, autov3 FROM blobs WHERE sha256 <> ? AND ({' OR '.join(conds)}) LIMIT 20",
        [sha256, *params],
    ).fetchall()
    out = []
    for s, a1, a2, a3 in rows:
        path = con.execute(
            "SELECT path FROM sightings WHERE blob_sha256 = ? ORDER BY seen_at DESC, id DESC LIMIT 1", [s]
        ).fetchone()
        ident = identification(con, s) or {}
        out.append(
            {
                "sha256": s,
                "autov1": a1,
                "autov2": a2,
                "autov3": a3,
                "name": str(path[0]).replace("\\", "/").split("/")[-1] if path else None,
                "arch": ident.get("arch"),
            }
        )
    return out


def n_parameters(con: duckdb.DuckDBPyConnection, sha256: str) -> int | None:
    """Elements of every tensor except LoRA ``.alpha`` scalars (an adapter's trainable parameters)."""
    row = con.execute(
        "SELECT count(*), sum(CAST(coalesce(list_aggregate(shape, 'product'), 1) AS HUGEINT)) FROM tensors "
        "WHERE blob_sha256 = ? AND NOT ends_with(name, '.alpha')",
        [sha256],
    ).fetchone()
    if not row or not row[0]:
        return None
    return int(row[1])


@dataclass
class GatheredEvidence:
    evidence: Evidence
    n_parameters: int | None
    #: what was available, stored with each check
    inputs: dict[str, Any] = field(default_factory=dict)


#: probe battery category → declaration subject kind
PROBE_SUBJECT_CATEGORIES = {"people": "person", "characters": "character"}
#: a category's collapse (lower bound of its interval) at or above this counts as the probe finding that
#: subject: the "strong" collapse threshold of the probe summary, calibrated on its known-answer test
PROBE_SUBJECT_THRESHOLD = 0.45


def probe_subjects(con: duckdb.DuckDBPyConnection, sha256: str) -> dict[str, Any] | None:
    """The latest probe run's per-category collapse as declaration evidence, or None if never probed.

    ``{"run_id", "subjects": [{"kind", "score", "threshold", "label"}]}``: ``score`` is the lower bound
    of the 95% interval of the category's collapse (how far the LoRA pulls that category's prompts to one
    image), so a hit means the probe is confident the LoRA concentrates on people (or characters).
    """
    runs = con.execute(
        "SELECT id FROM probe_runs WHERE blob_sha256 = ? ORDER BY finished_at DESC NULLS LAST, id DESC LIMIT 1",
        [sha256],
    ).fetchall()
    if not runs:
        return None
    run_id = runs[0][0]
    rows = con.execute(
        "SELECT grp, value, lo, hi FROM probe_metrics WHERE run_id = ? AND name = 'concentration' AND arm = 'collapse'",
        [run_id],
    ).fetchall()
    by_group = {g: (v, lo, hi) for g, v, lo, hi in rows}
    control = by_group.get("objects")
    subjects = []
    for category, kind in PROBE_SUBJECT_CATEGORIES.items():
        if category not in by_group or by_group[category][1] is None:
            continue
        v, lo, hi = by_group[category]
        label = f"probe run #{run_id}: {category} prompts collapse {v:.2f} [{lo:.2f}, {hi:.2f}]"
        if control is not None and control[0] is not None:
            label += f" (neutral objects {control[0]:.2f})"
        subjects.append({"kind": kind, "score": float(lo), "threshold": PROBE_SUBJECT_THRESHOLD, "label": label})
    return {"run_id": int(run_id), "subjects": subjects}


def gather_evidence(con: duckdb.DuckDBPyConnection, sha256: str, doc: Mapping[str, Any] | None = None) -> GatheredEvidence:
    row = con.execute("SELECT sha256, autov3, CAST(metadata AS VARCHAR) FROM blobs WHERE sha256 = ?", [sha256]).fetchone()
    if row is None:
        raise NotFound(f"no registered model has sha256 {sha256}")
    file_hashes = {"sha256": row[0], "autov3": row[1]}
    metadata = json.loads(row[2]) if row[2] else None
    facts, parser = training_facts(metadata)
    ident = identification(con, sha256)
    wanted: dict[str, set[str]] = {"sha256": set(), "autov1": set(), "autov2": set(), "autov3": set()}
    if facts is not None:
        for alg, v in facts.base_model_hashes.items():
            if alg in wanted and isinstance(v, str):
                wanted[alg].add(v.lower().removeprefix("0x"))
    for b in (doc or {}).get("baseModels", []):
        for alg, v in b.get("hashes", {}).items():
            if alg in wanted:
                wanted[alg].add(str(v).lower())
    bases = _registered(con, sha256, wanted)
    nparams = n_parameters(con, sha256)
    probe = probe_subjects(con, sha256)
    ev = Evidence(file_hashes=file_hashes, facts=facts, identification=ident, registered_bases=bases, probe=probe)
    inputs = {
        "file_hashes": file_hashes,
        "metadata_keys": len(metadata) if isinstance(metadata, dict) else 0,
        "facts_parser": parser,
        "metadata_families": facts.sources if facts is not None else [],
        "identification": ident,
        "registered_bases": [b["sha256"] for b in bases],
        "probe": probe,
        "n_parameters": nparams,
    }
    return GatheredEvidence(ev, nparams, inputs)


# ---------------------------------------------------------------------------------------------------
# Recording
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckResult:
    check_id: int
    declaration_id: int
    version: int
    checked_at: datetime
    findings: list[Finding]
    indicators: list[Indicator]
    inputs: dict[str, Any]


@dataclass(frozen=True)
class RecordedDeclaration:
    declaration_id: int
    blob_sha256: str
    version: int
    sha256: str
    declared_at: datetime
    event_hash: str
    check: CheckResult


def _run_check(
    con: duckdb.DuckDBPyConnection, sha256: str, declaration_id: int, version: int, doc: Mapping[str, Any],
    gathered: GatheredEvidence, now: datetime,
) -> CheckResult:
    """Compute and insert one check (inside the caller's transaction)."""
    findings = check_declaration(doc, gathered.evidence)
    indicators = overfitting_indicators(gathered.evidence.facts, doc, gathered.n_parameters)
    row = con.execute("SELECT nextval('declaration_check_id_seq')").fetchone()
    assert row is not None
    check_id = int(row[0])
    counts: dict[str, int] = {}
    for f in findings:
        counts[f.rule_id] = counts.get(f.rule_id, 0) + 1
    event_hash = append_event(
        con,
        "declaration.check",
        sha256,
        {"declaration_id": declaration_id, "version": version, "check_id": check_id, "contradictions": counts},
    )
    insert_rows(
        con,
        "declaration_checks",
        [
            {
                "id": check_id,
                "declaration_id": declaration_id,
                "blob_sha256": sha256,
                "checked_at": now,
                "inputs": json.dumps(gathered.inputs, sort_keys=True, default=str),
                "indicators": json.dumps([i.as_dict() for i in indicators], default=str),
                "event_hash": event_hash,
            }
        ],
    )
    insert_rows(
        con,
        "declaration_findings",
        [
            {
                "check_id": check_id,
                "declaration_id": declaration_id,
                "blob_sha256": sha256,
                "rule_id": f.rule_id,
                "severity": f.severity.label,
                "severity_rank": int(f.severity),
                "message": f.message,
                "evidence": json.dumps(f.evidence, sort_keys=True, default=str),
            }
            for f in findings
        ],
    )
    return CheckResult(check_id, declaration_id, version, now, findings, indicators, gathered.inputs)


def record_declaration(con: duckdb.DuckDBPyConnection, sha256: str, loaded: LoadedDeclaration) -> RecordedDeclaration:
    """Record ``loaded`` as the next version of ``sha256``'s declaration, with its event and first check,
    in one transaction."""
    gathered = gather_evidence(con, sha256, loaded.document)
    now = datetime.now(UTC)
    con.execute("BEGIN TRANSACTION")
    try:
        row = con.execute(
            "SELECT coalesce(max(version), 0) + 1, nextval('declaration_id_seq') FROM declarations WHERE blob_sha256 = ?",
            [sha256],
        ).fetchone()
        assert row is not None
        version, declaration_id = int(row[0]), int(row[1])
        event_hash = append_event(
            con,
            "declaration.add",
            sha256,
            {
                "declaration_id": declaration_id,
                "version": version,
                "document_sha256": loaded.sha256,
                "source_sha256": loaded.source_sha256,
                "source_path": loaded.source_path,
                "schema_version": loaded.document.get("schemaVersion"),
            },
        )
        insert_rows(
            con,
            "declarations",
            [
                {
                    "id": declaration_id,
                    "blob_sha256": sha256,
                    "version": version,
                    "declared_at": now,
                    "sha256": loaded.sha256,
                    "document": json.dumps(loaded.document, ensure_ascii=False),
                    "source_path": loaded.source_path,
                    "source_sha256": loaded.source_sha256,
                    "source_format": loaded.source_format,
                    "schema_version": str(loaded.document.get("schemaVersion")),
                    "actor": actor(),
                    "event_hash": event_hash,
                }
            ],
        )
        check = _run_check(con, sha256, declaration_id, version, loaded.document, gathered, now)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return RecordedDeclaration(declaration_id, sha256, version, loaded.sha256, now, event_hash, check)


def recheck(con: duckdb.DuckDBPyConnection, sha256: str) -> CheckResult:
    """Check the current declaration again against the evidence the registry holds now."""
    cur = current_declaration(con, sha256)
    if cur is None:
        raise NotFound(f"model {sha256[:16]}… has no declaration to check (record one with `modelreg declare REF FILE`)")
    gathered = gather_evidence(con, sha256, cur["document"])
    now = datetime.now(UTC)
    con.execute("BEGIN TRANSACTION")
    try:
        result = _run_check(con, sha256, cur["id"], cur["version"], cur["document"], gathered, now)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return result


# ---------------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------------


def current_declaration(con: duckdb.DuckDBPyConnection, sha256: str) -> dict[str, Any] | None:
    row = con.execute(
        "SELECT id, version, declared_at, sha256, CAST(document AS VARCHAR), source_path, source_format, actor, "
        "event_hash FROM declarations WHERE blob_sha256 = ? ORDER BY version DESC LIMIT 1",
        [sha256],
    ).fetchone()
    if row is None:
        return None
    keys = ["id", "version", "declared_at", "sha256", "document", "source_path", "source_format", "actor", "event_hash"]
    d = dict(zip(keys, row, strict=True))
    d["document"] = json.loads(d["document"])
    return d


def history(con: duckdb.DuckDBPyConnection, sha256: str) -> list[dict[str, Any]]:
    rows = con.execute(
        "SELECT version, declared_at, sha256, source_path, actor, event_hash FROM declarations "
        "WHERE blob_sha256 = ? ORDER BY version DESC",
        [sha256],
    ).fetchall()
    keys = ["version", "declared_at", "sha256", "source_path", "actor", "event_hash"]
    return [dict(zip(keys, r, strict=True)) for r in rows]


def latest_check(con: duckdb.DuckDBPyConnection, declaration_id: int) -> dict[str, Any] | None:
    row = con.execute(
        "SELECT id, checked_at, CAST(inputs AS VARCHAR), CAST(indicators AS VARCHAR) FROM declaration_checks "
        "WHERE declaration_id = ? ORDER BY checked_at DESC, id DESC LIMIT 1",
        [declaration_id],
    ).fetchone()
    if row is None:
        return None
    check_id, checked_at, inputs, indicators = row
    findings = con.execute(
        "SELECT rule_id, severity, message, CAST(evidence AS VARCHAR) FROM declaration_findings WHERE check_id = ? "
        "ORDER BY severity_rank DESC, rule_id, message",
        [check_id],
    ).fetchall()
    return {
        "check_id": check_id,
        "checked_at": checked_at,
        "inputs": json.loads(inputs),
        "indicators": json.loads(indicators),
        "contradictions": [
            {"rule_id": r, "severity": s, "message": m, "evidence": json.loads(e) if e else {}} for r, s, m, e in findings
        ],
    }


def verify_document(con: duckdb.DuckDBPyConnection, declaration_id: int) -> bool:
    """Whether a stored document still hashes to its recorded sha256 (RFC 8785 canonical JSON)."""
    import hashlib

    from registry.declarations import canonical_json

    row = con.execute("SELECT CAST(document AS VARCHAR), sha256 FROM declarations WHERE id = ?", [declaration_id]).fetchone()
    if row is None:
        raise RegistryError(f"no declaration with id {declaration_id}")
    return hashlib.sha256(canonical_json(json.loads(row[0]))).hexdigest() == row[1]
