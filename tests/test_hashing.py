"""registry.hashing: every digest against an independent computation (hashlib, zlib, blake3 called
directly on the bytes; files written by the ``safetensors`` package; values quoted in REFERENCE §1)."""

from __future__ import annotations

import hashlib
import os
import struct
import threading
import zlib
from pathlib import Path

import blake3
import numpy as np
import pytest

from registry import hashing
from registry.errors import RegistryError
from registry.hashing import AUTOV1_END, AUTOV1_START, Hashes, hash_file

EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def expected(data: bytes, data_start: int | None, git_limit: int = 10 << 20) -> Hashes:
    """The digests computed the plain way, straight from the definitions."""
    sha = hashlib.sha256(data).hexdigest()
    return Hashes(
        sha256=sha,
        autov1=hashlib.sha256(data[AUTOV1_START:AUTOV1_END]).hexdigest()[:8],
        autov2=sha[:10],
        autov3=None if data_start is None else hashlib.sha256(data[data_start:]).hexdigest(),
        blake3=blake3.blake3(data).hexdigest(),
        crc32=f"{zlib.crc32(data):08x}",
        git_sha1=hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest() if len(data) <= git_limit else None,
        size=len(data),
    )


def random_bytes(n: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).bytes(n)


def test_hello_world_matches_the_reference_figures(tmp_path: Path) -> None:
    f = tmp_path / "hello.txt"
    f.write_bytes(b"hello world")
    h = hash_file(f)
    assert h.crc32 == "0d4a1185"  # zlib's value, REFERENCE §1
    assert h.civitai_crc32 == "85114A0D"  # Civitai's display, REFERENCE §1
    assert h.sha256 == "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
    assert h.autov2 == "b94d27b993"
    assert h.autov1 == "e3b0c442"  # under 1 MiB: the empty string's digest
    assert h.autov3 is None
    assert h.git_sha1 == "95d09f2b10159347eece71399a7e2e907ea3df4f"  # `git hash-object` of the same bytes
    assert h.blake3 == "d74981efa70a0c880b8d8c1985d075dbcbf679b99a5f9914e5aaf96b831a9e24"
    assert h.size == 11
    assert h == expected(b"hello world", None)


def test_empty_file(tmp_path: Path) -> None:
    f = tmp_path / "empty"
    f.write_bytes(b"")
    h = hash_file(f, data_start=0)
    assert h.sha256 == EMPTY_SHA256
    assert h.autov1 == "e3b0c442"
    assert h.autov3 == EMPTY_SHA256
    assert h.crc32 == "00000000"
    assert h.civitai_crc32 == "00000000"
    assert h.git_sha1 == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"  # git's empty blob
    assert h.blake3 == "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
    assert h.size == 0


def test_civitai_crc32_keeps_leading_zeros() -> None:
    h = Hashes("0" * 64, "0" * 8, "0" * 10, None, "0" * 64, "000a0b0c", None, 0)
    assert h.civitai_crc32 == "0C0B0A00"


def test_as_dict_is_plain_hex() -> None:
    h = Hashes("a" * 64, "b" * 8, "a" * 10, None, "c" * 64, "0d4a1185", None, 5)
    assert h.as_dict() == {
        "sha256": "a" * 64,
        "autov1": "b" * 8,
        "autov2": "a" * 10,
        "autov3": None,
        "blake3": "c" * 64,
        "crc32": "0d4a1185",
        "git_sha1": None,
    }


@pytest.mark.parametrize(
    "size",
    [
        AUTOV1_START - 1,  # under 1 MiB: e3b0c442
        AUTOV1_START,  # exactly 1 MiB: still the empty read
        AUTOV1_START + 1,  # one byte in the window: a short read
        AUTOV1_START + 0x8000,  # half the window
        AUTOV1_END,  # the whole window, nothing after it
        AUTOV1_END + 12_345,  # the window and more
    ],
)
def test_autov1_window(tmp_path: Path, size: int) -> None:
    data = random_bytes(size, seed=size)
    f = tmp_path / "m.bin"
    f.write_bytes(data)
    h = hash_file(f, chunk_size=100_003)  # chunks that straddle both window edges
    assert h == expected(data, None)
    want = hashlib.sha256(data[0x100000:0x110000]).hexdigest()[:8]
    assert h.autov1 == want
    if size <= AUTOV1_START:
        assert h.autov1 == "e3b0c442"
    else:
        assert h.autov1 != "e3b0c442"


