"""The Hugging Face cache, verified (registry/hub.py)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from registry.errors import NotFound
from registry.hub import CacheFile, git_blob_sha1, inventory_hf_cache, verify_blob, verify_hf_cache
from tests.builders import safetensors_bytes
from tests.hf_fixtures import add_cache_file, git_sha1

C1 = "1" * 40
C2 = "2" * 40


def _weights(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    return safetensors_bytes({"w": rng.standard_normal((4, 4)).astype(np.float16)}, {"ss_network_dim": "4"})


def test_git_blob_sha1_matches_git() -> None:
    # `printf 'hello world\n' | git hash-object --stdin`
    assert git_sha1(b"hello world\n") == "3b18e512dba79e4c8300dd08aeb37f8e728b8dad"


def test_git_blob_sha1_streamed(tmp_path: Path) -> None:
    p = tmp_path / "f"
    p.write_bytes(b"hello world\n")
    assert git_blob_sha1(p) == "3b18e512dba79e4c8300dd08aeb37f8e728b8dad"


def test_inventory_healthy_cache_with_provenance(tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    w = _weights(0)
    snap = add_cache_file(cache, "org/lora", C1, "lora.safetensors", w)
    add_cache_file(cache, "org/lora", C1, "configs/config.json", b'{"a": 1}\n', lfs=False)
    inv = inventory_hf_cache(cache)
    assert inv.findings == []
    assert [(f.repo_id, f.revision, f.file, f.algorithm, f.refs) for f in inv.files] == [
        ("org/lora", C1, "configs/config.json", "git-sha1", ("main",)),
        ("org/lora", C1, "lora.safetensors", "sha256", ("main",)),
    ]
    f = inv.by_path()[str(inv.cache_dir / "models--org--lora" / "snapshots" / C1 / "lora.safetensors")]
    assert f.path == snap.parent.resolve() / snap.name
    assert f.path.name == "lora.safetensors" and f.path.is_symlink()
    assert f.blob_name == hashlib.sha256(w).hexdigest()
    assert f.size == len(w)
    assert f.provenance() == {
        "source": "hf-cache",
        "repo_id": "org/lora",
        "repo_type": "model",
        "revision": C1,
        "refs": ["main"],
        "file": "lora.safetensors",
        "blob": hashlib.sha256(w).hexdigest(),
        "blob_algorithm": "sha256",
    }
    _, found = verify_hf_cache(cache)
    assert found == []


def test_altered_blobs_are_findings(tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    w = _weights(1)
    snap = add_cache_file(cache, "org/m", C1, "model.safetensors", w)
    cfg = add_cache_file(cache, "org/m", C1, "config.json", b'{"x": 1}', lfs=False)
    # alter both blobs in place after download (e.g. a metadata editor, or bit rot)
    blob = snap.resolve()
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF
    blob.write_bytes(bytes(data))
    cfg.resolve().write_bytes(b'{"x": 2}')
    inv, found = verify_hf_cache(cache)
    assert sorted(f.finding.rule_id for f in found) == ["hf-cache.blob-mismatch", "hf-cache.blob-mismatch"]
    by_file = {f.finding.evidence["file"]: f for f in found}
    lfs = by_file["model.safetensors"]
    assert lfs.finding.evidence["algorithm"] == "sha256"
    assert lfs.finding.evidence["expected"] == hashlib.sha256(w).hexdigest()
    assert lfs.finding.evidence["actual"] == hashlib.sha256(bytes(data)).hexdigest()
    assert lfs.blob_sha256 == hashlib.sha256(w).hexdigest()
    assert "corrupted or altered download" in lfs.finding.message
    small = by_file["config.json"]
    assert small.finding.evidence == {
        "repo_id": "org/m",
        "revision": C1,
        "file": "config.json",
        "algorithm": "git-sha1",
        "expected": git_sha1(b'{"x": 1}'),
        "actual": git_sha1(b'{"x": 2}'),
    }
    # digests supplied by a scan are used instead of re-reading
    f = next(x for x in inv.files if x.file == "model.safetensors")
    assert verify_blob(f, sha256=hashlib.sha256(w).hexdigest()) is None
    assert verify_blob(f, sha256="0" * 64) is not None


def test_incomplete_and_dangling(tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    add_cache_file(cache, "org/ok", C1, "a.safetensors", _weights(2))
    inc = cache / "models--org--ok" / "blobs" / ("f" * 64 + ".incomplete")
    inc.write_bytes(b"\0" * 1234)
    # a repo with one good file and one link to a blob that is gone
    good = add_cache_file(cache, "org/broken", C2, "good.safetensors", _weights(3))
    gone = add_cache_file(cache, "org/broken", C2, "gone.safetensors", _weights(4))
    gone.resolve().unlink()
    inv = inventory_hf_cache(cache)
    rules = sorted((f.finding.rule_id, Path(f.path).name) for f in inv.findings)
    assert rules == [
        ("hf-cache.corrupt-repo", "models--org--broken"),
        ("hf-cache.dangling-link", "gone.safetensors"),
        ("hf-cache.incomplete-download", "f" * 64 + ".incomplete"),
    ]
    inc_f = next(f for f in inv.findings if f.finding.rule_id == "hf-cache.incomplete-download")
    assert inc_f.finding.evidence == {"repo_id": "org/ok", "size": 1234}
    corrupt = next(f for f in inv.findings if f.finding.rule_id == "hf-cache.corrupt-repo")
    assert "Blob missing (broken symlink)" in corrupt.finding.message
    # the good file of the broken repo is still inventoried, with provenance
    files = {(f.repo_id, f.file) for f in inv.files}
    assert files == {("org/ok", "a.safetensors"), ("org/broken", "good.safetensors")}
    g = next(f for f in inv.files if f.file == "good.safetensors")
    assert g.path == good and g.revision == C2 and g.refs == ("main",)


def test_unverifiable_when_not_a_hash_name(tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    add_cache_file(cache, "org/x", C1, "weird.bin", b"abc", blob_name="not-a-hash")
    inv = inventory_hf_cache(cache)
    (f,) = inv.files
    assert f.algorithm is None
    fnd = verify_blob(f)
    assert fnd is not None and fnd.rule_id == "hf-cache.unverifiable-blob"


def test_missing_cache_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="does not exist"):
        inventory_hf_cache(tmp_path / "nope")


def test_cachefile_algorithm_for_copied_files(tmp_path: Path) -> None:
    p = tmp_path / "a"
    f = CacheFile("o/r", "model", C1, (), "a", p, p, 0)
    assert f.algorithm is None


def test_inventory_without_huggingface_hub_matches_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 20: huggingface_hub is the ``hub`` extra; without it, audit still reads the cache, and its own
    walker finds what scan_cache_dir finds (checked against scan_cache_dir on the same cache)."""
    import sys

    cache = tmp_path / "hub"
    add_cache_file(cache, "org/ok", C1, "a.safetensors", _weights(2))
    add_cache_file(cache, "org/ok", C2, "sub/b.safetensors", _weights(5))
    add_cache_file(cache, "org/ok", C2, "config.json", b"{}", lfs=False)
    add_cache_file(cache, "org/other", C1, "x.safetensors", _weights(6))
    (cache / "models--org--ok" / "blobs" / ("e" * 64 + ".incomplete")).write_bytes(b"\0" * 10)
    with_hub = inventory_hf_cache(cache)
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import now fails, as when not installed
    monkeypatch.setitem(sys.modules, "huggingface_hub.errors", None)
    without = inventory_hf_cache(cache)
    assert without.cache_dir == with_hub.cache_dir
    assert without.files == with_hub.files and len(without.files) == 4
    assert [(f.path, f.finding.rule_id, f.finding.message, f.finding.evidence) for f in without.findings] == [
        (f.path, f.finding.rule_id, f.finding.message, f.finding.evidence) for f in with_hub.findings
    ]
    with pytest.raises(NotFound, match="does not exist"):
        inventory_hf_cache(tmp_path / "nope")
