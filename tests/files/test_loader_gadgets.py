"""Callables whose job is to deserialize, import or execute are dangerous (issue 12): every entry of
``LOADER_GADGETS``, through the whole scanner, spelled three ways, and each one named in docs/security.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.files.pickle_policy import LOADER_GADGETS, Gadget, Safety, judge
from registry.files.pickles import scan_bytes
from tests.pickle_builders import P, torch_zip_bytes

DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"


def _name(g: Gadget) -> str:
    return g.name or g.example


@pytest.mark.parametrize("g", LOADER_GADGETS, ids=lambda g: g.label)
def test_every_loader_gadget_is_dangerous(g: Gadget) -> None:
    name = _name(g)
    assert name, f"{g.label}: a module-wide entry needs an example name to test"
    assert judge(g.module, name)[0] == Safety.DANGEROUS
    arg = "payload.bin"
    spellings = {
        "GLOBAL + REDUCE, protocol 2": P(2).call(g.module, name, arg).stop(),
        "STACK_GLOBAL + REDUCE, protocol 4": P(4).stack_global(g.module, name).str(arg).tuple_n(1).reduce().stop(),
        "GLOBAL in a torch zip's data.pkl": torch_zip_bytes(data_pkl=P(2).call(g.module, name, arg).stop()),
    }
    for how, data in spellings.items():
        r = scan_bytes(data)
        assert r.verdict == "dangerous", (how, r.reason)
        assert f"{g.module}.{name}" in {q.qualname for q in r.deciding}, (how, [q.qualname for q in r.deciding])


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("jsonpickle", "decode"),
        ("jsonpickle.unpickler", "Unpickler"),
        ("jsonpickle.unpickler", "decode"),
        ("yaml", "load"),
        ("yaml", "full_load"),
        ("yaml.loader", "UnsafeLoader"),
        ("yaml", "FullLoader"),
        ("dill", "load"),
        ("dill._dill", "_create_code"),
        ("cloudpickle", "loads"),
        ("joblib.numpy_pickle", "load"),
        ("pandas", "read_pickle"),
        ("pandas.io.pickle", "read_pickle"),
        ("torch", "load"),
        ("torch.serialization", "load"),
        ("numpy", "load"),
        ("numpy.lib.npyio", "load"),
        ("marshal", "loads"),
        ("shelve", "open"),
        ("runpy", "run_module"),
        ("code", "InteractiveConsole"),
        ("codeop", "Compile"),
        ("importlib", "import_module"),
        ("importlib.util", "spec_from_file_location"),
        ("pkgutil", "resolve_name"),
        ("pydoc", "locate"),
        ("pkg_resources", "EntryPoint"),
        ("hydra.utils", "instantiate"),
        ("__builtin__", "__import__"),
    ],
)
def test_the_kin_named_in_the_issue(module: str, name: str) -> None:
    r = scan_bytes(P(2).call(module, name, "x").stop())
    assert r.verdict == "dangerous", r.reason


def test_the_documentation_lists_every_entry() -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = [g.label for g in LOADER_GADGETS if f"`{g.label}`" not in text]
    assert missing == []


def test_no_entry_is_on_torch_weights_only_allowlist() -> None:
    """torch.load(weights_only=True) accepts none of them by default (its allowlist is the other side)."""
    pytest.importorskip("torch")
    from torch._weights_only_unpickler import _get_allowed_globals

    allowed = set(_get_allowed_globals())
    assert len(allowed) > 50
    hits = [a for a in allowed for g in LOADER_GADGETS
            if a == f"{g.module}.{_name(g)}" or (g.name is None and a.startswith(g.module + "."))]  # fmt: skip
    # one name of torch.serialization is a plain layout lookup: on both allowlists, judged safe here too
    assert hits == ["torch.serialization._get_layout"]
    assert judge("torch.serialization", "_get_layout")[0] == Safety.SAFE
