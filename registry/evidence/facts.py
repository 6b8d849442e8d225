"""Facts the report and the exports need, read out of a record's sections by shape.

Sections are written by other parts of modelreg and grow over time; these readers accept the shapes
documented in ``docs/exhibits.md`` (and common variants) and return None or empty lists when a section
is absent, so an export never fails because an analysis was not run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


def _walk(value: Any, depth: int = 0) -> Iterable[Any]:
    if depth > 6:
        return
    if isinstance(value, Mapping):
        yield value
        for v in value.values():
            yield from _walk(v, depth + 1)
    elif isinstance(value, list):
        for v in value[:10000]:
            yield from _walk(v, depth + 1)


def _str(value: Any) -> str | None:
    if isinstance(value, Mapping):
        value = value.get("value") or value.get("name") or value.get("label")
    return value if isinstance(value, str) and value else None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def section(record: Mapping[str, Any], *names: str) -> Any:
    sections = record.get("sections") or {}
    for n in names:
        if sections.get(n) is not None:
            return sections[n]
    return None


def kind_and_arch(record: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The identified kind and base architecture (``identify`` section), or None each."""
    ident = section(record, "identify", "identification")
    if not isinstance(ident, Mapping):
        return None, None
    kind = _str(ident.get("kind"))
    arch = _str(ident.get("architecture") or ident.get("arch") or ident.get("base_architecture") or ident.get("base"))
    return kind, arch


def training(record: Mapping[str, Any]) -> Mapping[str, Any]:
    """The normalised training facts (``training`` section; :class:`registry.training.TrainingFacts` fields)."""
    t = section(record, "training")
    if isinstance(t, Mapping):
        facts = t.get("facts")
        return facts if isinstance(facts, Mapping) else t
    return {}


@dataclass
class DatasetFact:
    name: str
    #: "declaration" (the publisher's statement) or "embedded metadata" (what the file says)
    source: str
    description: str | None = None
    urls: list[str] = field(default_factory=list)
    license: str | None = None
    item_count: int | None = None
    categories: list[str] = field(default_factory=list)
    sha256: str | None = None
    #: size in bytes (SPDX datasetSize)
    size_bytes: int | None = None
    #: SPDX PresenceType for identifiable real people: "yes", "no", "noAssertion" or None
    real_persons: str | None = None
    collection: str | None = None


def _license(d: Mapping[str, Any]) -> str | None:
    lic = d.get("license", d.get("licence"))
    if lic in ("NOASSERTION", "NONE"):
        return None
    if isinstance(lic, Mapping):
        return _str(lic.get("spdx") or lic.get("expression") or lic.get("id") or lic.get("name"))
    return _str(lic)


def _urls(d: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    for key in ("sources", "urls", "url", "source"):
        v = d.get(key)
        items = v if isinstance(v, list) else [v]
        for it in items:
            u = it.get("url") if isinstance(it, Mapping) else it
            if isinstance(u, str) and "://" in u:
                out.append(u)
    return out


def declared_datasets(record: Mapping[str, Any]) -> list[DatasetFact]:
    """Datasets named by the current training-data declaration (``declarations`` section)."""
    decl = section(record, "declaration", "declarations")
    if decl is None:
        return []
    if isinstance(decl, Mapping):
        for key in ("current", "declaration", "document"):
            if isinstance(decl.get(key), Mapping):
                decl = decl[key]
                break
    for node in _walk(decl):
        ds = node.get("datasets") if isinstance(node, Mapping) else None
        if isinstance(ds, list) and ds and all(isinstance(d, Mapping) for d in ds):
            out = []
            for i, d in enumerate(ds, 1):
                role = _str(d.get("role"))
                if role is not None and role.lower().startswith("reg"):  # regularisation images, not training data
                    continue
                cats = _first(d, "contentCategories", "content_categories", "categories") or []
                presence = _str(d.get("depictsRealPersons"))
                out.append(
                    DatasetFact(
                        name=_str(d.get("name")) or f"dataset {i}",
                        source="declaration",
                        description=_str(d.get("description")),
                        urls=_urls(d),
                        license=_license(d),
                        item_count=_int(_first(d, "itemCount", "item_count", "items", "count")),
                        categories=[c for c in cats if isinstance(c, str)] if isinstance(cats, list) else [],
                        sha256=_str(_first(d, "manifestSha256", "manifest_sha256", "sha256")),
                        size_bytes=_int(_first(d, "datasetSize", "size_bytes")),
                        real_persons=presence if presence in ("yes", "no", "noAssertion") else None,
                        collection=_str(_first(d, "dataCollection", "data_collection")),
                    )
                )
            return out
    return []


def _first(d: Mapping[str, Any], *keys: str) -> Any:
    for k in keys:
        if d.get(k) is not None:
            return d[k]
    return None


def embedded_datasets(record: Mapping[str, Any]) -> list[DatasetFact]:
    """Training folders named by the embedded metadata (kohya ``ss_dataset_dirs`` via the training facts)."""
    ds = training(record).get("datasets")
    if not isinstance(ds, list):
        return []
    out = []
    for d in ds:
        if isinstance(d, Mapping) and isinstance(d.get("name"), str) and not d.get("is_reg"):
            out.append(DatasetFact(name=d["name"], source="embedded metadata", item_count=_int(d.get("img_count"))))
    return out


def contradictions(record: Mapping[str, Any]) -> list[str]:
    """Messages of findings and section entries that record a contradiction with the evidence."""
    out = [
        str(f.get("message"))
        for f in record.get("findings", [])
        if "contradict" in str(f.get("rule_id", "")) or str(f.get("rule_id", "")).startswith("declaration.")
    ]
    decl = section(record, "declaration", "declarations")
    if isinstance(decl, Mapping) and isinstance(decl.get("contradictions"), list):
        for c in decl["contradictions"]:
            msg = c.get("message") if isinstance(c, Mapping) else c
            if isinstance(msg, str) and msg not in out:
                out.append(msg)
    return out


def base_model(record: Mapping[str, Any]) -> tuple[str | None, dict[str, str]]:
    """The base model named by the training facts: ``(name, {algorithm: digest})``."""
    t = training(record)
    hashes = t.get("base_model_hashes")
    return _str(t.get("base_model_name")), dict(hashes) if isinstance(hashes, Mapping) else {}


def display_name(record: Mapping[str, Any]) -> str:
    """The most recent file name the model was seen under, or its SHA-256 prefix."""
    sightings = record.get("sightings") or []
    if sightings:
        path = str(sightings[-1].get("path", ""))
        name = path.replace("\\", "/").rsplit("/", 1)[-1]
        if name:
            return name
    return "sha256:" + str(record["model"]["sha256"])[:12]


def hub_url(record: Mapping[str, Any]) -> str | None:
    """A Hugging Face URL from a sighting's provenance (``repo_id`` [+ ``revision``, ``file``])."""
    for s in record.get("sightings") or []:
        prov = s.get("provenance")
        if isinstance(prov, Mapping) and isinstance(prov.get("repo_id"), str):
            url = f"https://huggingface.co/{prov['repo_id']}"
            if isinstance(prov.get("revision"), str) and isinstance(prov.get("file"), str):
                url += f"/blob/{prov['revision']}/{prov['file']}"
            return url
    return None
