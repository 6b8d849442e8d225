"""A corpus of hostile files, one per bypass class (``tests/files/hostile.py``): every one is caught.

Built with plain pickle / zip / tar writing, no torch. "Caught" is ``dangerous`` (a name that runs code
decides it) except for containers the scanner cannot open, which are ``unscannable`` (never clean).
Benign look-alikes of the same shapes (enum members and nested names fetched by ``getattr``, ``partial``
norm layers) stay suspicious.
"""

from __future__ import annotations

import collections
from pathlib import Path

import pytest

from registry.files.pickle_policy import Safety
from registry.files.pickles import PickleScan, scan_file
from tests.files.hostile import CAUGHT, Hostile, benign_lookalikes, build_hostile, write_all

CASES = build_hostile()


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Hostile, PickleScan]]:
    root = tmp_path_factory.mktemp("hostile")
    return {c.name: (c, scan_file(p)) for c, p in write_all(root, CASES)}


def test_every_hostile_file_is_caught(scanned: dict[str, tuple[Hostile, PickleScan]]) -> None:
    missed = [f"{c.name} ({c.what}): {r.verdict}: {r.reason}" for c, r in scanned.values() if r.verdict not in c.allowed]
    assert not missed, "\n".join(missed)
    tally = collections.Counter(r.verdict for _, r in scanned.values())
    assert tally["safe"] == tally["suspicious"] == 0
    assert len(scanned) > 300


@pytest.mark.parametrize("name", [c.name for c in CASES if c.allowed == CAUGHT])
def test_dangerous_cases_have_a_critical_finding(scanned: dict[str, tuple[Hostile, PickleScan]], name: str) -> None:
    _, r = scanned[name]
    assert r.verdict == "dangerous"
    assert r.deciding and all(g.safety == Safety.DANGEROUS for g in r.deciding)
    assert "pickle.dangerous-global" in [f.rule_id for f in r.findings]


@pytest.mark.parametrize(
    ("name", "decider", "evasion"),
    [
        ("evil.joblib", "posix.system", None),
        ("evil.pkl.bz2", "posix.system", None),
        ("evil.pkl.xz", "posix.system", None),
        ("evil.pkl.lzma", "posix.system", None),
        ("evil_multimember.gz", "posix.system", None),
        ("junk_then_zip.bin", "posix.system", "a zip archive is appended"),
        ("image_with_zip.png", "posix.system", "a zip archive is appended"),
        ("safetensors_with_zip.safetensors", "posix.system", "a zip archive is appended"),
        ("zip_encryption_flag.pt", "posix.system", "marked encrypted but holds a plaintext pickle"),
        ("zip_bad_crc.pt", "posix.system", "CRC-32 does not match"),
        ("zip_local_name_mismatch.pt", "posix.system", "local header names"),
        ("getattr_fetch_then_call.pkl", "builtins.getattr", None),
        ("getattr_ndarray_tofile.pkl", "builtins.getattr", None),
        ("rebuild_from_type_fetched.pkl", "builtins.getattr", None),
        ("rebuild_from_type_getattr.pkl", "builtins.getattr", None),
        ("stack_global_from_call.pkl", "?.system", None),
        ("memo_confusion.pkl", "os.system", None),
        ("modelscan89_builtins_dict_get.pkl", "builtins.dict.get", None),
        ("gadget_numpy.__builtins__.pkl", "numpy.__builtins__", None),
        ("object_array_v2.npy", "posix.system", None),
    ],
)
def test_how_tricky_cases_are_caught(
    scanned: dict[str, tuple[Hostile, PickleScan]], name: str, decider: str, evasion: str | None
) -> None:
    _, r = scanned[name]
    assert r.verdict == "dangerous", r.reason
    assert decider in {g.qualname for g in r.deciding}, [g.qualname for g in r.deciding]
    if evasion is not None:
        assert any(evasion in e for e in r.evasions), r.evasions


def test_getattr_reasons_name_the_use(scanned: dict[str, tuple[Hostile, PickleScan]]) -> None:
    reasons = {n: scanned[n][1].deciding[0].reason for n in (
        "getattr_fetch_then_call.pkl", "rebuild_from_type_fetched.pkl", "rebuild_from_type_getattr.pkl",
        "getattr_ndarray_tofile.pkl", "getattr_fetch_os_name.pkl", "getattr_three_args.pkl", "getattr_inst.pkl")}  # fmt: skip
    assert "the fetched value is called (REDUCE)" in reasons["getattr_fetch_then_call.pkl"]
    assert "passed to torch._tensor._rebuild_from_type_v2" in reasons["rebuild_from_type_fetched.pkl"]
    assert "getattr itself is passed to torch._tensor._rebuild_from_type_v2" in reasons["rebuild_from_type_getattr.pkl"]
    assert "fetches 'tofile'" in reasons["getattr_ndarray_tofile.pkl"]
    assert "fetches 'os'" in reasons["getattr_fetch_os_name.pkl"]
    assert "called with 3 arguments" in reasons["getattr_three_args.pkl"]
    assert "getattr is called (INST)" in reasons["getattr_inst.pkl"]


def test_containers_that_cannot_be_opened_are_unscannable(scanned: dict[str, tuple[Hostile, PickleScan]]) -> None:
    _, zst = scanned["evil.zst"]
    assert zst.format == "zstd" and zst.verdict == "unscannable" and "cannot decompress" in zst.reason
    if "evil_encrypted.7z" in scanned:
        _, sz = scanned["evil_encrypted.7z"]
        assert sz.verdict == "unscannable" and "encrypted" in sz.reason


@pytest.mark.parametrize("name", sorted(benign_lookalikes()))
def test_benign_lookalikes_are_suspicious_not_dangerous(tmp_path: Path, name: str) -> None:
    p = tmp_path / name
    p.write_bytes(benign_lookalikes()[name])
    r = scan_file(p)
    assert r.verdict == "suspicious", r.reason
    assert all(g.safety == Safety.SUSPICIOUS for g in r.globals if g.name in ("getattr", "partial"))


def test_nothing_ran(scanned: dict[str, tuple[Hostile, PickleScan]]) -> None:
    """Every shell payload in the corpus touches this file; scanning them all never creates it."""
    assert len(scanned) > 300
    assert not Path("/tmp/modelreg-hostile-canary").exists()
