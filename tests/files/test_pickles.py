"""Static scanning of pickle-based files: every known bypass class is caught, nothing ever runs."""

from __future__ import annotations

import builtins
import collections
import gzip
import io
import os
import pickle  # writing only: no test here loads a pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from registry.files.pickle_vm import Limits
from registry.files.pickles import PickleScan, scan_file
from tests.pickle_builders import (
    CORPUS_DIR,
    P,
    Reduce,
    TensorRef,
    ZipEntry,
    canary_payloads,
    check_parses,
    legacy_torch_bytes,
    npy_object_bytes,
    state_dict_pickle,
    torch_zip_bytes,
    zip_bytes,
)

ARRAYS = {
    "model.conv.weight": np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2),
    "model.conv.bias": np.array([0.5, -1.5], dtype=np.float16),
    "model.steps": np.array(7, dtype=np.int64),
}
EVIL = P(2).call("posix", "system", "echo pwned").stop()


def _scan(tmp_path: Path, name: str, data: bytes, **kw: object) -> PickleScan:
    p = tmp_path / name
    p.write_bytes(data)
    return scan_file(p, **kw)  # type: ignore[arg-type]


def _qualnames(r: PickleScan) -> set[str]:
    return {g.qualname for g in r.globals}


def _rules(r: PickleScan) -> list[str]:
    return [f.rule_id for f in r.findings]


# -- benign files: safe, with their tensors ------------------------------------------------------------


@pytest.mark.parametrize("container", ["OrderedDict", "dict"])
def test_benign_zip_is_safe_and_tensors_match(tmp_path: Path, container: str) -> None:
    data = torch_zip_bytes(ARRAYS, container=container)
    r = _scan(tmp_path, "m.pt", data)
    assert (r.format, r.verdict) == ("pytorch-zip", "safe")
    assert r.findings == []
    assert _qualnames(r) == {"collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch.FloatStorage",
                             "torch.HalfStorage", "torch.LongStorage"}  # fmt: skip
    assert r.recovery is not None and r.recovery.problems == []
    got = {t.name: t for t in r.recovery.tensors}
    assert list(got) == list(ARRAYS)
    np_dt = {"F32": np.float32, "F16": np.float16, "I64": np.int64}
    for name, arr in ARRAYS.items():
        t = got[name]
        assert t.shape == arr.shape and t.readable
        info = t.to_tensor_info()
        assert (info.offset, info.nbytes) == (t.file_offset, arr.nbytes)
        back = np.frombuffer(data[info.offset : info.offset + info.nbytes], dtype=np_dt[info.dtype]).reshape(info.shape)
        assert np.array_equal(back, arr)
    assert got["model.steps"].shape == () and got["model.conv.bias"].dtype == "F16"


def test_lightning_style_checkpoint_uses_the_state_dict(tmp_path: Path) -> None:
    data = torch_zip_bytes(ARRAYS, wrap="state_dict")
    r = _scan(tmp_path, "m.ckpt", data)
    assert r.verdict == "safe" and r.recovery is not None
    assert r.recovery.state_dict_key == "state_dict"
    assert [t.name for t in r.recovery.tensors] == list(ARRAYS)


def test_list_container_parameters_views_and_strides(tmp_path: Path) -> None:
    st = {"0": np.arange(12, dtype=np.float32), "1": np.arange(5, dtype=np.float16)}
    refs = [
        TensorRef("p", "0", (3, 4), (4, 1), parameter=True),
        TensorRef("t", "0", (4, 3), (1, 4)),
        TensorRef("row", "0", (4,), (1,), offset=8),
        TensorRef("h", "1", (2,), (1,), offset=3),
    ]
    data = torch_zip_bytes(refs=refs, storages=st, container="list")
    r = _scan(tmp_path, "l.pt", data)
    assert r.verdict == "safe" and r.recovery is not None
    by = {t.name: t for t in r.recovery.tensors}
    assert list(by) == ["0", "1", "2", "3"]
    assert by["0"].readable and by["0"].stride == (4, 1)
    assert not by["1"].contiguous and not by["1"].readable and by["1"].stride == (1, 4)
    assert by["2"].file_offset == by["0"].file_offset + 8 * 4  # type: ignore[operator]
    assert np.frombuffer(data[by["3"].file_offset : by["3"].file_offset + 4], np.float16).tolist() == [3.0, 4.0]  # type: ignore[index,operator]
    assert _rules(r) == ["pickle.tensors-partial"]
    assert "non-contiguous" in r.findings[0].message