@pytest.mark.parametrize("chunk_size", [1, 4096, 65_537, 1 << 20, 8 << 20])
def test_every_chunking_gives_the_same_digests(tmp_path: Path, chunk_size: int) -> None:
    size = (2 << 20) + 777 if chunk_size > 1 else 3_000
    data = random_bytes(size, seed=chunk_size)
    f = tmp_path / "x.bin"
    f.write_bytes(data)
    for start in (None, 0, 1, 8 + 1_000, size - 1, size):
        assert hash_file(f, start, chunk_size=chunk_size) == expected(data, start)


def test_lanes_are_used_for_large_files_and_give_the_same_digests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = random_bytes((3 << 20) + 5, seed=7)
    f = tmp_path / "big.bin"
    f.write_bytes(data)
    seen: list[str] = []
    real = hashing._read_lanes

    def spy(*args: object, **kw: object) -> int:
        seen.append("lanes")
        return real(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(hashing, "_read_lanes", spy)
    assert hash_file(f, 4096, chunk_size=1 << 20) == expected(data, 4096)
    assert seen == ["lanes"]


def test_safetensors_written_by_the_safetensors_package(tmp_path: Path) -> None:
    st = pytest.importorskip("safetensors.numpy")
    rng = np.random.default_rng(3)
    tensors = {
        "lora_unet_down.lora_down.weight": rng.standard_normal((64, 320)).astype(np.float16),
        "lora_unet_down.lora_up.weight": rng.standard_normal((320, 64)).astype(np.float16),
        "lora_unet_down.alpha": np.array(8.0, dtype=np.float32),
        "big": rng.standard_normal((600_000,)).astype(np.float32),  # > 2 MiB: lanes path
    }
    f = tmp_path / "lora.safetensors"
    st.save_file(tensors, str(f), metadata={"ss_network_dim": "64"})
    data = f.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    data_start = 8 + n
    h = hash_file(f, data_start)
    assert h == expected(data, data_start)
    # AutoV3 is the tensor data only: rewriting the metadata keeps it and changes everything else
    g = tmp_path / "lora2.safetensors"
    st.save_file(tensors, str(g), metadata={"ss_network_dim": "64", "ss_output_name": "renamed"})
    data2 = g.read_bytes()
    start2 = 8 + struct.unpack("<Q", data2[:8])[0]
    h2 = hash_file(g, start2)
    assert h2.autov3 == h.autov3
    assert h2.sha256 != h.sha256 and h2.blake3 != h.blake3 and h2.crc32 != h.crc32
    # without data_start no AutoV3
    assert hash_file(f).autov3 is None
    assert hash_file(f).sha256 == h.sha256


def test_autov3_agrees_with_the_strict_header_reader(tmp_path: Path) -> None:
    from tests.builders import write_safetensors

    f = write_safetensors(tmp_path / "m.safetensors", {"w": np.arange(1000, dtype=np.float32)})
    from registry.files.safetensors import read_header

    hdr = read_header(f)
    data = f.read_bytes()
    first = min(t.offset for t in hdr.tensors)
    assert hash_file(f, first).autov3 == hashlib.sha256(data[first:]).hexdigest()


def test_data_start_past_the_end_hashes_nothing(tmp_path: Path) -> None:
    f = tmp_path / "short"
    f.write_bytes(b"abc")
    assert hash_file(f, 10).autov3 == EMPTY_SHA256


def test_negative_data_start_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "x"
    f.write_bytes(b"abc")
    with pytest.raises(ValueError, match="data_start"):
        hash_file(f, -1)


def test_git_sha1_only_up_to_the_limit(tmp_path: Path) -> None:
    data = random_bytes(5000, seed=1)
    f = tmp_path / "x"
    f.write_bytes(data)
    assert hash_file(f, git_sha1_limit=5000).git_sha1 == hashlib.sha1(b"blob 5000\0" + data).hexdigest()
    assert hash_file(f, git_sha1_limit=4999).git_sha1 is None
    big = random_bytes((2 << 20) + 1, seed=2)
    g = tmp_path / "y"
    g.write_bytes(big)
    h = hash_file(g, chunk_size=1 << 20)
    assert h.git_sha1 == hashlib.sha1(b"blob %d\0" % len(big) + big).hexdigest()
    assert hash_file(g, git_sha1_limit=1 << 20, chunk_size=1 << 20).git_sha1 is None


def test_zlib_fallback_gives_the_same_crc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = random_bytes((2 << 20) + 3, seed=9)
    f = tmp_path / "x"
    f.write_bytes(data)
    monkeypatch.setattr(hashing, "crc32_fn", zlib.crc32)
    assert hash_file(f, chunk_size=1 << 20).crc32 == f"{zlib.crc32(data):08x}"


def _tamper_on_first_crc(monkeypatch: pytest.MonkeyPatch, action: object) -> None:
    real = hashing.crc32_fn
    state = {"done": False}

    def crc(data: object, value: int) -> int:
        if not state["done"]:
            state["done"] = True
            action()  # type: ignore[operator]
        return real(data, value)

    monkeypatch.setattr(hashing, "crc32_fn", crc)


@pytest.mark.parametrize("size", [100_000, 3 << 20])  # inline and lanes paths
@pytest.mark.parametrize("change", ["grow", "shrink", "rewrite"])
def test_a_file_that_changes_while_read_raises_registry_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int, change: str
) -> None:
    f = tmp_path / "moving.safetensors"
    f.write_bytes(random_bytes(size))
    os.utime(f, ns=(1_000_000_000, 1_000_000_000))

    def act() -> None:
        if change == "grow":
            with open(f, "ab") as w:
                w.write(b"x" * (1 << 20))
        elif change == "shrink":
            os.truncate(f, size // 3)
        else:  # same size, new content and modification time
            with open(f, "r+b") as w:
                w.write(b"changed")

    _tamper_on_first_crc(monkeypatch, act)
    threads = threading.active_count()
    with pytest.raises(RegistryError) as err:
        hash_file(f, 8, chunk_size=256 << 10)
    assert type(err.value) is RegistryError
    assert str(f) in str(err.value)
    assert "while it was being hashed" in str(err.value)
    assert threading.active_count() == threads  # lanes were joined


def test_an_error_inside_a_lane_reaches_the_caller(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "x"
    f.write_bytes(random_bytes(4 << 20))

    def boom(data: object, value: int) -> int:
        raise MemoryError("boom")

    monkeypatch.setattr(hashing, "crc32_fn", boom)
    threads = threading.active_count()
    with pytest.raises(MemoryError, match="boom"):
        hash_file(f, chunk_size=256 << 10)
    assert threading.active_count() == threads


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    p = tmp_path / "pipe"
    os.mkfifo(p)
    with pytest.raises(RegistryError, match="not a regular file"):
        hash_file(p)


def test_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        hash_file(tmp_path / "nope")


def test_corpus_lora(tmp_path: Path) -> None:
    from tests.builders import CORPUS

    f = CORPUS / "loras" / "analog_svd_rank4.safetensors"
    if not f.exists():
        pytest.skip(f"corpus file {f} absent")
    data = f.read_bytes()
    start = 8 + struct.unpack("<Q", data[:8])[0]
    assert hash_file(f, start) == expected(data, start)


@pytest.mark.parametrize(("size", "chunk_size"), [(1, 8 << 20), (70_001, 8 << 20), ((2 << 20) + 777, 1 << 20), ((3 << 20) + 5, 100_003)])
def test_hash_map_gives_hash_files_digests(tmp_path: Path, size: int, chunk_size: int) -> None:
    """Hashing through a memory map (the scan's path for adapters it maps anyway): the same digests as the
    definitions, in one piece or in chunks handed to the lanes (more chunks than the ring holds), with the
    progress reaching the file's size; the map is the file's bytes."""
    data = random_bytes(size, seed=size)
    f = tmp_path / "m.bin"
    f.write_bytes(data)
    for start in (None, 0, 8 + 1_000, size - 1, size, size + 3):
        seen: list[int] = []
        with open(f, "rb") as fh:
            h, m = hashing.hash_map(f, fh.fileno(), start, chunk_size=chunk_size, on_bytes=seen.append)
        try:
            assert h == expected(data, start) == hash_file(f, start)
            assert m[:] == data
        finally:
            m.close()
        if size > chunk_size:
            assert seen == sorted(seen) and seen[-1] == size and len(seen) == -(-size // chunk_size)
    with open(f, "rb") as fh, pytest.raises(ValueError):
        hashing.hash_map(f, fh.fileno(), -1)


def test_hash_map_reports_a_file_changed_while_hashed(tmp_path: Path) -> None:
    data = random_bytes((3 << 20) + 11, seed=5)
    f = tmp_path / "m.bin"
    f.write_bytes(data)
    st = f.stat()

    def touch(_n: int) -> None:  # another program rewrites the file meanwhile (same size, new time)
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))

    with open(f, "rb") as fh, pytest.raises(RegistryError, match="changed while it was being hashed"):
        hashing.hash_map(f, fh.fileno(), None, chunk_size=1 << 20, on_bytes=touch)
    d = tmp_path / "d"
    d.mkdir()
    fd = os.open(d, os.O_RDONLY)
    try:
        with pytest.raises(RegistryError, match="not a regular file"):
            hashing.hash_map(d, fd)
    finally:
        os.close(fd)
