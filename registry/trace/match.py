"""Matching the models an image names against the registry, by every hash form and by names.

A :class:`Matcher` is built once per run from the registry (every blob's SHA-256, AutoV1, AutoV3 and
BLAKE3; the embedded ``sshs_model_hash`` / ``modelspec.hash_sha256`` claims; file names, ``ss_output_name``
and sidecar names) and then matches references in memory.

A hash claim is compared with each column its writer can mean: a bare hex value with SHA-256 (A1111's
AutoV2 is its first 10 hex), AutoV3 (the SHA-256 of the tensor data; A1111 writes LoRA hashes as its first
12), BLAKE3, AutoV1 (8 hex, old A1111 model hashes) and the file's embedded hash claims (A1111 prefers a
LoRA's ``sshs_model_hash`` to computing one, so an image may carry a claim that the bytes do not bear out);
``sha256:``/``blake3:`` prefixes (InvokeAI) and ``0x`` (SwarmUI's tensor hash) narrow the columns.

Outcomes (``status``): ``matched`` (by a hash), ``weak`` (by name only), ``conflict`` (the hash names one
registered model, the name another), ``ambiguous`` (several candidates), ``not-found``, ``inactive``
(a ComfyUI node that was muted or bypassed: named in the workflow, did not run). Only ``matched``,
``conflict`` (the hash's model) and ``weak`` become image → model links.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

import duckdb

from registry.trace.facts import HashClaim, ModelRef, RefMatch

_EXT = re.compile(r"\.(safetensors|ckpt|pt|pth|bin|gguf|sft|pkl)$", re.I)
MIN_HASH = 8


def norm_name(name: str) -> str:
    """File-name stem, lower case: ``SDXL/foo.safetensors`` and ``foo`` are the same name."""
    base = re.split(r"[\\/]", name.strip())[-1]
    return _EXT.sub("", base).strip().lower()


def _kind(col: str, n: int) -> str:
    if col == "sha256":
        return "SHA-256" if n == 64 else "AutoV2 (SHA-256 prefix of 10)" if n == 10 else f"SHA-256 prefix of {n}"
    if col == "autov3":
        return "AutoV3 (SHA-256 of the tensor data)" if n == 64 else f"AutoV3 prefix of {n}"
    if col == "blake3":
        return "BLAKE3" if n == 64 else f"BLAKE3 prefix of {n}"
    if col == "autov1":
        return "AutoV1"
    if col == "claim:sshs_model_hash":
        return "the file's embedded sshs hash claim" + ("" if n == 64 else f" (prefix of {n})")
    return f"the file's embedded {col.split(':', 1)[1]} claim" + ("" if n == 64 else f" (prefix of {n})")


#: columns a claim may mean, in order of preference (computed hashes before embedded claims)
_COLUMNS = {
    None: ("sha256", "autov3", "blake3", "autov1", "claim:sshs_model_hash", "claim:modelspec.hash_sha256"),
    "sha256": ("sha256",),
    "blake3": ("blake3",),
    "tensor": ("autov3", "claim:sshs_model_hash", "claim:modelspec.hash_sha256"),
    "opaque": (),
}


@dataclass
class Matcher:
    #: first 8 hex → [(sha256, column, full value)]
    hashes: dict[str, list[tuple[str, str, str]]] = field(default_factory=lambda: defaultdict(list))
    #: normalised name → {sha256: name source}
    names: dict[str, dict[str, str]] = field(default_factory=lambda: defaultdict(dict))
    display: dict[str, str] = field(default_factory=dict)
    #: (sha256, claim key) → how the scan judged the claim against the bytes (match, mismatch, …)
    claim_outcomes: dict[tuple[str, str], str] = field(default_factory=dict)
    autov3_of: dict[str, str] = field(default_factory=dict)
    n_models: int = 0

    @classmethod
    def from_registry(cls, con: duckdb.DuckDBPyConnection) -> Matcher:
        m = cls()
        for sha, v1, v3, b3 in con.execute("SELECT sha256, autov1, autov3, blake3 FROM blobs").fetchall():
            m.n_models += 1
            m.add_hash(sha, "sha256", sha)
            for col, v in (("autov3", v3), ("blake3", b3), ("autov1", v1)):
                if v:
                    m.add_hash(sha, col, v)
            if v3:
                m.autov3_of[sha] = v3
        for sha, key, claimed, outcome in con.execute(
            "SELECT blob_sha256, claim_key, claimed, outcome FROM hash_checks "
            "WHERE claim_key IN ('sshs_model_hash', 'modelspec.hash_sha256') AND claimed IS NOT NULL"
        ).fetchall():
            v = claimed.strip().lower().removeprefix("0x")
            if re.fullmatch(r"[0-9a-f]{8,64}", v):
                m.add_hash(sha, f"claim:{key}", v)
                m.claim_outcomes[(sha, key)] = outcome
        for sha, path in con.execute(
            "SELECT blob_sha256, arg_max(path, seen_at) FROM sightings GROUP BY blob_sha256"
        ).fetchall():
            m.display[sha] = path
        for sha, name in con.execute("SELECT DISTINCT blob_sha256, regexp_extract(path, '[^/]*$') FROM sightings").fetchall():
            m.names[norm_name(name)].setdefault(sha, "file name")
        for sha, name in con.execute(
            "SELECT blob_sha256, output_name FROM training_facts WHERE output_name IS NOT NULL"
        ).fetchall():
            m.names[norm_name(name)].setdefault(sha, "ss_output_name")
        for sha, name in con.execute(
            "SELECT DISTINCT blob_sha256, name FROM sidecar_claims WHERE blob_sha256 IS NOT NULL AND name IS NOT NULL"
        ).fetchall():
            m.names[norm_name(name)].setdefault(sha, "sidecar name")
        return m

    def add_hash(self, sha: str, col: str, value: str) -> None:
        v = value.lower()
        self.hashes[v[:8]].append((sha, col, v))

    def by_hash(self, h: HashClaim) -> dict[str, str]:
        """{sha256: match kind} of every model this claim can mean."""
        v = h.value
        out: dict[str, str] = {}
        if len(v) < MIN_HASH:
            return out
        cols = _COLUMNS.get(h.algo, ())
        for sha, col, full in self.hashes.get(v[:8], ()):
            if col not in cols:
                continue
            if col == "autov1" and len(v) != 8:
                continue
            if full.startswith(v):
                kind = _kind(col, len(v))
                prev = out.get(sha)
                if prev is None or cols.index(col) < cols.index(_col_of(prev)):
                    out[sha] = kind
        return out

    def by_name(self, name: str | None) -> dict[str, str]:
        return dict(self.names.get(norm_name(name), {})) if name else {}

    def name_of(self, sha: str) -> str | None:
        p = self.display.get(sha)
        return p.rsplit("/", 1)[-1] if p else None

    def match(self, ref: ModelRef) -> RefMatch:
        hashed: dict[str, str] = {}
        for h in ref.hashes:
            for sha, kind in self.by_hash(h).items():
                hashed.setdefault(sha, kind)
        named = self.by_name(ref.name)
        usable = [h for h in ref.hashes if h.algo != "opaque" and len(h.value) >= MIN_HASH]
        if not ref.active:
            return RefMatch(ref, "inactive", note="muted or bypassed in the workflow: named, did not run",
                            candidates=sorted(hashed or named))  # fmt: skip
        if len(hashed) == 1:
            sha, kind = next(iter(hashed.items()))
            if named and sha not in named:
                others = sorted(named)
                return RefMatch(ref, "conflict", sha, self.name_of(sha), kind, others,
                                f"the hash names {sha[:12]} ({self.name_of(sha)}); the name {ref.name!r} names "
                                + ", ".join(f"{o[:12]} ({self.name_of(o)})" for o in others[:5]))  # fmt: skip
            return RefMatch(ref, "matched", sha, self.name_of(sha), kind, note=self._claim_note(sha, kind))
        if len(hashed) > 1:
            both = [s for s in hashed if s in named]
            if len(both) == 1:
                sha = both[0]
                return RefMatch(ref, "matched", sha, self.name_of(sha), hashed[sha], sorted(hashed),
                                f"the hash prefix fits {len(hashed)} registered models; the name decided")  # fmt: skip
            note = f"the hash fits {len(hashed)} registered models"
            if len({self.autov3_of.get(s) for s in hashed}) == 1 and None not in {self.autov3_of.get(s) for s in hashed}:
                note += ": they hold the same tensor data (equal AutoV3) in different files (other headers)"
            return RefMatch(ref, "ambiguous", candidates=sorted(hashed), note=note)
        if usable:
            note = "no registered model has this hash"
            if named:
                note += "; registered files of this name have other hashes (another version or another file): " + ", ".join(
                    f"{s[:12]} ({self.name_of(s)})" for s in sorted(named)[:5]
                )
            return RefMatch(ref, "not-found", candidates=sorted(named), note=note)
        if len(named) == 1:
            sha, source = next(iter(named.items()))
            note = "the image gives no hash" if not ref.hashes else "the image's hash is not one a file can bear"
            return RefMatch(ref, "weak", sha, self.name_of(sha), "name only: weak", note=f"{note}; matched by {source}")
        if len(named) > 1:
            return RefMatch(ref, "ambiguous", candidates=sorted(named), note=f"{len(named)} registered models have this name")
        return RefMatch(ref, "not-found", note="no registered model has this name" + (" or hash" if ref.hashes else ""))


    def _claim_note(self, sha: str, kind: str) -> str | None:
        if "claim" not in kind:
            return None
        key = _col_of(kind).split(":", 1)[1]
        outcome = self.claim_outcomes.get((sha, key), "unchecked")
        if outcome == "match":
            return None
        return (f"only the file's own {key} carries this hash; checked against its bytes: {outcome} "
                "(A1111 writes a LoRA's embedded claim rather than computing one)")


def _col_of(kind: str) -> str:
    if kind.startswith(("SHA-256", "AutoV2")):
        return "sha256"
    if kind.startswith("AutoV3"):
        return "autov3"
    if kind.startswith("BLAKE3"):
        return "blake3"
    if kind == "AutoV1":
        return "autov1"
    if "sshs" in kind:
        return "claim:sshs_model_hash"
    return "claim:modelspec.hash_sha256"
