"""Typed facts read out of an image: what generated it and which models it names."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from registry.findings import Finding, Severity, rule

R_CHUNK_TOO_LARGE = rule(
    "trace.chunk-too-large",
    Severity.LOW,
    "An image metadata chunk or segment is larger than modelreg reads; it was skipped",
)
R_DECOMPRESSION_BOMB = rule(
    "trace.decompression-bomb",
    Severity.MEDIUM,
    "A compressed metadata chunk expands beyond the limit; decompression was stopped",
    "zTXt/iTXt text is decompressed with a bounded output size. A chunk that would expand further is "
    "typical of a decompression bomb; the text was not read.",
)
R_MALFORMED = rule(
    "trace.malformed", Severity.LOW, "An image's container or metadata structure is malformed; reading stopped there"
)
R_BAD_UTF8 = rule(
    "trace.bad-utf8", Severity.INFO, "A metadata text is not valid in its declared encoding; bad bytes were replaced"
)
R_BAD_JSON = rule("trace.bad-json", Severity.INFO, "A metadata text that should hold JSON does not parse")
R_JSON_TOO_DEEP = rule(
    "trace.json-too-deep",
    Severity.LOW,
    "A metadata JSON text is nested deeper than modelreg parses (or is too large); it was not parsed",
)
R_NOT_IMAGE = rule("trace.not-an-image", Severity.INFO, "The file is not a PNG, JPEG or WebP image")
R_UNREADABLE = rule("trace.unreadable", Severity.LOW, "The image file could not be read")
R_NO_METADATA = rule("trace.no-metadata", Severity.INFO, "The image carries no generation metadata modelreg reads")
R_C2PA = rule(
    "trace.c2pa-invalid",
    Severity.MEDIUM,
    "The image's C2PA manifest does not validate (its signature or its hash of the image fails)",
    "c2pa-python read the manifest and reported it Invalid: the image was changed after signing, or the "
    "manifest was forged or damaged. What it says about the image's origin cannot be relied on.",
)
R_C2PA_UNREADABLE = rule("trace.c2pa-unreadable", Severity.LOW, "A C2PA manifest is present but c2pa-python could not read it")
R_LIMIT = rule("trace.limit", Severity.LOW, "A limit on the number of chunks, entries or references was reached")


@dataclass(frozen=True)
class HashClaim:
    """A hash an image claims for a model, verbatim, with the algorithm its writer implies."""

    value: str  # lower-case hex (prefix removed)
    source: str  # "Model hash", "Lora hashes", "Hashes.lora:x", "invokeai.model.hash", …
    algo: str | None = None  # "blake3", "sha256", "tensor" (0x…: SHA-256 of tensor data), "opaque"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ModelRef:
    """One model the image names."""

    role: str  # checkpoint, lora, lycoris, embedding, vae, refiner, unet, controlnet, model
    name: str | None = None
    hashes: list[HashClaim] = field(default_factory=list)
    weight: float | None = None
    source: str = ""  # where in the metadata: "infotext", "prompt <lora:…>", "comfyui:4:LoraLoader"
    active: bool = True  # False for nodes muted or bypassed in a ComfyUI workflow
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["hashes"] = [h.to_dict() for h in self.hashes]
        return d


@dataclass
class GenerationFacts:
    generator: str  # "A1111", "Forge", "ComfyUI", "InvokeAI", "Fooocus", "NovelAI", "SwarmUI", "unknown"
    generator_version: str | None = None
    prompt: str | None = None
    negative_prompt: str | None = None
    sampler: str | None = None
    scheduler: str | None = None
    seed: str | None = None  # text: ComfyUI seeds reach 2**64
    steps: int | None = None
    cfg_scale: float | None = None
    width: int | None = None
    height: int | None = None
    refs: list[ModelRef] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)  # other parameters, verbatim (bounded)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["refs"] = [r.to_dict() for r in self.refs]
        return d


@dataclass(frozen=True)
class TextEntry:
    """A metadata text found in the image: where (``png:tEXt``, ``exif:UserComment`` …), its key, its text."""

    source: str
    key: str
    text: str


@dataclass
class C2paInfo:
    present: bool
    where: str  # "png:caBX", "jpeg:APP11", "webp:C2PA"
    size: int
    claim_generator: str | None = None  # from the claim's CBOR, or from c2pa-python when installed
    note: str = "presence only: the manifest's signature and ingredients are not validated"
    # -- filled by c2pa-python (optional extra ``c2pa``) when installed ----------------------------------
    reader: str | None = None  # "c2pa-python 0.38.1": the library that read and validated the manifest
    title: str | None = None
    signer: dict[str, Any] | None = None  # signature_info: issuer, common_name, alg, time
    actions: list[dict[str, Any]] = field(default_factory=list)  # c2pa.actions: action, digitalSourceType, softwareAgent
    ingredients: list[dict[str, Any]] = field(default_factory=list)  # title, format, relationship, instance_id
    validation_state: str | None = None  # Invalid, Valid (signature and hashes check), Trusted (and the signer is trusted)
    validation_codes: list[str] = field(default_factory=list)  # failure/informational codes, e.g. signingCredential.untrusted


@dataclass
class ImageMeta:
    format: str  # png, jpeg, webp, unknown
    width: int | None = None
    height: int | None = None
    texts: list[TextEntry] = field(default_factory=list)
    c2pa: C2paInfo | None = None
    findings: list[Finding] = field(default_factory=list)


@dataclass
class RefMatch:
    """How one reference matched the registry."""

    ref: ModelRef
    status: str  # matched, weak, conflict, ambiguous, not-found, inactive
    model_sha256: str | None = None
    model_name: str | None = None
    match_kind: str | None = None  # "AutoV3 prefix of 12", "the file's embedded sshs hash claim", "name only: weak"
    candidates: list[str] = field(default_factory=list)  # sha256 of every candidate (ambiguous, conflict)
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref.to_dict(),
            "status": self.status,
            "model_sha256": self.model_sha256,
            "model_name": self.model_name,
            "match_kind": self.match_kind,
            "candidates": self.candidates,
            "note": self.note,
        }


@dataclass
class ImageTrace:
    path: str
    sha256: str | None
    size: int
    meta: ImageMeta
    facts: list[GenerationFacts] = field(default_factory=list)
    matches: list[RefMatch] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def generator(self) -> str | None:
        return "+".join(sorted({f.generator for f in self.facts})) or None

    def to_dict(self) -> dict[str, Any]:
        c2pa = asdict(self.meta.c2pa) if self.meta.c2pa else None
        return {
            "path": self.path,
            "sha256": self.sha256,
            "size": self.size,
            "format": self.meta.format,
            "width": self.meta.width,
            "height": self.meta.height,
            "generator": self.generator,
            "facts": [f.to_dict() for f in self.facts],
            "matches": [m.to_dict() for m in self.matches],
            "c2pa": c2pa,
            "metadata_keys": [f"{t.source}:{t.key}" for t in self.meta.texts],
            "findings": [f.as_dict() for f in self.findings],
        }