def test_legacy_file_is_safe_with_tensors_at_absolute_offsets(tmp_path: Path) -> None:
    data = legacy_torch_bytes(ARRAYS)
    r = _scan(tmp_path, "old.ckpt", data)
    assert (r.format, r.verdict) == ("pytorch-legacy", "safe")
    assert [s.role for s in r.streams] == ["legacy magic number", "legacy protocol version", "legacy system info",
                                          "legacy object", "legacy storage keys"]  # fmt: skip
    assert r.recovery is not None and [t.name for t in r.recovery.tensors] == list(ARRAYS)
    w = next(t for t in r.recovery.tensors if t.name == "model.conv.weight")
    assert np.array_equal(np.frombuffer(data[w.file_offset : w.file_offset + w.nbytes], np.float32).reshape(w.shape),  # type: ignore[index,operator]
                          ARRAYS["model.conv.weight"])  # fmt: skip


def test_legacy_trailing_bytes_are_reported(tmp_path: Path) -> None:
    r = _scan(tmp_path, "old.pt", legacy_torch_bytes(ARRAYS, trailing=b"\x00" * 10))
    assert r.verdict == "safe" and _rules(r) == ["pickle.trailing-data"]
    assert "10 bytes after the last storage" in r.findings[0].message


def test_unknown_classes_are_suspicious_not_dangerous(tmp_path: Path) -> None:
    pkl = (
        P(2).empty_dict().mark().ustr("callbacks")
        .glob("pytorch_lightning.callbacks.model_checkpoint", "ModelCheckpoint").tuple_n(0).newobj()
        .ustr("epoch").glob("numpy.core.multiarray", "scalar").glob("numpy", "dtype").mark().ustr("i8").false().true()
        .tuple().reduce().bytes_(b"\x07" + b"\x00" * 7).tuple_n(2).reduce()
        .setitems().stop()
    )  # fmt: skip
    check_parses(pkl)
    r = _scan(tmp_path, "x.ckpt", torch_zip_bytes(data_pkl=pkl))
    assert r.verdict == "suspicious"
    assert [g.qualname for g in r.deciding] == ["pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint"]
    assert _rules(r) == ["pickle.suspicious-global"]


# -- hostile files: every bypass class ----------------------------------------------------------------


def _dangerous(r: PickleScan, *names: str) -> None:
    assert r.verdict == "dangerous", (r.verdict, r.reason)
    got = {g.qualname for g in r.deciding}
    for n in names:
        assert n in got, (n, got)
    assert "pickle.dangerous-global" in _rules(r)


@pytest.mark.parametrize("name", ["model.bin", "model.safetensors", "model.pt", "weights.npy", "x"])
def test_plain_pickle_under_any_name(tmp_path: Path, name: str) -> None:
    r = _scan(tmp_path, name, EVIL)
    assert r.format == "pickle"
    _dangerous(r, "posix.system")
    assert r.deciding[0].offset == 2 and r.deciding[0].opcode == "GLOBAL"


@pytest.mark.parametrize("proto", range(6))
def test_real_pickler_output_every_protocol(tmp_path: Path, proto: int) -> None:
    r = _scan(tmp_path, "p.pkl", pickle.dumps({"x": Reduce(os.system, "id")}, protocol=proto))
    _dangerous(r, f"{os.system.__module__}.system")


def test_zip_data_pkl(tmp_path: Path) -> None:
    r = _scan(tmp_path, "m.pt", torch_zip_bytes(ARRAYS, data_pkl=EVIL))
    _dangerous(r, "posix.system")
    g = r.deciding[0]
    assert g.member == "archive/data.pkl" and g.absolute
    assert (tmp_path / "m.pt").read_bytes()[g.offset : g.offset + 1] == b"c"


@pytest.mark.parametrize(
    ("trick", "entry"),
    [
        ("encryption flag", {"flags": 0x1}),
        ("bad crc", {"crc": 0x12345678}),
        ("local name differs", {"local_name": "archive/innocent.txt"}),
        ("deflated", {"method": 8}),
        ("data descriptor flag", {"flags": 0x8}),
    ],
)
def test_zip_tricks(tmp_path: Path, trick: str, entry: dict[str, object]) -> None:
    r = _scan(tmp_path, "m.pt", torch_zip_bytes(ARRAYS, data_pkl=EVIL, pkl_entry=entry))
    _dangerous(r, "posix.system")


