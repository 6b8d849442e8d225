"""Exports of a model record in standard bill-of-materials formats.

* CycloneDX 1.6 ML-BOM (JSON): the model is a ``machine-learning-model`` component with a ``modelCard``
  (task, kind, architecture, datasets, probe metrics, limitations and contradictions); every dataset
  named by the training-data declaration (and every training folder named by the embedded metadata,
  marked as such) is a ``data`` component the model depends on. cyclonedx-python-lib does not model
  ``modelCard``, so the document is built as JSON and checked with the library's strict JSON validator.
* SPDX 3.0.1 (JSON-LD) with the AI and Dataset profiles, built with spdx-python-model: an
  ``ai_AIPackage`` for the model and ``dataset_DatasetPackage`` elements linked by ``trainedOn``.

Both are functions of the record and a creation time, so the same inputs give the same document.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from registry.evidence import facts, figures

#: record hash names → CycloneDX hash algorithms
CDX_HASHES = {"sha256": "SHA-256", "blake3": "BLAKE3"}
NAMESPACE = uuid.UUID("5b0a6d8e-6c59-4c3a-9a53-2f1f6a1de9a1")  # modelreg's UUIDv5 namespace


def _created(created_at: str | datetime | None) -> datetime:
    if created_at is None:
        return datetime.now(timezone.utc).replace(microsecond=0)
    if isinstance(created_at, datetime):
        return created_at if created_at.tzinfo else created_at.replace(tzinfo=timezone.utc)
    return datetime.fromisoformat(created_at.replace("Z", "+00:00"))


def _iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _prop(name: str, value: Any) -> dict[str, str]:
    return {"name": f"modelreg:{name}", "value": value if isinstance(value, str) else json.dumps(value, sort_keys=True)}


# -- CycloneDX ----------------------------------------------------------------------------------------


def cyclonedx_bom(record: Mapping[str, Any], created_at: str | datetime | None = None) -> dict[str, Any]:
    """A CycloneDX 1.6 ML-BOM of the model (JSON-ready dict)."""
    from registry import __version__

    model = record["model"]
    sha = model["sha256"]
    hashes = model["hashes"]
    kind, arch = facts.kind_and_arch(record)
    t = facts.training(record)
    model_ref = f"model-sha256-{sha}"

    datasets = facts.declared_datasets(record) + facts.embedded_datasets(record)
    data_components = []
    for i, d in enumerate(datasets, 1):
        ref = f"data-{i}"
        comp: dict[str, Any] = {
            "type": "data",
            "bom-ref": ref,
            "name": d.name,
            "data": [{"type": "dataset", "name": d.name}],
            "properties": [_prop("source", d.source)],
        }
        if d.description:
            comp["description"] = d.description
        if d.urls:
            comp["data"][0]["contents"] = {"url": d.urls[0]}
            comp["externalReferences"] = [{"type": "distribution", "url": u} for u in d.urls]
        if d.categories:
            comp["data"][0]["classification"] = ", ".join(d.categories)
        if d.item_count is not None:
            comp["properties"].append(_prop("item_count", str(d.item_count)))
        if d.license:
            comp["licenses"] = [{"license": {"name": d.license}}]
        if d.sha256:
            comp["properties"].append(_prop("manifest_sha256", d.sha256))
        if d.size_bytes is not None:
            comp["properties"].append(_prop("size_bytes", str(d.size_bytes)))
        if d.real_persons == "yes":
            comp["data"][0]["sensitiveData"] = ["depicts identifiable real persons (declared)"]
        if d.collection:  # CycloneDX has no field for how data was collected
            comp["properties"].append(_prop("data_collection", d.collection))
        data_components.append(comp)

    params: dict[str, Any] = {
        "task": "text-to-image",
        "inputs": [{"format": "text"}],
        "outputs": [{"format": "image"}],
    }
    if arch:
        params["architectureFamily"] = arch
    if kind:
        params["modelArchitecture"] = f"{kind} ({arch})" if arch else kind
    if data_components:
        params["datasets"] = [{"ref": c["bom-ref"]} for c in data_components]
    model_card: dict[str, Any] = {"modelParameters": params}
    metrics = [
        {
            "type": iv.metric,
            "value": repr(iv.value),
            "slice": iv.series,
            **(
                {"confidenceInterval": {"lowerBound": repr(iv.low), "upperBound": repr(iv.high)}}
                if iv.low is not None and iv.high is not None
                else {}
            ),
        }
        for iv in figures.intervals_from_probe(facts.section(record, "probe", "probes"))
    ]
    if metrics:
        model_card["quantitativeAnalysis"] = {"performanceMetrics": metrics}
    considerations: dict[str, Any] = {
        "technicalLimitations": [
            "Facts derived by static analysis of the file's bytes (modelreg); embedded metadata is a claim "
            "of whoever wrote the file, not a verified fact."
        ]
    }
    contra = facts.contradictions(record)
    if contra:
        considerations["ethicalConsiderations"] = [{"name": c} for c in contra]
    model_card["considerations"] = considerations

    props = [_prop(k, v) for k, v in hashes.items() if v and k not in CDX_HASHES]
    props += [_prop("format", model["format"]), _prop("size", str(model["size"]))]
    if kind:
        props.append(_prop("kind", kind))
    for key in ("trainer", "network_module", "network_dim", "network_alpha", "num_train_images", "epochs", "steps"):
        if t.get(key) is not None:
            props.append(_prop(f"training:{key}", str(t[key])))
    component: dict[str, Any] = {
        "type": "machine-learning-model",
        "bom-ref": model_ref,
        "name": facts.display_name(record),
        "hashes": [{"alg": alg, "content": hashes[k]} for k, alg in CDX_HASHES.items() if hashes.get(k)],
        "modelCard": model_card,
        "properties": props,
    }
    if isinstance(t.get("description"), str):
        component["description"] = t["description"]
    if isinstance(t.get("author"), str):
        component["authors"] = [{"name": t["author"]}]
    if isinstance(t.get("license"), str):
        component["licenses"] = [{"license": {"name": t["license"]}}]
    url = facts.hub_url(record)
    if url:
        component["externalReferences"] = [{"type": "distribution", "url": url}]

    components: list[dict[str, Any]] = [*data_components]
    deps = [c["bom-ref"] for c in data_components]
    base_name, base_hashes = facts.base_model(record)
    if base_name or base_hashes:
        base: dict[str, Any] = {
            "type": "machine-learning-model",
            "bom-ref": "base-model",
            "name": base_name or "base model",
            "properties": [_prop("source", "embedded metadata")] + [_prop(f"claimed:{k}", v) for k, v in sorted(base_hashes.items())],
        }
        if isinstance(base_hashes.get("sha256"), str) and len(base_hashes["sha256"]) == 64:
            base["hashes"] = [{"alg": "SHA-256", "content": base_hashes["sha256"]}]
        components.append(base)
        deps.append("base-model")

    created = _created(created_at)
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": f"urn:uuid:{uuid.uuid5(NAMESPACE, sha + _iso(created))}",
        "version": 1,
        "metadata": {
            "timestamp": _iso(created),
            "tools": {"components": [{"type": "application", "name": "modelreg", "version": __version__}]},
            "component": component,
        },
        "components": components,
        "dependencies": [{"ref": model_ref, "dependsOn": deps}, *({"ref": d} for d in deps)],
    }


def validate_cyclonedx(text: str) -> list[str]:
    """Errors of a CycloneDX 1.6 JSON document under cyclonedx-python-lib's strict JSON validator."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    errors = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text, all_errors=True)
    return [str(e) for e in errors] if errors else []


