from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from registry.errors import RegistryError, UsageError
from registry.evidence import signing


def folder_with_files(tmp_path: Path) -> Path:
    d = tmp_path / "ex"
    (d / "images").mkdir(parents=True)
    (d / "a.txt").write_text("alpha\n")
    (d / "images" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    return d


def test_manifest_is_sha256sum_format(tmp_path: Path) -> None:
    d = folder_with_files(tmp_path)
    signing.write_manifest(d)
    alpha = hashlib.sha256(b"alpha\n").hexdigest()
    png = hashlib.sha256(b"\x89PNG\r\n\x1a\n").hexdigest()
    assert (d / "MANIFEST").read_text() == f"{alpha}  a.txt\n{png}  images/b.png\n"
    assert signing.check_manifest(d) == []
    (d / "MANIFEST").write_text("nonsense\n")
    assert signing.check_manifest(d) == ['MANIFEST line 1 is not \'<sha256>  <path>\': "nonsense"']


def test_p384_key_round_trip_and_tamper(tmp_path: Path) -> None:
    d = folder_with_files(tmp_path)
    key = tmp_path / "k.pem"
    info = signing.generate_key(key, curve="secp384r1")
    assert info.curve == "secp384r1" and len(info.fingerprint) == 64
    (tmp_path / "k.pub").write_bytes(info.public_pem)
    signing.write_manifest(d)
    signing.sign_with_key(d, key)
    signing.verify_with_key(d, tmp_path / "k.pub")
    (d / "images" / "b.png").write_bytes(b"changed")
    with pytest.raises(RegistryError, match="images/b.png"):
        signing.verify_with_key(d, tmp_path / "k.pub")


def test_password_protected_key(tmp_path: Path) -> None:
    k = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "enc.pem"
    path.write_bytes(
        k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                        serialization.BestAvailableEncryption(b"s3cret"))
    )  # fmt: skip
    with pytest.raises(UsageError, match="not a usable PEM private key"):
        signing.key_info(path)
    assert signing.key_info(path, "s3cret").curve == "secp256r1"
    d = folder_with_files(tmp_path)
    signing.sign_with_key(d, path, "s3cret")
    (tmp_path / "enc.pub").write_bytes(signing.key_info(path, "s3cret").public_pem)
    signing.verify_with_key(d, tmp_path / "enc.pub")


def test_refuses_other_keys_and_existing_files(tmp_path: Path) -> None:
    ed = tmp_path / "ed.pem"
    ed.write_bytes(
        ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    with pytest.raises(UsageError, match="not an ECDSA key"):
        signing.key_info(ed)
    with pytest.raises(FileExistsError):
        signing.generate_key(ed)
    with pytest.raises(UsageError, match="unknown curve"):
        signing.generate_key(tmp_path / "x.pem", curve="secp256k1")


def test_symlink_in_folder_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    d = folder_with_files(tmp_path)
    signing.write_manifest(d)
    (d / "link").symlink_to(d / "a.txt")
    (problem,) = signing.check_manifest(d)
    assert "contains a symbolic link" in problem
