"""An exhibit's integrity: the ``MANIFEST`` (SHA-256 of every file) and its OpenSSF Model Signing signature.

``MANIFEST`` uses the format of ``sha256sum`` (``<64 hex>  <relative path>``, one line per file, sorted),
so ``sha256sum -c MANIFEST`` checks it without modelreg. The signature ``model.sig`` is made with the
``model_signing`` library (a Sigstore bundle around a DSSE envelope holding an in-toto statement whose
resources are the SHA-256 of every file in the folder), so ``model_signing verify key DIR --signature
DIR/model.sig --public_key KEY`` checks it without modelreg. Offline signing uses an ECDSA key (P-256,
P-384 or P-521, PEM); Sigstore keyless signing needs the network and an OIDC identity.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registry.errors import MissingExtra, RegistryError, UsageError

MANIFEST_NAME = "MANIFEST"
SIGNATURE_NAME = "model.sig"
PUBLIC_KEY_NAME = "signer.pub.pem"
#: files that MANIFEST does not list (itself, and the signature that covers it)
NOT_IN_MANIFEST = frozenset({MANIFEST_NAME, SIGNATURE_NAME})


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def exhibit_files(folder: Path) -> list[str]:
    """Relative POSIX paths of every regular file under ``folder`` except MANIFEST and the signature."""
    out = []
    for p in sorted(folder.rglob("*")):
        if p.is_symlink():
            raise RegistryError(f"exhibit folder {folder} contains a symbolic link ({p}); exhibits hold plain files only")
        if p.is_file():
            rel = p.relative_to(folder).as_posix()
            if rel not in NOT_IN_MANIFEST:
                out.append(rel)
    return out


def manifest_text(folder: Path) -> str:
    lines = [f"{file_sha256(folder / rel)}  {rel}\n" for rel in exhibit_files(folder)]
    return "".join(lines)


def write_manifest(folder: Path) -> Path:
    path = folder / MANIFEST_NAME
    path.write_text(manifest_text(folder), encoding="utf-8", newline="\n")
    return path


def parse_manifest(text: str) -> dict[str, str]:
    """``{relative path: sha256}``; raises ValueError on a malformed line or a repeated path."""
    out: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        digest, sep, rel = line.partition("  ")
        if not sep or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest) or not rel:
            raise ValueError(f"MANIFEST line {n} is not '<sha256>  <path>': \"{line[:80]}\"")
        if rel in out:
            raise ValueError(f"MANIFEST lists {rel} twice")
        out[rel] = digest
    return out


def check_manifest(folder: Path) -> list[str]:
    """Problems with ``folder``'s MANIFEST (missing, malformed, changed, missing or unlisted files)."""
    path = folder / MANIFEST_NAME
    if not path.is_file():
        return [f"{MANIFEST_NAME} is missing"]
    try:
        listed = parse_manifest(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        return [str(e)]
    problems = []
    try:
        present = set(exhibit_files(folder))
    except RegistryError as e:
        return [str(e)]
    for rel, digest in listed.items():
        if rel not in present:
            problems.append(f"{rel}: listed in MANIFEST but missing")
        elif (found := file_sha256(folder / rel)) != digest:
            problems.append(f"{rel}: MANIFEST lists SHA-256 {digest}, found {found}")
    for rel in sorted(present - set(listed)):
        problems.append(f"{rel}: present but not listed in MANIFEST")
    return problems


# -- keys ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyInfo:
    public_pem: bytes
    #: SHA-256 of the DER SubjectPublicKeyInfo, the key's fingerprint printed in reports
    fingerprint: str
    curve: str


def _load_private(path: Path, password: str | None) -> object:
    from cryptography.hazmat.primitives import serialization

    try:
        data = path.read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read signing key {path}: {e.strerror}") from None
    try:
        return serialization.load_pem_private_key(data, password.encode() if password else None)
    except (ValueError, TypeError) as e:
        raise UsageError(f"{path} is not a usable PEM private key: {e}") from None


def key_info(private_key: Path, password: str | None = None) -> KeyInfo:
    """The public half and fingerprint of an ECDSA private key; refuses other key types."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = _load_private(private_key, password)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise UsageError(f"{private_key} is not an ECDSA key; OpenSSF Model Signing needs P-256, P-384 or P-521")
    return public_key_info(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def public_key_info(public_pem: bytes) -> KeyInfo:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        pub = serialization.load_pem_public_key(public_pem)
    except ValueError as e:
        raise UsageError(f"not a PEM public key: {e}") from None
    if not isinstance(pub, ec.EllipticCurvePublicKey):
        raise UsageError("the public key is not an ECDSA key")
    der = pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    pem = pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return KeyInfo(public_pem=pem, fingerprint=hashlib.sha256(der).hexdigest(), curve=pub.curve.name)


def generate_key(path: Path, curve: str = "secp256r1") -> KeyInfo:
    """Write a new unencrypted ECDSA private key (PKCS#8 PEM, mode 0600) and return its public info."""
    import os

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    curves = {"secp256r1": ec.SECP256R1(), "secp384r1": ec.SECP384R1(), "secp521r1": ec.SECP521R1()}
    if curve not in curves:
        raise UsageError(f"unknown curve {curve!r}; use one of {', '.join(curves)}")
    key = ec.generate_private_key(curves[curve])
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    return key_info(path)


# -- signing and verifying with model_signing ---------------------------------------------------------


def _model_signing() -> tuple[Any, Any, Any]:
    try:
        import model_signing  # noqa: F401
        from model_signing import hashing, signing, verifying
    except ImportError as e:
        raise MissingExtra(f"signing exhibits needs the model-signing and pyopenssl packages ({e})") from None
    return hashing, signing, verifying


def _hashing_config(hashing: Any) -> Any:
    return hashing.Config().set_ignored_paths(paths=[SIGNATURE_NAME], ignore_git_paths=False)


def sign_with_key(folder: Path, private_key: Path, password: str | None = None) -> Path:
    """Sign every file in ``folder`` (except the signature itself) with an ECDSA key into ``model.sig``."""
    hashing, signing, _ = _model_signing()
    key_info(private_key, password)  # clear errors for wrong or unreadable keys before model_signing's
    sig = folder / SIGNATURE_NAME
    try:
        (
            signing.Config()
            # model_signing hands the password to cryptography, which wants bytes
            .use_elliptic_key_signer(private_key=private_key, password=password.encode() if password else None)
            .set_hashing_config(_hashing_config(hashing))
            .sign(folder, sig)
        )
    except Exception as e:  # noqa: BLE001 - the library raises plain exceptions
        raise RegistryError(f"signing {folder} failed: {type(e).__name__}: {e}") from None
    return sig


def sign_with_sigstore(folder: Path, identity_token: str | None = None, use_staging: bool = False) -> Path:
    """Keyless Sigstore signing (needs the network: an OIDC identity, Fulcio and Rekor)."""
    hashing, signing, _ = _model_signing()
    sig = folder / SIGNATURE_NAME
    try:
        (
            signing.Config()
            .use_sigstore_signer(identity_token=identity_token, use_staging=use_staging, force_oob=True)
            .set_hashing_config(_hashing_config(hashing))
            .sign(folder, sig)
        )
    except Exception as e:  # noqa: BLE001 - network, OIDC and transparency-log failures all land here
        raise RegistryError(
            f"Sigstore signing failed ({type(e).__name__}: {e}). Sigstore needs network access to an OIDC "
            "provider, Fulcio and Rekor; offline, sign with an ECDSA key instead (--key KEY.pem)."
        ) from None
    return sig


def signed_digests(signature: Path) -> dict[str, str] | None:
    """``{relative path: sha256 hex}`` as listed by the in-toto statement inside ``model.sig``, read
    WITHOUT checking the signature (to say which file differs when verification fails); None when the
    statement cannot be read."""
    import base64
    import json

    try:
        bundle = json.loads(signature.read_bytes())
        statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
        return {
            str(r["name"]): str(r["digest"])
            for r in statement["predicate"]["resources"]
            if r.get("algorithm", "sha256") == "sha256"
        }
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _why_not_verified(folder: Path, public_key: Path, error: Exception) -> str:
    """A verification failure in words: which file differs (signed and found digests in hex), or why the
    signature itself does not verify."""
    sig = folder / SIGNATURE_NAME
    signed = signed_digests(sig)
    if signed is None:
        return f"{SIGNATURE_NAME} cannot be read as an OpenSSF Model Signing bundle ({type(error).__name__})"
    try:
        present = {rel: file_sha256(folder / rel) for rel in exhibit_files(folder)}
        present[MANIFEST_NAME] = file_sha256(folder / MANIFEST_NAME) if (folder / MANIFEST_NAME).is_file() else ""
        if not present[MANIFEST_NAME]:
            del present[MANIFEST_NAME]
    except RegistryError as e:
        return str(e)
    problems = []
    for rel, digest in sorted(signed.items()):
        if rel not in present:
            problems.append(f"{rel} is signed but missing")
        elif present[rel] != digest:
            problems.append(f"{rel}: signed SHA-256 {digest}, found {present[rel]}")
    problems += [f"{rel} is present but not signed" for rel in sorted(set(present) - set(signed))]
    if problems:
        return "the files differ from what was signed: " + "; ".join(problems)
    from cryptography.exceptions import InvalidSignature

    if isinstance(error, InvalidSignature):
        return (
            f"every file matches the digests listed in {SIGNATURE_NAME}, but the ECDSA signature over that list "
            f"does not verify with the public key {public_key}: the signature bytes or the signed statement in "
            f"{SIGNATURE_NAME} were altered, or it was signed with a different key"
        )
    reason = str(error).strip() or "no reason given by the library"
    return f"{type(error).__name__}: {reason}"


def verify_with_key(folder: Path, public_key: Path) -> None:
    """Check ``model.sig`` against every file in ``folder``; raises RegistryError saying, in words, what
    failed (which file, signed and found digests in hex, or why the signature does not verify)."""
    _, _, verifying = _model_signing()
    sig = folder / SIGNATURE_NAME
    if not sig.is_file():
        raise RegistryError(f"{SIGNATURE_NAME} is missing")
    try:
        verifying.Config().use_elliptic_key_verifier(public_key=public_key).set_hashing_config(
            _hashing_config(verifying.hashing)
        ).verify(folder, sig)
    except Exception as e:  # noqa: BLE001 - the library raises ValueError and crypto errors alike
        raise RegistryError(_why_not_verified(folder, public_key, e)) from None
