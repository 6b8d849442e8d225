"""Benign files written by real PyTorch: never dangerous, plain state dicts safe with every tensor recovered.

The files are generated at test time with torch (and diffusers / transformers / timm when installed) and
only written, never loaded: the expected tensors are taken from memory before saving. Skipped where
torch is not installed (CI installs the ``probe`` extra, which brings it).
"""

from __future__ import annotations

import collections

import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (pip install -e '.[probe]')")

from registry.files.pickle_policy import Safety, judge  # noqa: E402
from registry.files.pickles import PickleScan, scan_file  # noqa: E402
from registry.files.safetensors import DTYPE_BITS  # noqa: E402
from tests.files.real_torch import Case, build_benign  # noqa: E402


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Case, PickleScan]]:
    cases = build_benign(tmp_path_factory.mktemp("benign"))
    return [(c, scan_file(c.path)) for c in cases]


def test_weights_only_allowlist_is_safe_here() -> None:
    """Every global torch.load(weights_only=True) accepts by default is on our allowlist."""
    from torch._weights_only_unpickler import _get_allowed_globals

    judged = {}
    for full in _get_allowed_globals():
        module, _, name = full.rpartition(".")
        judged[full] = judge(module, name)[0]
    assert {k for k, v in judged.items() if v != Safety.SAFE} == set()
    assert len(judged) > 100


def test_no_benign_file_is_dangerous(scanned: list[tuple[Case, PickleScan]]) -> None:
    wrong = [
        f"{c.name} ({c.what}): {r.verdict}, want {sorted(c.allowed)}: {r.reason}"
        for c, r in scanned
        if r.verdict not in c.allowed
    ]
    assert not wrong, "\n".join(wrong)
    tally = collections.Counter(r.verdict for _, r in scanned)
    assert tally["dangerous"] == tally["unscannable"] == 0
    assert len(scanned) >= 45


def test_plain_state_dicts_are_safe(scanned: list[tuple[Case, PickleScan]]) -> None:
    for c, r in scanned:
        if c.allowed == frozenset({"safe"}):
            assert r.verdict == "safe", (c.name, r.reason)
            assert not [f for f in r.findings if f.severity.name in ("HIGH", "CRITICAL")], (c.name, r.findings)


def test_tensors_are_recovered_byte_for_byte(scanned: list[tuple[Case, PickleScan]]) -> None:
    checked = 0
    for c, r in scanned:
        if c.expect is None and not c.expect_shapes:
            continue
        assert r.recovery is not None, c.name
        got = {t.name: t for t in r.recovery.tensors}
        with open(c.path, "rb") as fh:
            for name, (dtype, shape, data) in (c.expect or {}).items():
                t = got.get(name)
                assert t is not None, (c.name, name, sorted(got)[:10])
                assert (t.dtype, t.shape) == (dtype, shape), (c.name, name)
                # complex128 has no safetensors dtype: located, but not offered to the analyzers
                assert t.readable or dtype not in DTYPE_BITS, (c.name, name, t.note)
                assert t.file_offset is not None and t.contiguous and not t.note, (c.name, name, t.note)
                fh.seek(t.file_offset)
                assert fh.read(t.nbytes) == data, (c.name, name)
                checked += 1
        for name, (dtype, shape) in c.expect_shapes.items():
            t = got[name]
            assert (t.dtype, t.shape, t.contiguous, t.readable) == (dtype, shape, False, False), (c.name, name)
    assert checked > 300


def test_whole_modules_name_their_tensors(scanned: list[tuple[Case, PickleScan]]) -> None:
    by = {c.name: r for c, r in scanned}
    seq = by["sequential_model.pt"]
    assert seq.recovery is not None
    assert sorted(t.name for t in seq.recovery.tensors) == ["0.bias", "0.weight", "3.bias", "3.weight"]
    legacy = by["sequential_model_legacy.pt"]
    assert legacy.recovery is not None
    assert sorted(t.name for t in legacy.recovery.tensors) == ["0.bias", "0.weight", "3.bias", "3.weight"]


def test_fetched_names_in_real_module_pickles_are_suspicious(scanned: list[tuple[Case, PickleScan]]) -> None:
    """torch.tanh kept as an attribute is pickled as getattr(torch._C._VariableFunctionsClass, 'tanh'), a
    bound method as getattr(instance, name): stored, never called, so suspicious, not dangerous."""
    by = {c.name: r for c, r in scanned}
    for name in ("module_with_callables.pt", "module_bound_method.pt"):
        r = by[name]
        g = {x.qualname: x for x in r.globals}["__builtin__.getattr"]
        assert (r.verdict, g.safety) == ("suspicious", Safety.SUSPICIOUS), (name, g.reason)
        assert "only stored, never called" in g.reason