@pytest.mark.parametrize(
    ("entry", "evasion"),
    [
        ({"flags": 0x1}, "plaintext pickle"),
        ({"crc": 1}, "CRC-32"),
        ({"local_name": "archive/x.txt"}, "local header names"),
    ],
)
def test_zip_tricks_on_benign_content_are_suspicious(tmp_path: Path, entry: dict[str, object], evasion: str) -> None:
    r = _scan(tmp_path, "m.pt", torch_zip_bytes(ARRAYS, pkl_entry=entry))
    assert r.verdict == "suspicious"
    assert any(evasion in e for e in r.evasions), r.evasions
    assert "pickle.evasion" in _rules(r)


def test_payload_in_a_member_that_is_not_data_pkl(tmp_path: Path) -> None:
    extra = [ZipEntry("archive/extra/thing.bin", EVIL), ZipEntry("archive/.data/notes", EVIL)]
    r = _scan(tmp_path, "m.pt", torch_zip_bytes(ARRAYS, extra_members=extra))
    _dangerous(r, "posix.system")
    assert {g.member for g in r.deciding} <= {"archive/extra/thing.bin", "archive/.data/notes"}
    assert len([g for g in r.globals if g.qualname == "posix.system"]) == 2


def test_protocol0_pickle_member_with_an_inert_name(tmp_path: Path) -> None:
    p0 = b"cposix\nsystem\n(S'id'\ntR."
    data = torch_zip_bytes(ARRAYS, extra_members=[ZipEntry("archive/extra/weights.safetensors", p0),
                                                   ZipEntry("notes.txt", p0, method=8)])  # fmt: skip
    r = _scan(tmp_path, "m.pt", data)
    _dangerous(r, "posix.system")
    assert {g.member for g in r.deciding} == {"archive/extra/weights.safetensors"}
    assert len([g for g in r.globals if g.qualname == "posix.system"]) == 2


def test_encryption_flag_on_a_deflated_plaintext_pickle(tmp_path: Path) -> None:
    r = _scan(tmp_path, "m.pt", torch_zip_bytes(ARRAYS, data_pkl=EVIL, pkl_entry={"flags": 1, "method": 8}))
    _dangerous(r, "posix.system")
    assert any("plaintext pickle" in e for e in r.evasions)


def test_pickle_hidden_in_a_storage_member(tmp_path: Path) -> None:
    arrays = dict(ARRAYS)
    data = torch_zip_bytes(arrays, extra_members=[ZipEntry("archive/data/99", EVIL)])
    r = _scan(tmp_path, "m.pt", data)
    _dangerous(r, "posix.system")
    assert any("storage member holds a complete pickle" in e for e in r.evasions)


def test_random_storage_bytes_that_start_like_a_pickle_are_ignored(tmp_path: Path) -> None:
    st = {"0": np.frombuffer(b"\x80\x02" + bytes(range(30)), dtype=np.uint8).copy()}
    r = _scan(tmp_path, "m.pt", torch_zip_bytes(refs=[TensorRef("b", "0", (32,), (1,))], storages=st))
    assert r.verdict == "safe", r.reason


def test_duplicate_member_names(tmp_path: Path) -> None:
    data = torch_zip_bytes(ARRAYS, extra_members=[ZipEntry("archive/data.pkl", EVIL)])
    r = _scan(tmp_path, "m.pt", data)
    _dangerous(r, "posix.system")
    assert any("duplicate-name" in e for e in r.evasions)


def test_7z_wrapping(tmp_path: Path) -> None:
    py7zr = pytest.importorskip("py7zr")
    p = tmp_path / "model.7z"
    with py7zr.SevenZipFile(p, "w") as a:
        a.writestr(torch_zip_bytes(ARRAYS, data_pkl=EVIL), "inner/model.pt")
        a.writestr(b"just text", "readme.txt")
    r = scan_file(p)
    assert r.format == "7z"
    _dangerous(r, "posix.system")
    assert r.deciding[0].member == "inner/model.pt!archive/data.pkl" and not r.deciding[0].absolute


