"""Content sniffing: the bytes decide, never the extension."""

from __future__ import annotations

import io
import pickle  # writing only
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest

from registry.files.sniff import extension_mismatch, sniff, sniff_bytes, sniff_file
from registry.findings import Severity
from tests.builders import safetensors_bytes
from tests.pickle_builders import (
    CORPUS_DIR,
    P,
    Reduce,
    ZipEntry,
    legacy_torch_bytes,
    npy_object_bytes,
    torch_zip_bytes,
    zip_bytes,
)


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_every_format_by_content(tmp_path: Path) -> None:
    import os

    arrays = {"w": np.ones((2, 2), np.float32)}
    jit = zip_bytes([ZipEntry("archive/data.pkl", P(2).none().stop()), ZipEntry("archive/constants.pkl", P(2).none().stop()),
                     ZipEntry("archive/code/__torch__/m.py", b"def forward(self): pass\n")])  # fmt: skip
    npz = zip_bytes([ZipEntry("a.npy", b"\x93NUMPY\x01\x00" + b"\x00" * 10)])
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as tf:
        ti = tarfile.TarInfo("x.txt")
        ti.size = 3
        tf.addfile(ti, io.BytesIO(b"abc"))
    cases = {
        "a.safetensors": (safetensors_bytes({"w": np.zeros(3, np.float32)}), "safetensors"),
        "b.pt": (torch_zip_bytes(arrays), "pytorch-zip"),
        "c.ckpt": (legacy_torch_bytes(arrays), "pytorch-legacy"),
        "d.pkl": (pickle.dumps({"a": 1}, protocol=4), "pickle"),
        "e0.pkl": (pickle.dumps({"a": [1, 2]}, protocol=0), "pickle"),
        "e1.pkl": (pickle.dumps({"a": [1, 2]}, protocol=1), "pickle"),
        "f.pt": (jit, "torchscript"),
        "g.7z": (b"7z\xbc\xaf\x27\x1c" + b"\x00" * 30, "7z"),
        "h.npy": (npy_object_bytes(pickle.dumps([1], protocol=2)), "npy"),
        "i.npz": (npz, "npz"),
        "j.gguf": (b"GGUF" + struct.pack("<I", 3) + b"\x00" * 16, "gguf"),
        "k.safetensors": (b"version https://git-lfs.github.com/spec/v1\noid sha256:ab\nsize 12\n", "git-lfs-pointer"),
        "l.safetensors": (b"<!DOCTYPE html><html><body>404</body></html>", "html"),
        "m.json": (b'{"a": 1, "b": "text"}\n', "text"),
        "n.bin": (os.urandom(0) + bytes(range(256)) * 4, "unknown"),
        "o.tar": (tar.getvalue(), "tar"),
        "p.bin": (b"", "empty"),
        "q.zip": (zip_bytes([ZipEntry("readme.txt", b"hi")]), "zip"),
    }
    got = {name: sniff(_write(tmp_path, name, data)) for name, (data, _) in cases.items()}
    assert got == {name: fmt for name, (_, fmt) in cases.items()}


def test_sniff_bytes_keeps_the_integrator_signature() -> None:
    assert sniff_bytes(b"\x80\x02N.", 4) == "pickle"
    assert sniff_bytes(b"", 0) == "empty"
    assert sniff_bytes(safetensors_bytes({"w": np.zeros(1, np.float32)})[:64], 100) == "safetensors"


def test_legacy_is_recognised_at_any_protocol(tmp_path: Path) -> None:
    from tests.pickle_builders import TORCH_MAGIC

    for proto in (0, 2, 4):
        data = legacy_torch_bytes({"w": np.ones(2, np.float32)}, magic_pickle=pickle.dumps(TORCH_MAGIC, protocol=proto))
        assert sniff(_write(tmp_path, f"l{proto}.pt", data)) == "pytorch-legacy", proto


def test_text_that_is_not_a_pickle(tmp_path: Path) -> None:
    # "hello" starts with an opcode-looking byte (h = BINGET) but is not a pickle
    assert sniff(_write(tmp_path, "a.txt", b"hello world, this is text\n" * 10)) == "text"
    assert sniff(_write(tmp_path, "b.txt", b"(this is not a pickle either)\n" * 10)) == "text"


def test_pickle_named_safetensors_is_a_pickle_and_a_high_finding(tmp_path: Path) -> None:
    import os

    p = _write(tmp_path, "model.safetensors", pickle.dumps(Reduce(os.system, "true"), protocol=2))
    s = sniff_file(p)
    assert s.format == "pickle"
    f = extension_mismatch(p, s.format)
    assert f is not None and f.severity == Severity.HIGH and f.rule_id == "sniff.extension-mismatch"
    assert f.evidence["content"] == "pickle" and f.evidence["extension"] == ".safetensors"


@pytest.mark.parametrize(
    ("name", "fmt", "severity"),
    [
        ("x.bin", "pickle", None),
        ("x.ckpt", "pytorch-zip", None),
        ("x.safetensors", "git-lfs-pointer", Severity.MEDIUM),
        ("x.safetensors", "safetensors", None),
        ("x.pkl", "safetensors", Severity.LOW),
        ("x.npy", "pytorch-zip", Severity.HIGH),
        ("x.weird", "pickle", None),
    ],
)
def test_extension_mismatch(name: str, fmt: str, severity: Severity | None) -> None:
    f = extension_mismatch(name, fmt)
    assert (f.severity if f else None) == severity


@pytest.mark.skipif(CORPUS_DIR is None, reason="shared corpus not present")
def test_corpus_formats() -> None:
    assert CORPUS_DIR is not None
    CORPUS = CORPUS_DIR
    assert sniff(CORPUS / "loras/lora_illust.pt") == "pytorch-zip"
    assert sniff(CORPUS / "models/taef2_encoder.pth") == "pytorch-zip"
    assert sniff(CORPUS / "pickles/unsafe_zip_pytorch.pt") == "pytorch-zip"
    assert sniff(CORPUS / "pickles/password_protected.zip") == "zip"
    assert sniff(CORPUS / "loras/analog_svd_rank4.safetensors") == "safetensors"
