"""C2PA manifests read and validated with c2pa-python (the Content Authenticity Initiative's library;
optional extra ``c2pa``). Without it, :mod:`.readers` reports only a manifest's presence and the claim
generator it finds in the claim's CBOR.

c2pa-python validates the claim signature and the hash binding the manifest to the image's bytes; its
``validation_state`` is ``Invalid``, ``Valid`` (signature and hashes check) or ``Trusted`` (and the signing
certificate chains to a trust list, which modelreg does not configure, so ``signingCredential.untrusted``
is expected and reported as a code, not a failure).
"""

from __future__ import annotations

from collections.abc import Mapping

from registry.findings import Finding, finding
from registry.trace.facts import R_C2PA, R_C2PA_UNREADABLE, C2paInfo
from registry.trace.parsers import load_json

_MIME = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
_SIGNER_KEYS = ("issuer", "common_name", "alg", "time", "cert_serial_number")


def available() -> str | None:
    """``c2pa-python X.Y.Z`` when the library can be imported, else None."""
    try:
        import c2pa  # noqa: F401
    except Exception:  # noqa: BLE001 - a broken native library is "not available", not a crash
        return None
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"c2pa-python {version('c2pa-python')}"
    except PackageNotFoundError:
        return "c2pa-python"


def enrich(info: C2paInfo, path: str, fmt: str, findings: list[Finding]) -> None:
    """Fill ``info`` from the manifest store of the image at ``path`` (no-op without c2pa-python)."""
    reader_name = available()
    if reader_name is None or fmt not in _MIME:
        return
    import c2pa

    try:
        with open(path, "rb") as fh:
            reader = c2pa.Reader(_MIME[fmt], fh)
            text = reader.json()
    except Exception as e:  # noqa: BLE001 - the library's errors are values here: a finding
        findings.append(finding(R_C2PA_UNREADABLE.id, f"C2PA manifest present but unreadable ({type(e).__name__}: {str(e)[:200]})"))
        return
    store = load_json(text, "C2PA manifest store", findings)
    if not isinstance(store, Mapping):
        return
    info.reader = reader_name
    info.note = f"read and validated by {reader_name}"
    manifests = store.get("manifests")
    active = manifests.get(store.get("active_manifest")) if isinstance(manifests, Mapping) else None
    if isinstance(active, Mapping):
        gen = active.get("claim_generator")
        cgi = active.get("claim_generator_info")
        if isinstance(cgi, list) and cgi and isinstance(cgi[0], Mapping):
            gen = " ".join(str(cgi[0].get(k)) for k in ("name", "version") if cgi[0].get(k)) or gen
        if isinstance(gen, str):
            info.claim_generator = gen[:200]
        info.title = active.get("title") if isinstance(active.get("title"), str) else None
        sig = active.get("signature_info")
        if isinstance(sig, Mapping):
            info.signer = {k: sig[k] for k in _SIGNER_KEYS if k in sig}
        for ing in (active.get("ingredients") or [])[:100]:
            if isinstance(ing, Mapping):
                info.ingredients.append({k: ing.get(k) for k in ("title", "format", "relationship", "instance_id")})
        for a in (active.get("assertions") or [])[:200]:
            if isinstance(a, Mapping) and str(a.get("label", "")).startswith("c2pa.actions"):
                data = a.get("data")
                for act in (data.get("actions") if isinstance(data, Mapping) else None) or []:
                    if isinstance(act, Mapping):
                        agent = act.get("softwareAgent")
                        if isinstance(agent, Mapping):
                            agent = agent.get("name")
                        info.actions.append({"action": act.get("action"), "digitalSourceType": act.get("digitalSourceType"),
                                             "softwareAgent": agent})  # fmt: skip
    state = store.get("validation_state")
    info.validation_state = state if isinstance(state, str) else None
    codes = [s.get("code") for s in (store.get("validation_status") or []) if isinstance(s, Mapping)]
    info.validation_codes = [c for c in codes if isinstance(c, str)][:50]
    if info.validation_state == "Invalid":
        findings.append(finding(R_C2PA.id, "C2PA manifest does not validate: " + (", ".join(info.validation_codes) or "Invalid"),
                                codes=info.validation_codes))  # fmt: skip