def test_7z_encrypted_is_unscannable(tmp_path: Path) -> None:
    py7zr = pytest.importorskip("py7zr")
    p = tmp_path / "model.7z"
    with py7zr.SevenZipFile(p, "w", password="secret", header_encryption=True) as a:
        a.writestr(EVIL, "model.pkl")
    r = scan_file(p)
    assert r.verdict == "unscannable" and "encrypted" in r.reason


def test_string_fed_stack_global(tmp_path: Path) -> None:
    data = P(4).string0("subprocess").string0("getoutput").raw(b"\x93").mark().ustr("id").tuple().reduce().stop()
    _dangerous(_scan(tmp_path, "s.pt", data), "subprocess.getoutput")


def test_memo_type_confusion(tmp_path: Path) -> None:
    data = (
        P(4).str("posix").str("junk").pop().memoize().str("system").memoize().pop().pop()
        .get(0).get(1).raw(b"\x93").mark().ustr("id").tuple().reduce().stop()
    )  # fmt: skip
    _dangerous(_scan(tmp_path, "m.bin", data), "posix.system")


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("os.path", "join"),
        ("asyncio.subprocess", "create_subprocess_shell"),
        ("numpy.testing._private.utils", "runstring"),
        ("torch.utils.cpp_extension", "load_inline"),
        ("importlib.machinery", "SourceFileLoader"),
        ("multiprocessing.util", "spawnv_passfds"),
        ("distutils.spawn", "spawn"),
        ("http.server", "HTTPServer"),
    ],
)
def test_submodules_of_blocked_modules(tmp_path: Path, module: str, name: str) -> None:
    _dangerous(_scan(tmp_path, "s.pkl", P(2).call(module, name, "x").stop()), f"{module}.{name}")


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("functools", "reduce"),
        ("_functools", "partial"),
        ("operator", "attrgetter"),
        ("_operator", "methodcaller"),
        ("operator", "itemgetter"),
        ("importlib", "import_module"),
        ("builtins", "getattr"),
        ("__builtin__", "eval"),
        ("builtins", "__import__"),
        ("pkgutil", "resolve_name"),
        ("torch.storage", "_load_from_bytes"),
        ("torch.serialization", "load"),
        ("torch.fx.graph_module", "_exec_with_source"),
        ("torch.jit.unsupported_tensor_ops", "execWrapper"),
        ("torch._inductor.codecache", "compile_file"),
        ("runpy", "_run_code"),
        ("code", "InteractiveInterpreter.runcode"),
        ("torch.serialization", "os.system"),
        ("collections", "OrderedDict.__init__.__globals__"),
        ("pathlib", "Path.write_text"),
        ("webbrowser", "open"),
        ("socket", "create_connection"),
        ("ctypes", "CDLL"),
    ],
)
def test_gadgets(tmp_path: Path, module: str, name: str) -> None:
    _dangerous(_scan(tmp_path, "g.pkl", P(2).call(module, name, "x").stop()), f"{module}.{name}")


def test_partial_gadget_built_by_the_real_pickler(tmp_path: Path) -> None:
    import functools

    data = pickle.dumps(Reduce(functools.partial(os.system, "id")), protocol=4)
    r = _scan(tmp_path, "g.pt", data)
    _dangerous(r, f"{os.name}.system")
    # the partial itself only binds arguments; what it wraps decides
    assert {g.qualname: g.safety.label for g in r.globals}["functools.partial"] == "suspicious"


def test_partial_of_a_plain_class_is_suspicious(tmp_path: Path) -> None:
    import functools

    data = pickle.dumps({"norm_layer": functools.partial(collections.OrderedDict, a=1)}, protocol=2)
    r = _scan(tmp_path, "p.pt", data)
    assert r.verdict == "suspicious", r.reason
    assert _qualnames(r) == {"functools.partial", "collections.OrderedDict"}


def test_payload_followed_by_garbage_nullifai_style(tmp_path: Path) -> None:
    data = P(2).call("posix", "system", "id").raw(b"\x00\x01garbage").stop()
    r = _scan(tmp_path, "broken.pt", data)
    _dangerous(r, "posix.system")
    assert r.unscannable and "does not parse" in r.unscannable[0]


def test_truncated_benign_pickle_is_unscannable(tmp_path: Path) -> None:
    r = _scan(tmp_path, "t.pt", torch_zip_bytes(ARRAYS, data_pkl=state_dict_pickle(*_refs())[:-40]))
    assert r.verdict == "unscannable" and "does not parse" in r.reason
    assert "pickle.unscannable" in _rules(r)