# -- SPDX 3.0.1 ----------------------------------------------------------------------------------------


def spdx_document(record: Mapping[str, Any], created_at: str | datetime | None = None) -> dict[str, Any]:
    """An SPDX 3.0.1 JSON-LD document with an AI package for the model and its training datasets."""
    from spdx_python_model import v3_0_1 as s

    from registry import __version__

    sha = record["model"]["sha256"]
    hashes = record["model"]["hashes"]
    created = _created(created_at)
    base = f"https://modelreg.dev/spdx/sha256-{sha}/{_iso(created)}"
    objs = s.SHACLObjectSet()
    ci = s.CreationInfo(specVersion="3.0.1", created=created)
    tool = objs.add(s.Tool(spdxId=f"{base}/tool", name=f"modelreg {__version__}", creationInfo=ci))
    agent = objs.add(s.SoftwareAgent(spdxId=f"{base}/agent", name="modelreg registry", creationInfo=ci))
    ci.createdBy = [agent]
    ci.createdUsing = [tool]

    kind, arch = facts.kind_and_arch(record)
    t = facts.training(record)
    verified = [s.Hash(algorithm=s.HashAlgorithm.sha256, hashValue=sha)]
    if hashes.get("blake3"):
        verified.append(s.Hash(algorithm=s.HashAlgorithm.blake3, hashValue=hashes["blake3"]))
    hyper = [
        s.DictionaryEntry(key=k, value=str(t[k]))
        for k in ("network_module", "network_dim", "network_alpha", "learning_rate", "epochs", "steps", "batch_size", "resolution", "optimizer")
        if t.get(k) is not None
    ]
    ai_args: dict[str, Any] = {
        "spdxId": f"{base}/model",
        "name": facts.display_name(record),
        "creationInfo": ci,
        "software_primaryPurpose": s.software_SoftwarePurpose.model,
        "verifiedUsing": verified,
        "ai_domain": ["text-to-image generation"],
        "ai_typeOfModel": [x for x in (kind, arch) if x],
        "ai_hyperparameter": hyper,
        "suppliedBy": agent,
    }
    url = facts.hub_url(record)
    if url:
        ai_args["software_downloadLocation"] = url
    if isinstance(t.get("trainer"), str):
        ai_args["ai_informationAboutTraining"] = f"trained with {t['trainer']} (embedded metadata)"
    contra = facts.contradictions(record)
    if contra:
        ai_args["ai_limitation"] = "; ".join(contra)
    ai = objs.add(s.ai_AIPackage(**ai_args))

    elements: list[Any] = [ai, tool, agent]
    datasets: list[Any] = []
    licences: list[Any] = []
    for i, d in enumerate(facts.declared_datasets(record) + facts.embedded_datasets(record), 1):
        args: dict[str, Any] = {
            "spdxId": f"{base}/dataset-{i}",
            "name": d.name,
            "creationInfo": ci,
            "software_primaryPurpose": s.software_SoftwarePurpose.data,
            "dataset_datasetType": [s.dataset_DatasetType.image],
            "comment": f"source: {d.source}",
        }
        if d.description:
            args["description"] = d.description
        if d.urls:
            args["software_downloadLocation"] = d.urls[0]
        if d.size_bytes is not None:
            args["dataset_datasetSize"] = d.size_bytes
        if d.item_count is not None:
            args["comment"] += f"; {d.item_count} items"
        if d.collection:
            args["dataset_dataCollectionProcess"] = d.collection
        if d.real_persons is not None:
            args["dataset_hasSensitivePersonalInformation"] = getattr(s.PresenceType, d.real_persons)
        dataset = objs.add(s.dataset_DatasetPackage(**args))
        datasets.append(dataset)
        if d.license:
            lic = objs.add(
                s.simplelicensing_LicenseExpression(
                    spdxId=f"{base}/dataset-{i}/license", creationInfo=ci, simplelicensing_licenseExpression=d.license
                )
            )
            licences += [
                lic,
                objs.add(
                    s.Relationship(
                        spdxId=f"{base}/dataset-{i}/declared-license",
                        creationInfo=ci,
                        from_=dataset,
                        to=[lic],
                        relationshipType=s.RelationshipType.hasDeclaredLicense,
                    )
                ),
            ]
    elements += datasets + licences
    if datasets:
        rel = objs.add(
            s.Relationship(
                spdxId=f"{base}/trained-on",
                creationInfo=ci,
                from_=ai,
                to=datasets,
                relationshipType=s.RelationshipType.trainedOn,
            )
        )
        elements.append(rel)
    objs.add(
        s.SpdxDocument(
            spdxId=f"{base}/document",
            name=f"modelreg record of sha256:{sha}",
            creationInfo=ci,
            rootElement=[ai],
            element=elements,
            profileConformance=[
                s.ProfileIdentifierType.core,
                s.ProfileIdentifierType.software,
                s.ProfileIdentifierType.ai,
                s.ProfileIdentifierType.dataset,
            ],
        )
    )
    data: dict[str, Any] = s.JSONLDSerializer().serialize_data(objs)
    return data


def read_spdx(data: Mapping[str, Any]) -> dict[str, Any]:
    """Load an SPDX 3 JSON-LD document back with spdx-python-model and summarise what it holds."""
    import spdx_python_model
    from spdx_python_model import v3_0_1 as s

    _, objs = spdx_python_model.load_data(dict(data))
    ai = [o for o in objs.foreach() if isinstance(o, s.ai_AIPackage)]
    ds = [o for o in objs.foreach() if isinstance(o, s.dataset_DatasetPackage)]
    rels = [o for o in objs.foreach() if isinstance(o, s.Relationship)]
    def name_of(obj: Any) -> str:
        return str(getattr(obj, "name", obj))

    trained = [
        (name_of(r.from_), sorted(name_of(x) for x in r.to))
        for r in rels
        if r.relationshipType == s.RelationshipType.trainedOn
    ]
    models = []
    for a in ai:
        hashes = {}
        for h in a.verifiedUsing:
            if isinstance(h, s.Hash):
                hashes[str(h.algorithm).rsplit("/", 1)[-1]] = str(h.hashValue)
        models.append({"name": a.name, "hashes": hashes})
    return {
        "models": models,
        "datasets": sorted(name_of(d) for d in ds),
        "trained_on": trained,
    }
