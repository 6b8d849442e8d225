"""Analyzer ``training`` (order 30): embedded training metadata as typed facts, and hash-claim checks.

Sets ``ctx.facts["training"]`` (:class:`registry.training.TrainingFacts`) and ``ctx.facts["hash_checks"]``;
writes one ``training_facts`` row when the metadata says anything about training or provenance, and one
``hash_checks`` row per embedded hash claim about the file itself.
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from typing import Any

from registry.analysis import Analyzer, FileContext
from registry.training import TrainingFacts, check_hash_claims, kohya_legacy_hashes, parse_training_metadata

_I64 = 2**63 - 1
#: ``json.dumps(v, default=str, ensure_ascii=False)``'s encoder, built once
_JSON = json.JSONEncoder(default=str, ensure_ascii=False)


def _i64(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) and -_I64 <= v <= _I64 else None


def facts_row(f: TrainingFacts) -> dict[str, Any]:
    h = f.base_model_hashes
    return {
        "trainer": f.trainer,
        "trainer_version": f.trainer_version,
        "sources": list(f.sources),
        "base_model_name": f.base_model_name,
        "base_model_version": f.base_model_version,
        "architecture_claim": f.architecture_claim,
        "base_autov1": h.get("autov1"),
        "base_autov2": h.get("autov2"),
        "base_sha256": h.get("sha256"),
        "network_module": f.network_module,
        "network_dim": _i64(f.network_dim),
        "network_alpha": f.network_alpha,
        "num_train_images": _i64(f.num_train_images),
        "num_reg_images": _i64(f.num_reg_images),
        "distinct_images": _i64(f.distinct_images),
        "epochs": _i64(f.epochs),
        "epoch": _i64(f.epoch),
        "steps": _i64(f.steps),
        "max_train_steps": _i64(f.max_train_steps),
        "batch_size": _i64(f.batch_size),
        "resolution": f.resolution,
        "learning_rate": f.learning_rate,
        "unet_lr": f.unet_lr,
        "text_encoder_lr": f.text_encoder_lr,
        "optimizer": f.optimizer,
        "seed": _i64(f.seed),
        "started_at": f.started_at,
        "finished_at": f.finished_at,
        "title": f.title,
        "author": f.author,
        "output_name": f.output_name,
        "trigger_words": list(f.trigger_words),
        "facts": _JSON.encode(_facts_dict(f)),
    }


_FIELDS = tuple(x.name for x in fields(TrainingFacts))


def _facts_dict(f: TrainingFacts) -> dict[str, Any]:
    """``f.to_dict()`` for JSON text, without ``dataclasses.asdict``'s deep copy of every value (the
    text is the same: only the nested dataclasses, the dataset folders, need turning into dicts)."""
    d = {k: getattr(f, k) for k in _FIELDS}
    d["datasets"] = [asdict(x) for x in f.datasets]
    return d


def run(ctx: FileContext) -> None:
    if not ctx.metadata:
        return
    facts, findings = parse_training_metadata(ctx.metadata)
    legacy = None
    if "sshs_legacy_hash" in ctx.metadata and ctx.header is not None and ctx.header.valid:
        data = ctx.buffer()[ctx.header.data_start : ctx.header.data_end]
        legacy = kohya_legacy_hashes(ctx.header.tensors, ctx.metadata, data)
        del data
    checks, hash_findings = check_hash_claims(ctx.metadata, ctx.hashes, legacy)
    ctx.facts["training"] = facts
    ctx.facts["hash_checks"] = checks
    ctx.findings.extend(findings)
    ctx.findings.extend(hash_findings)
    if facts.sources or facts.hash_claims:
        ctx.add_rows("training_facts", [facts_row(facts)])
    if checks:
        ctx.add_rows("hash_checks", [c.to_dict() for c in checks])


ANALYZER = Analyzer("training", 30, run, version="1", tables=("training_facts", "hash_checks"))