def _refs() -> tuple[list[TensorRef], dict[str, np.ndarray]]:
    from tests.pickle_builders import state_dict_from_arrays

    return state_dict_from_arrays(ARRAYS)


def test_legacy_magic_pickle_payload(tmp_path: Path) -> None:
    magic = P(2).call("posix", "system", "id").stop()
    r = _scan(tmp_path, "old.pt", legacy_torch_bytes(ARRAYS, magic_pickle=magic))
    _dangerous(r, "posix.system")


def test_second_pickle_in_a_stream(tmp_path: Path) -> None:
    data = pickle.dumps({"a": 1}, protocol=2) + EVIL
    r = _scan(tmp_path, "two.pkl", data)
    _dangerous(r, "posix.system")
    assert [s.role for s in r.streams] == ["pickle", "pickle #2"]


def test_numpy_object_array(tmp_path: Path) -> None:
    r = _scan(tmp_path, "a.npy", npy_object_bytes(EVIL))
    assert r.format == "npy"
    _dangerous(r, "posix.system")
    plain = io.BytesIO()
    np.save(plain, np.arange(4, dtype=np.float32))
    r2 = _scan(tmp_path, "b.npy", plain.getvalue())
    assert r2.verdict == "safe" and r2.streams == []


def test_npz_member(tmp_path: Path) -> None:
    data = zip_bytes([ZipEntry("ok.npy", npy_object_bytes(pickle.dumps([1, 2], protocol=2))),
                      ZipEntry("bad.npy", npy_object_bytes(EVIL), method=8)])  # fmt: skip
    r = _scan(tmp_path, "a.npz", data)
    assert r.format == "npz"
    _dangerous(r, "posix.system")
    assert r.deciding[0].member == "bad.npy" and not r.deciding[0].absolute


def test_nested_zip_gzip_and_tar(tmp_path: Path) -> None:
    inner = torch_zip_bytes(ARRAYS, data_pkl=EVIL)
    outer = zip_bytes([ZipEntry("bundle/inner.zip", inner)])
    _dangerous(_scan(tmp_path, "outer.zip", outer), "posix.system")
    _dangerous(_scan(tmp_path, "m.pt.gz", gzip.compress(EVIL)), "posix.system")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, payload in [("storages", pickle.dumps(0, protocol=2)), ("tensors", pickle.dumps(0, protocol=2)), ("pickle", EVIL)]:
            ti = tarfile.TarInfo(name)
            ti.size = len(payload)
            tf.addfile(ti, io.BytesIO(payload))
    r = _scan(tmp_path, "ancient.pt", buf.getvalue())
    assert r.format == "tar" and r.container["kind"] == "pytorch-legacy-tar"
    _dangerous(r, "posix.system")
    assert r.deciding[0].member == "pickle" and r.deciding[0].absolute


