"""The symbolic pickle machine: exact globals, offsets, memo tracking, bounded failure."""

from __future__ import annotations

import pickle  # writing only
import pickletools

import pytest

from registry.files.pickle_vm import Global, Limits, Obj, PDict, PersRef, walk
from tests.pickle_builders import P, Reduce, check_parses


def _globals(data: bytes) -> list[tuple[str, str, int, str]]:
    w = walk(data)
    return [(g.module, g.name, g.offset, g.opcode) for g in w.globals]


def test_global_offsets_and_result() -> None:
    data = P(2).glob("collections", "OrderedDict").tuple_n(0).reduce().stop()
    w = walk(data)
    assert w.complete and w.error is None and w.protocol == 2
    assert [(g.module, g.name, g.offset, g.opcode) for g in w.globals] == [("collections", "OrderedDict", 2, "GLOBAL")]
    assert isinstance(w.result, Obj) and isinstance(w.result.func, Global) and w.result.args == ()
    assert w.end == len(data)


def test_matches_pickletools_on_real_pickles() -> None:
    import collections
    import os

    obj = {"a": [1, 2.5, "x", b"yy", None, True], "od": collections.OrderedDict(k=(1, 2)), "f": Reduce(os.system, "x")}
    for proto in range(6):
        data = pickle.dumps(obj, protocol=proto)
        w = walk(data)
        assert w.complete, (proto, w.error)
        expected = []
        ops = list(pickletools.genops(data))
        for _i, (op, arg, _pos) in enumerate(ops):
            if op.name in ("GLOBAL", "INST"):
                expected.append(tuple(arg.split(" ", 1)))
            elif op.name == "STACK_GLOBAL":
                expected.append(("?", "?"))
        got = [(g.module, g.name) if g.opcode != "STACK_GLOBAL" else ("?", "?") for g in w.globals]
        assert got == expected, proto
        names = {(g.module, g.name) for g in w.globals}
        assert ("posix", "system") in names or ("os", "system") in names or ("nt", "system") in names


def test_stack_global_fed_by_protocol0_strings() -> None:
    data = P(4).string0("os").string0("system").raw(b"\x93").mark().ustr("id").tuple().reduce().stop()
    check_parses(data)
    assert _globals(data) == [("os", "system", 18, "STACK_GLOBAL")]


def test_stack_global_fed_by_binstring_and_memo() -> None:
    data = P(4).binstring("subprocess").put(0).binstring("check_output").put(1).pop().pop().get(0).get(1).raw(b"\x93").stop()
    check_parses(data)
    assert [(m, n) for m, n, _, _ in _globals(data)] == [("subprocess", "check_output")]


def test_memo_type_confusion_is_resolved_by_the_real_stack() -> None:
    # a naive scanner records memo[0] as the argument of the opcode before MEMOIZE (POP has none)
    data = P(4).str("posix").str("junk").pop().memoize().str("system").memoize().pop().pop().get(0).get(1).raw(b"\x93").stop()
    check_parses(data)
    assert [(m, n) for m, n, _, _ in _globals(data)] == [("posix", "system")]


def test_dup_before_put_confusion() -> None:
    data = P(4).str("builtins").dup().put(5).pop().pop().get(5).str("eval").raw(b"\x93").stop()
    check_parses(data)
    assert [(m, n) for m, n, _, _ in _globals(data)] == [("builtins", "eval")]


def test_non_string_operands_are_unresolved() -> None:
    data = P(4).glob("builtins", "str").tuple_n(0).reduce().str("system").raw(b"\x93").stop()
    w = walk(data)
    g = w.globals[-1]
    assert (g.module, g.name, g.resolved) == ("?", "system", False)
    assert "Obj" in g.note


def test_ext_opcodes_are_unresolved() -> None:
    w = walk(P(2).raw(b"\x82\x07").stop())
    assert [(g.module, g.name, g.opcode, g.resolved) for g in w.globals] == [("?", "?", "EXT1", False)]


def test_inst_and_obj() -> None:
    data = b"(S'x'\nios\nsystem\n."
    assert [(m, n, o) for m, n, _, o in _globals(data)] == [("os", "system", "INST")]
    data2 = P(1).mark().glob("os", "system").ustr("x").raw(b"o").stop()
    w = walk(data2)
    assert w.complete and isinstance(w.result, Obj) and w.result.kind == "obj"


def test_globals_before_a_parse_error_are_kept() -> None:
    data = P(2).call("posix", "system", "echo").raw(b"\xff\xff").stop()
    w = walk(data)
    assert not w.complete and w.error is not None and w.error.rule_id == "pickle.malformed"
    assert "unknown opcode 0xff" in str(w.error)
    assert [(g.module, g.name) for g in w.globals] == [("posix", "system")]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x80\x02", "no STOP"),
        (b"\x80\x02X\xff\xff\xff\x00abc.", "truncated"),
        (b"\x80\x02h\x05.", "memo key 5"),
        (b"\x80\x02R.", "stack underflow"),
        (b"\x80\x02t.", "needs a MARK"),
        (b"\x80\x09N.", "protocol 9"),
        (b"\x80\x02cos\nsys", "no newline"),
        (b"\x80\x02(K\x01K\x02K\x03d.", "odd number"),
        (b"\x80\x02J\x01\x02", "truncated"),
    ],
)
def test_malformed_streams(data: bytes, message: str) -> None:
    w = walk(data)
    assert not w.complete
    assert w.error is not None and message in str(w.error), str(w.error)


def test_persistent_ids_and_containers() -> None:
    data = (
        P(2).empty_dict().mark().ustr("w").mark().ustr("storage").glob("torch", "FloatStorage").ustr("0").ustr("cpu").int(4)
        .tuple().binpersid().setitems().stop()
    )  # fmt: skip
    w = walk(data)
    assert isinstance(w.result, PDict)
    (k, v), = w.result.items
    assert k == "w" and isinstance(v, PersRef) and v.pid[2] == "0" and v.pid[4] == 4
    assert len(w.persids) == 1


def test_opcode_limit_bounds_a_long_stream() -> None:
    data = P(2).raw(b"N0" * 50_000).none().stop()
    w = walk(data, limits=Limits(max_ops=10_000))
    assert w.error is not None and w.error.rule_id == "pickle.limit" and "10,000 opcodes" in str(w.error)


def test_mark_and_memo_limits() -> None:
    w = walk(P(2).raw(b"(" * 5000).stop(), limits=Limits(max_marks=1000))
    assert w.error is not None and w.error.rule_id == "pickle.limit"
    memo_bomb = P(4).none() .raw(b"\x94" * 3000).stop()
    w2 = walk(memo_bomb, limits=Limits(max_memo=1000))
    assert w2.error is not None and w2.error.rule_id == "pickle.limit" and "memo" in str(w2.error)


def test_billion_laughs_is_linear() -> None:
    # each level is a list holding the previous level ten times: 10**30 elements if built for real
    p = P(2).empty_list().put(0).pop()
    for i in range(30):
        p.empty_list().mark()
        for _ in range(10):
            p.get(i)
        p.appends().put(i + 1).pop()
    data = p.get(30).stop()
    check_parses(data)
    w = walk(data)
    assert w.complete and w.ops < 1000


def test_big_values_are_not_copied() -> None:
    payload = b"\x00" * (3 << 20)
    data = P(4).raw(b"\x8e" + len(payload).to_bytes(8, "little") + payload).stop()
    w = walk(data)
    assert w.complete and type(w.result).__name__ == "Blob" and w.result.length == len(payload)
