"""Tiny real images with generation metadata, built the way each generator writes them.

PNGs are written chunk by chunk (signature, IHDR, text chunks, one IDAT of zlib-compressed scanlines,
IEND, every chunk with its CRC-32), so the tests need no imaging library; JPEG and WebP come from Pillow
with EXIF written by piexif (the library A1111 and Forge use), and skip when those are absent.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Sequence

PNG_SIG = b"\x89PNG\r\n\x1a\n"


def chunk(ctype: bytes, data: bytes, length: int | None = None) -> bytes:
    n = len(data) if length is None else length
    return struct.pack(">I", n) + ctype + data + struct.pack(">I", zlib.crc32(ctype + data) & 0xFFFFFFFF)


def text_chunk(key: str, text: str, kind: str = "tEXt") -> bytes:
    k = key.encode("latin-1") + b"\0"
    if kind == "tEXt":
        return chunk(b"tEXt", k + text.encode("latin-1"))
    if kind == "zTXt":
        return chunk(b"zTXt", k + b"\0" + zlib.compress(text.encode("latin-1")))
    if kind == "iTXt":
        return chunk(b"iTXt", k + b"\0\0" + b"\0" + b"\0" + text.encode("utf-8"))
    if kind == "iTXt-z":
        return chunk(b"iTXt", k + b"\1\0" + b"\0" + b"\0" + zlib.compress(text.encode("utf-8")))
    raise ValueError(kind)


def png_bytes(chunks: Sequence[bytes] = (), width: int = 4, height: int = 3, after_idat: Sequence[bytes] = ()) -> bytes:
    ihdr = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    rows = b"".join(b"\0" + bytes((x * 40 + y * 60) % 256 for x in range(3 * width)) for y in range(height))
    idat = chunk(b"IDAT", zlib.compress(rows))
    return PNG_SIG + ihdr + b"".join(chunks) + idat + b"".join(after_idat) + chunk(b"IEND", b"")


def png_texts(texts: dict[str, str], kind: str = "tEXt") -> bytes:
    return png_bytes([text_chunk(k, v, kind) for k, v in texts.items()])


def jpeg_with_user_comment(text: str, encoding: str = "unicode") -> bytes:
    """A JPEG whose EXIF UserComment is written as A1111's modules/images.py does for JPEG:
    ``piexif.dump({"Exif": {piexif.ExifIFD.UserComment: piexif.helper.UserComment.dump(text, encoding="unicode")}})``
    inserted with ``piexif.insert``."""
    import piexif
    import piexif.helper
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 6), (10, 20, 30)).save(buf, format="JPEG", quality=80)
    exif = piexif.dump({"Exif": {piexif.ExifIFD.UserComment: piexif.helper.UserComment.dump(text, encoding=encoding)}})
    out = io.BytesIO()
    piexif.insert(exif, buf.getvalue(), out)
    return out.getvalue()


def webp_with_user_comment(text: str) -> bytes:
    """A WebP with the same EXIF (A1111 saves WebP with ``exif=piexif.dump(...)``)."""
    import piexif
    import piexif.helper
    from PIL import Image

    exif = piexif.dump({"Exif": {piexif.ExifIFD.UserComment: piexif.helper.UserComment.dump(text, encoding="unicode")}})
    buf = io.BytesIO()
    Image.new("RGB", (8, 6), (10, 20, 30)).save(buf, format="WEBP", exif=exif, quality=80)
    return buf.getvalue()


def c2pa_signed_png(texts: dict[str, str]) -> bytes:
    """A PNG signed with a real C2PA manifest (c2pa-python's Builder; a throwaway ES256 CA and signer made
    with cryptography), declaring the image created by a trained algorithm, as a generator would."""
    import datetime
    import json

    import c2pa
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "modelreg test")])

    now = datetime.datetime.now(datetime.UTC)
    valid = (now - datetime.timedelta(days=1), now + datetime.timedelta(days=30))
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("test ca")).issuer_name(name("test ca")).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(valid[0]).not_valid_after(valid[1])
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .sign(ca_key, hashes.SHA256()))  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder().subject_name(name("test signer")).issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(valid[0]).not_valid_after(valid[1])
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))  # fmt: skip
    chain = leaf.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM)
    pk = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(alg=b"es256", sign_cert=chain, private_key=pk, ta_url=None))
    manifest = {
        "claim_generator_info": [{"name": "modelreg-test", "version": "1.0"}],
        "title": "generated.png",
        "assertions": [{"label": "c2pa.actions", "data": {"actions": [{
            "action": "c2pa.created",
            "digitalSourceType": "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"}]}}],
    }  # fmt: skip
    dst = io.BytesIO()
    c2pa.Builder(json.dumps(manifest)).sign(signer, "image/png", io.BytesIO(png_texts(texts)), dst)
    return dst.getvalue()