def _v7_tar(members: dict[str, bytes]) -> bytes:
    """An old-style (pre-POSIX) tar: no 'ustar' magic, still accepted by tarfile and so by torch.load."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for name, payload in members.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(payload)
            tf.addfile(ti, io.BytesIO(payload))
    data = bytearray(buf.getvalue())
    pos = 0
    for payload in members.values():
        hdr = data[pos : pos + 512]
        hdr[257:265] = bytes(8)
        hdr[148:156] = b" " * 8
        hdr[148:156] = b"%06o\0 " % sum(hdr)
        data[pos : pos + 512] = hdr
        pos += 512 + (len(payload) + 511) // 512 * 512
    return bytes(data)


def test_old_style_tar_without_ustar_magic(tmp_path: Path) -> None:
    data = _v7_tar({"storages": pickle.dumps(0, protocol=2), "tensors": pickle.dumps(0, protocol=2), "pickle": EVIL})
    assert data[257:262] != b"ustar"
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        assert tf.getnames() == ["storages", "tensors", "pickle"]
    r = _scan(tmp_path, "ancient.pt", data)
    assert r.format == "tar"
    _dangerous(r, "posix.system")


def test_pickle_prefixed_to_a_zip(tmp_path: Path) -> None:
    # torch.load sees no zip magic at byte 0 and unpickles the start of the file
    r = _scan(tmp_path, "m.pt", EVIL + torch_zip_bytes(ARRAYS))
    assert r.format == "pickle"
    _dangerous(r, "posix.system")


def test_ext_opcode_is_dangerous(tmp_path: Path) -> None:
    r = _scan(tmp_path, "e.pkl", P(2).raw(b"\x82\x01").tuple_n(0).reduce().stop())
    assert r.verdict == "dangerous" and "could not be resolved" in r.reason


def test_torchscript_archive_is_code(tmp_path: Path) -> None:
    data = zip_bytes([
        ZipEntry("archive/data.pkl", P(2).glob("__torch__", "Model").tuple_n(0).newobj().stop()),
        ZipEntry("archive/constants.pkl", P(2).tuple_n(0).stop()),
        ZipEntry("archive/code/__torch__.py", b"class Model(Module):\n  def forward(self):\n    return None\n"),
    ])  # fmt: skip
    r = _scan(tmp_path, "j.pt", data)
    assert r.format == "torchscript" and r.verdict == "suspicious"
    assert "pickle.torchscript" in _rules(r) and r.container["torchscript_code_files"] == 1


def test_torchscript_code_that_touches_files_is_dangerous(tmp_path: Path) -> None:
    code = b"class Model(Module):\n  def forward(self, x):\n    torch.save(x, '/tmp/x')\n    return x\n"
    data = zip_bytes([
        ZipEntry("archive/data.pkl", P(2).glob("__torch__", "Model").tuple_n(0).newobj().stop()),
        ZipEntry("archive/code/__torch__.py", code),
        ZipEntry("archive/constants.pkl", P(2).tuple_n(0).stop()),
    ])  # fmt: skip
    r = _scan(tmp_path, "j.pt", data)
    assert r.format == "torchscript"
    _dangerous(r, "torch.save")
    g = r.deciding[0]
    assert (g.opcode, g.member) == ("CODE", "archive/code/__torch__.py")
    assert data[g.offset : g.offset + 10] == b"torch.save"


def test_7z_member_too_large_is_unscannable(tmp_path: Path) -> None:
    py7zr = pytest.importorskip("py7zr")
    p = tmp_path / "big.7z"
    with py7zr.SevenZipFile(p, "w") as a:
        a.writestr(b"\x80\x02" + b"N0" * 300_000 + b"N.", "model.pkl")
    r = scan_file(p, limits=Limits(max_member_bytes=100_000))
    assert r.verdict == "unscannable" and "larger than 100,000 bytes" in r.reason


# -- unscannable and bounded -----------------------------------------------------------------------------


def test_encrypted_member(tmp_path: Path) -> None:
    data = zip_bytes([ZipEntry("archive/data.pkl", os.urandom(64), flags=0x1)])
    r = _scan(tmp_path, "e.zip", data)
    assert r.verdict == "unscannable" and "encrypted" in r.reason


def test_unsupported_compression(tmp_path: Path) -> None:
    data = zip_bytes([ZipEntry("model.pkl", EVIL)])
    data = data.replace(b"PK\x03\x04\x14\x00\x00\x00\x00\x00", b"PK\x03\x04\x14\x00\x00\x00\x0e\x00", 1)
    data = data.replace(b"PK\x01\x02\x14\x00\x14\x00\x00\x00\x00\x00", b"PK\x01\x02\x14\x00\x14\x00\x00\x00\x0e\x00", 1)
    r = _scan(tmp_path, "m.zip", data)
    assert r.verdict == "unscannable" and "compression method 14" in r.reason


def test_corrupt_central_directory(tmp_path: Path) -> None:
    data = torch_zip_bytes(ARRAYS)
    r = _scan(tmp_path, "c.pt", data[: len(data) - 30])
    assert r.verdict == "unscannable" and "central directory" in r.reason


def test_zip_bomb_member(tmp_path: Path) -> None:
    data = zip_bytes([ZipEntry("bomb.pkl", b"\x00" * (8 << 20), method=8)])
    r = _scan(tmp_path, "b.zip", data, limits=Limits(max_member_bytes=1 << 20))
    assert r.verdict == "unscannable" and "decompresses past" in r.reason


def test_opcode_bomb(tmp_path: Path) -> None:
    r = _scan(tmp_path, "b.pkl", P(2).raw(b"N0" * 200_000).none().stop(), limits=Limits(max_ops=50_000))
    assert r.verdict == "unscannable" and "opcodes" in r.reason


def test_nesting_bomb(tmp_path: Path) -> None:
    data = EVIL
    for i in range(8):
        data = zip_bytes([ZipEntry(f"l{i}.zip", data)])
    r = _scan(tmp_path, "n.zip", data, limits=Limits(max_depth=4))
    assert r.verdict == "unscannable" and "nested deeper" in r.reason


def test_tensor_naming_is_bounded_on_shared_structure(tmp_path: Path) -> None:
    refs, st = _refs()
    one = state_dict_pickle(refs[:1], {refs[0].key: st[refs[0].key]})[2:-1]  # the OrderedDict, without PROTO/STOP
    p = P(2).raw(one).put(0).pop()
    for i in range(40):
        p.empty_list().get(i).get(i).tuple_n(2).append().put(i + 1).pop()
    data = p.get(40).stop()
    r = _scan(tmp_path, "laughs.pt", torch_zip_bytes(refs=refs[:1], storages={refs[0].key: st[refs[0].key]}, data_pkl=data),
              limits=Limits(max_walk_nodes=10_000))  # fmt: skip
    assert r.verdict == "safe" and r.recovery is not None
    assert any("too large" in pr for pr in r.recovery.problems)


# -- nothing ever runs -----------------------------------------------------------------------------------


def test_canary_nothing_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from registry.files import sniff as sniff_mod

    canary = tmp_path / "CANARY"
    calls: list[str] = []

    def trap(*a: object, **k: object) -> None:
        calls.append(repr(a))
        raise AssertionError("a loader was called")

    for mod, attr in [(pickle, "load"), (pickle, "loads"), (pickle, "Unpickler")]:
        monkeypatch.setattr(mod, attr, trap)
    payloads = canary_payloads(str(canary))
    assert len(payloads) == 10
    files = []
    for i, (_name, data) in enumerate(payloads.items()):
        files.append(tmp_path / f"p{i}.pkl")
        files[-1].write_bytes(data)
    files.append(tmp_path / "z.pt")
    files[-1].write_bytes(torch_zip_bytes(ARRAYS, data_pkl=payloads["os.system p2"]))
    files.append(tmp_path / "l.ckpt")
    files[-1].write_bytes(legacy_torch_bytes(ARRAYS, magic_pickle=payloads["builtins.exec"]))
    for f in files:
        sniff_mod.sniff(f)
        r = scan_file(f)
        assert r.verdict == "dangerous", (f.name, r.reason)
    assert not canary.exists()
    assert calls == []
    assert not any(tmp_path.glob("CANARY*"))
    assert builtins.open is open


# -- real files ------------------------------------------------------------------------------------------


@pytest.mark.skipif(CORPUS_DIR is None, reason="shared corpus not present")
def test_corpus_files() -> None:
    assert CORPUS_DIR is not None
    bad = scan_file(CORPUS_DIR / "pickles/unsafe_zip_pytorch.pt")
    _dangerous(bad, "posix.system")
    assert bad.deciding[0].member == "unsafe_zip_pytorch/data.pkl"
    enc = scan_file(CORPUS_DIR / "pickles/password_protected.zip")
    assert enc.verdict == "unscannable" and enc.reason == "test.txt: member is encrypted"
    lora = scan_file(CORPUS_DIR / "loras/lora_illust.pt")
    assert lora.verdict == "safe" and lora.recovery is not None
    assert len(lora.recovery.tensors) == 256 and all(t.readable for t in lora.recovery.tensors)
    assert lora.recovery.root == "list"
    t0 = lora.recovery.tensors[0]
    assert (t0.name, t0.dtype, t0.shape) == ("0", "F32", (320, 4))
    taesd = scan_file(CORPUS_DIR / "models/taef2_encoder.pth")
    assert taesd.verdict == "safe" and taesd.recovery is not None
    ts = {t.name: t for t in taesd.recovery.tensors}
    assert len(ts) == 79 and ts["0.weight"].shape == (64, 3, 3, 3) and ts["0.weight"].dtype == "F16"
    import zipfile

    raw = (CORPUS_DIR / "models/taef2_encoder.pth").read_bytes()
    with zipfile.ZipFile(CORPUS_DIR / "models/taef2_encoder.pth") as z:
        for t in taesd.recovery.tensors:
            member = z.read(f"taef2_encoder/data/{t.storage_key}")
            assert raw[t.file_offset : t.file_offset + t.nbytes] == member[t.storage_offset * 2 : t.storage_offset * 2 + t.nbytes]  # type: ignore[operator,index]
