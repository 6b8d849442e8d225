"""A symbolic pickle machine: it reads the opcode stream and never imports, calls or builds anything real.

The machine keeps the unpickler's stack, mark stack and memo exactly as ``pickle.load`` would, but every
value that would come from running code is a placeholder: a :class:`Global` for an imported name, a
:class:`Obj` for the result of a call (``REDUCE``, ``NEWOBJ``, ``INST`` …), a :class:`PersRef` for a
persistent id. Strings, numbers, tuples, lists and dicts are built for real (as inert data), so that the
operands of ``STACK_GLOBAL`` are known exactly, including when they were fed by protocol-0 ``STRING``
opcodes or fetched from the memo under a misleading type.

Every limit (opcodes, memo entries, objects, kept string bytes, mark depth) is checked as it is reached,
so a pickle bomb ends with :class:`~registry.errors.PickleError` (rule ``pickle.limit``) in bounded time
and memory. A malformed stream ends with rule ``pickle.malformed`` at the offset where a real unpickler
would fail; the globals seen before that point are kept on the :class:`Walk` (a real unpickler would have
imported and possibly called them already).
"""

from __future__ import annotations

import codecs
import struct
from dataclasses import dataclass, field
from typing import Any

from registry.errors import PickleError

# -- limits ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """Bounds that make any input end in bounded time and memory."""

    #: opcodes per pickle stream
    max_ops: int = 10_000_000
    #: memo entries
    max_memo: int = 1_000_000
    #: containers and placeholder objects created
    max_objects: int = 4_000_000
    #: nested MARKs open at once
    max_marks: int = 100_000
    #: items on the stack at once
    max_stack: int = 4_000_000
    #: total bytes of string/bytes values kept in memory (longer values become :class:`Blob` markers)
    max_kept_bytes: int = 256 << 20
    #: one string/bytes value longer than this is kept as a :class:`Blob` marker, not copied
    max_value_bytes: int = 1 << 20
    #: decimal digits accepted in protocol-0 INT/LONG and bytes in LONG1/LONG4 before the value is opaque
    max_int_digits: int = 4000
    #: decompressed bytes read from one archive member
    max_member_bytes: int = 1 << 30
    #: decompressed bytes read from all members of one file together
    max_total_bytes: int = 4 << 30
    #: containers inside containers (zip in 7z in zip …)
    max_depth: int = 4
    #: consecutive pickles in one stream (legacy torch files hold five)
    max_pickles: int = 256
    #: archive members looked at
    max_members: int = 200_000
    #: nodes visited when naming tensors in the recovered structure
    max_walk_nodes: int = 5_000_000


DEFAULT_LIMITS = Limits()

R_MALFORMED = "pickle.malformed"
R_LIMIT = "pickle.limit"

# -- symbolic values ---------------------------------------------------------------------------------


class _Mark:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MARK"


MARK = _Mark()


class Global:
    """A name the unpickler would import (``GLOBAL``, ``INST``, ``STACK_GLOBAL``, ``EXT*``)."""

    __slots__ = ("module", "name", "offset", "opcode", "resolved", "note")

    def __init__(self, module: str, name: str, offset: int, opcode: str, resolved: bool = True, note: str = "") -> None:
        self.module = module
        self.name = name
        self.offset = offset
        self.opcode = opcode
        self.resolved = resolved
        self.note = note

    @property
    def qualname(self) -> str:
        return f"{self.module}.{self.name}"

    def __repr__(self) -> str:
        return f"Global({self.module!r}, {self.name!r} @ {self.offset})"


class Obj:
    """What a call would have returned: ``func(*args)`` (REDUCE/INST/OBJ) or ``cls.__new__`` (NEWOBJ*).

    ``items`` receives SETITEM(S) aimed at it (an OrderedDict built by REDUCE), ``appends`` APPEND(S),
    ``state`` the argument of BUILD.
    """

    __slots__ = ("kind", "func", "args", "kwargs", "offset", "items", "appends", "state")

    def __init__(self, kind: str, func: Any, args: Any, offset: int, kwargs: Any = None) -> None:
        self.kind = kind
        self.func = func
        self.args = args
        self.kwargs = kwargs
        self.offset = offset
        self.items: list[tuple[Any, Any]] | None = None
        self.appends: list[Any] | None = None
        self.state: Any = None

    def __repr__(self) -> str:
        return f"Obj({self.kind}, {self.func!r}, @{self.offset})"


class PDict:
    """A dict as the stream builds it: pairs in order (keys may be unhashable placeholders)."""

    __slots__ = ("items",)

    def __init__(self, items: list[tuple[Any, Any]] | None = None) -> None:
        self.items: list[tuple[Any, Any]] = items if items is not None else []

    def __repr__(self) -> str:
        return f"PDict({len(self.items)} items)"


class PSet:
    __slots__ = ("items", "frozen")

    def __init__(self, items: list[Any] | None = None, frozen: bool = False) -> None:
        self.items: list[Any] = items if items is not None else []
        self.frozen = frozen


class PersRef:
    """A persistent id (torch: ``('storage', storage_type, key, location, numel)``)."""

    __slots__ = ("pid", "offset")

    def __init__(self, pid: Any, offset: int) -> None:
        self.pid = pid
        self.offset = offset

    def __repr__(self) -> str:
        return f"PersRef({self.pid!r})"


class Blob:
    """A string/bytes/int value too large to keep; ``offset`` is where its bytes start in the buffer."""

    __slots__ = ("kind", "offset", "length")

    def __init__(self, kind: str, offset: int, length: int) -> None:
        self.kind = kind
        self.offset = offset
        self.length = length

    def __repr__(self) -> str:
        return f"Blob({self.kind}, {self.length} bytes @ {self.offset})"


class Opaque:
    """A value the machine cannot know (an out-of-band buffer, an extension code …)."""

    __slots__ = ("what",)

    def __init__(self, what: str) -> None:
        self.what = what


_BUILTIN_MODULES = frozenset({"builtins", "__builtin__", "__builtins__"})


def is_getattr(v: Any) -> bool:
    """True for the global ``builtins.getattr`` (any spelling of the builtins module)."""
    return isinstance(v, Global) and v.name == "getattr" and v.module in _BUILTIN_MODULES


def class_like(name: str) -> bool:
    """A name spelled like a class (``Resize``, ``_VariableFunctionsClass``), not like a function."""
    from registry.files.pickle_policy import class_like_name

    return class_like_name(name)


@dataclass
class AttrFetch:
    """One ``getattr(target, name)`` made by ``REDUCE`` on ``builtins.getattr``.

    Real checkpoints pickle bound methods and (since Python 3.12) enum members this way; an exploit uses
    the same call to reach ``os.system``. The walk records every fetch and every way its result (or
    ``getattr`` itself) is used, so that the policy can tell a fetched value that is only stored from one
    that is called, fetched from again, or handed to another callable.
    """

    fn: Global
    args: Any
    offset: int
    result: Obj
    #: how the fetched value is used beyond being stored (called, fetched from, handed to a function …)
    misuse: list[str] = field(default_factory=list)


@dataclass
class Walk:
    """The outcome of walking one pickle stream."""

    start: int
    #: offset just past STOP (or where the walk stopped)
    end: int = 0
    protocol: int = 0
    ops: int = 0
    globals: list[Global] = field(default_factory=list)
    #: persistent ids in order of appearance
    persids: list[PersRef] = field(default_factory=list)
    #: the value at STOP (None when the walk failed)
    result: Any = None
    complete: bool = False
    error: PickleError | None = None
    #: calls made (REDUCE/NEWOBJ/INST/OBJ) on each global qualname, counted
    calls: dict[str, int] = field(default_factory=dict)
    #: every ``getattr(target, name)`` call, in order
    attr_fetches: list[AttrFetch] = field(default_factory=list)
    #: id of a ``getattr`` global → how it is used other than by a plain ``REDUCE`` call
    attr_misuse: dict[int, list[str]] = field(default_factory=dict)


_I4 = struct.Struct("<i")
_U4 = struct.Struct("<I")
_U8 = struct.Struct("<Q")
_U2 = struct.Struct("<H")
_F8 = struct.Struct(">d")

# opcode bytes
_MARK, _STOP, _POP, _POP_MARK, _DUP = 0x28, 0x2E, 0x30, 0x31, 0x32
_FLOAT, _INT, _BININT, _BININT1, _LONG, _BININT2, _NONE = 0x46, 0x49, 0x4A, 0x4B, 0x4C, 0x4D, 0x4E
_PERSID, _BINPERSID, _REDUCE, _STRING, _BINSTRING, _SHORT_BINSTRING = 0x50, 0x51, 0x52, 0x53, 0x54, 0x55
_UNICODE, _BINUNICODE, _APPEND, _BUILD, _GLOBAL, _DICT, _EMPTY_DICT = 0x56, 0x58, 0x61, 0x62, 0x63, 0x64, 0x7D
_APPENDS, _GET, _BINGET, _INST, _LONG_BINGET, _LIST, _EMPTY_LIST = 0x65, 0x67, 0x68, 0x69, 0x6A, 0x6C, 0x5D
_OBJ, _PUT, _BINPUT, _LONG_BINPUT, _SETITEM, _TUPLE, _EMPTY_TUPLE = 0x6F, 0x70, 0x71, 0x72, 0x73, 0x74, 0x29
_SETITEMS, _BINFLOAT, _BINBYTES, _SHORT_BINBYTES = 0x75, 0x47, 0x42, 0x43
_PROTO, _NEWOBJ, _EXT1, _EXT2, _EXT4, _TUPLE1, _TUPLE2, _TUPLE3 = 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87
_NEWTRUE, _NEWFALSE, _LONG1, _LONG4 = 0x88, 0x89, 0x8A, 0x8B
_SHORT_BINUNICODE, _BINUNICODE8, _BINBYTES8, _EMPTY_SET, _ADDITEMS = 0x8C, 0x8D, 0x8E, 0x8F, 0x90
_FROZENSET, _NEWOBJ_EX, _STACK_GLOBAL, _MEMOIZE, _FRAME = 0x91, 0x92, 0x93, 0x94, 0x95
_BYTEARRAY8, _NEXT_BUFFER, _READONLY_BUFFER = 0x96, 0x97, 0x98

OPNAMES: dict[int, str] = {
    0x28: "MARK", 0x2E: "STOP", 0x30: "POP", 0x31: "POP_MARK", 0x32: "DUP", 0x46: "FLOAT", 0x49: "INT",
    0x4A: "BININT", 0x4B: "BININT1", 0x4C: "LONG", 0x4D: "BININT2", 0x4E: "NONE", 0x50: "PERSID",
    0x51: "BINPERSID", 0x52: "REDUCE", 0x53: "STRING", 0x54: "BINSTRING", 0x55: "SHORT_BINSTRING",
    0x56: "UNICODE", 0x58: "BINUNICODE", 0x61: "APPEND", 0x62: "BUILD", 0x63: "GLOBAL", 0x64: "DICT",
    0x7D: "EMPTY_DICT", 0x65: "APPENDS", 0x67: "GET", 0x68: "BINGET", 0x69: "INST", 0x6A: "LONG_BINGET",
    0x6C: "LIST", 0x5D: "EMPTY_LIST", 0x6F: "OBJ", 0x70: "PUT", 0x71: "BINPUT", 0x72: "LONG_BINPUT",
    0x73: "SETITEM", 0x74: "TUPLE", 0x29: "EMPTY_TUPLE", 0x75: "SETITEMS", 0x47: "BINFLOAT",
    0x42: "BINBYTES", 0x43: "SHORT_BINBYTES", 0x80: "PROTO", 0x81: "NEWOBJ", 0x82: "EXT1", 0x83: "EXT2",
    0x84: "EXT4", 0x85: "TUPLE1", 0x86: "TUPLE2", 0x87: "TUPLE3", 0x88: "NEWTRUE", 0x89: "NEWFALSE",
    0x8A: "LONG1", 0x8B: "LONG4", 0x8C: "SHORT_BINUNICODE", 0x8D: "BINUNICODE8", 0x8E: "BINBYTES8",
    0x8F: "EMPTY_SET", 0x90: "ADDITEMS", 0x91: "FROZENSET", 0x92: "NEWOBJ_EX", 0x93: "STACK_GLOBAL",
    0x94: "MEMOIZE", 0x95: "FRAME", 0x96: "BYTEARRAY8", 0x97: "NEXT_BUFFER", 0x98: "READONLY_BUFFER",
}  # fmt: skip

#: opcodes a real unpickler accepts as the first byte of a stream
VALID_OPCODES = frozenset(OPNAMES)


class _Stop(Exception):
    """Internal: the walk ended (error already recorded)."""


def _fail(walk: Walk, rule: str, message: str, pos: int) -> _Stop:
    walk.error = PickleError(rule, message, offset=pos)
    walk.end = pos
    return _Stop()


def _decode_stringnl(raw: bytes) -> str | None:
    """Protocol-0 STRING argument: a quoted Python literal. None when malformed (the unpickler fails)."""
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[:1] in (b"'", b'"'):
        try:
            return codecs.escape_decode(raw[1:-1])[0].decode("latin-1")
        except (ValueError, UnicodeDecodeError):
            return None
    return None


def walk(
    buf: bytes | bytearray | memoryview | Any,
    start: int = 0,
    end: int | None = None,
    limits: Limits = DEFAULT_LIMITS,
    base: int = 0,
    keep_values: bool = True,
) -> Walk:
    """Walk one pickle stream from ``buf[start]`` up to its STOP (or ``end``).

    ``buf`` is anything indexable like bytes (bytes, mmap). ``base`` is added to every recorded offset
    (the absolute position of ``buf[0]`` in the file, when ``buf`` is a member read out of an archive).
    Never raises on bad input: the error is on ``Walk.error``.
    """
    w = Walk(start=start + base)
    if end is None:
        end = len(buf)
    try:
        _run(w, buf, start, end, limits, base, keep_values)
    except _Stop:
        pass
    except (IndexError, struct.error):
        # a fixed-size argument ran past the end of the buffer
        w.error = PickleError(R_MALFORMED, "pickle truncated inside an opcode argument", offset=base + len(buf))
        w.end = base + len(buf)
    except RecursionError:  # pragma: no cover - nothing here recurses, kept as a belt
        w.error = PickleError(R_LIMIT, "structure too deep", offset=w.end)
    except MemoryError:
        w.error = PickleError(R_LIMIT, "ran out of memory walking the pickle", offset=w.end)
    return w


def _run(w: Walk, buf: Any, pos: int, end: int, lim: Limits, base: int, keep: bool) -> None:  # noqa: C901
    stack: list[Any] = []
    metastack: list[list[Any]] = []
    memo: dict[int, Any] = {}
    push = stack.append
    globals_ = w.globals
    persids = w.persids
    calls = w.calls
    fetches = w.attr_fetches
    misuse = w.attr_misuse
    #: id of a getattr global → (it, None); id of a value it fetched → (the global, the fetch)
    watch: dict[int, tuple[Global, AttrFetch | None]] = {}
    #: container nodes the argument checks may visit in this stream (beyond it, every watched use counts as misuse)
    watch_budget = 20_000_000
    ops = 0
    objects = 0
    kept = 0
    max_ops = lim.max_ops
    max_memo = lim.max_memo
    max_objects = lim.max_objects
    max_value = lim.max_value_bytes
    max_kept = lim.max_kept_bytes
    max_stack = lim.max_stack
    u4 = _U4.unpack_from
    i4 = _I4.unpack_from
    u8 = _U8.unpack_from

    def need(n: int, at: int) -> None:
        if at + n > end:
            raise _fail(w, R_MALFORMED, f"pickle truncated: opcode at {base + at - 1} needs {n} more bytes", base + at)

    def readline(at: int) -> tuple[bytes, int]:
        nl = buf.find(b"\n", at, end)
        if nl < 0:
            raise _fail(w, R_MALFORMED, f"pickle truncated: no newline after opcode at {base + at - 1}", base + at)
        return bytes(buf[at:nl]), nl + 1

    def pop_mark() -> list[Any]:
        nonlocal stack, push
        if not metastack:
            raise _fail(w, R_MALFORMED, f"opcode at {base + op_at} needs a MARK but none is open", base + op_at)
        items = stack
        stack = metastack.pop()
        push = stack.append
        return items

    def underflow() -> _Stop:
        return _fail(w, R_MALFORMED, f"stack underflow at {base + op_at} ({OPNAMES.get(op, hex(op))})", base + op_at)

    def keep_bytes(kind: str, at: int, n: int) -> Any:
        nonlocal kept
        if n > max_value or kept + n > max_kept or not keep:
            return Blob(kind, base + at, n)
        kept += n
        raw = bytes(buf[at : at + n])
        if kind == "str":
            try:
                return raw.decode("utf-8", "surrogatepass")
            except UnicodeDecodeError:
                raise _fail(w, R_MALFORMED, f"invalid UTF-8 in string at {base + at}", base + at) from None
        if kind == "bytearray":
            return bytearray(raw)
        return raw

    def add_global(module: Any, name: Any, at: int, opname: str) -> Global:
        if isinstance(module, str) and isinstance(name, str):
            g = Global(module, name, base + at, opname)
        else:
            g = Global(
                module if isinstance(module, str) else "?",
                name if isinstance(name, str) else "?",
                base + at,
                opname,
                resolved=False,
                note=f"operands are {type(module).__name__} and {type(name).__name__}, not strings",
            )
        globals_.append(g)
        if is_getattr(g):
            watch[id(g)] = (g, None)
        return g

    def count_call(func: Any) -> None:
        if isinstance(func, Global):
            q = func.qualname
            calls[q] = calls.get(q, 0) + 1

    def misused(hit: tuple[Global, AttrFetch | None], text: str) -> None:
        g, fetch = hit
        lst = fetch.misuse if fetch is not None else misuse.setdefault(id(g), [])
        if len(lst) < 5 and text not in lst:
            lst.append(text)

    def callee_name(f: Any) -> str:
        if isinstance(f, Global):
            return f.qualname
        if isinstance(f, Obj):
            return "the result of a call"
        return type(f).__name__

    def watch_call(func: Any, args: Any, at: int, how: str) -> None:
        """A call is about to happen: note every watched value it calls, or receives among its arguments."""
        hit = watch.get(id(func))
        if hit is not None and (hit[1] is not None or how != "REDUCE"):
            what = "the fetched value" if hit[1] is not None else "getattr"
            misused(hit, f"{what} is called ({how}) at byte {base + at}")
        # a fetched value handed to a class (an enum member or a method passed to a constructor) is data;
        # handed to a function (``_rebuild_from_type_v2`` calls its first argument) it may be called
        to_class = isinstance(func, Global) and not is_getattr(func) and class_like(func.name)
        # plain containers are followed; an object built by an earlier call is not (its own arguments were
        # checked when it was built, and what BUILD or SETITEMS later put in it is state, not arguments)
        nonlocal watch_budget
        todo = [args]
        seen: set[int] = set()
        while todo:
            v = todo.pop()
            if v is None or isinstance(v, (str, bytes, int, float)):
                continue
            i = id(v)
            if i in seen:
                continue
            seen.add(i)
            watch_budget -= 1
            if watch_budget < 0:
                for h in list(watch.values()):
                    misused(h, f"arguments of the calls up to byte {base + at} are too large to check")
                return
            hit = watch.get(i)
            if hit is not None:
                if hit[1] is None or not to_class:
                    what = "the fetched value" if hit[1] is not None else "getattr itself"
                    misused(hit, f"{what} is passed to {callee_name(func)} at byte {base + at}")
                continue
            if isinstance(v, (tuple, list)):
                todo.extend(v)
            elif isinstance(v, PDict):
                for k, x in v.items:
                    todo.append(k)
                    todo.append(x)
            elif isinstance(v, PSet):
                todo.extend(v.items)

    op_at = pos
    op = 0
    while True:
        if pos >= end:
            raise _fail(w, R_MALFORMED, f"pickle truncated: no STOP before byte {base + pos}", base + pos)
        op = buf[pos]
        op_at = pos
        pos += 1
        ops += 1
        if not ops & 0x3FF:
            if ops > max_ops:
                raise _fail(w, R_LIMIT, f"more than {max_ops:,} opcodes (pickle bomb or not a pickle)", base + op_at)
            if objects > max_objects:
                raise _fail(w, R_LIMIT, f"more than {max_objects:,} objects built", base + op_at)
            if len(stack) > max_stack:
                raise _fail(w, R_LIMIT, f"more than {max_stack:,} items on the stack", base + op_at)
        # -- the most frequent opcodes of torch pickles first --------------------------------------
        if op == _BINPUT:
            if not stack:
                raise underflow()
            memo[buf[pos]] = stack[-1]
            pos += 1
        elif op == _BINGET:
            try:
                push(memo[buf[pos]])
            except KeyError:
                raise _fail(w, R_MALFORMED, f"memo key {buf[pos]} read before it was written (at {base + op_at})", base + op_at) from None
            pos += 1
        elif op == _MARK:
            if len(metastack) >= lim.max_marks:
                raise _fail(w, R_LIMIT, f"more than {lim.max_marks:,} nested MARKs", base + op_at)
            metastack.append(stack)
            stack = []
            push = stack.append
        elif op in (_BINUNICODE, _SHORT_BINUNICODE, _BINUNICODE8):
            if op == _SHORT_BINUNICODE:
                need(1, pos)
                n = buf[pos]
                pos += 1
            elif op == _BINUNICODE:
                need(4, pos)
                n = u4(buf, pos)[0]
                pos += 4
            else:
                need(8, pos)
                n = u8(buf, pos)[0]
                pos += 8
            need(n, pos)
            push(keep_bytes("str", pos, n))
            pos += n
        elif op == _BININT1:
            push(buf[pos])
            pos += 1
        elif op == _TUPLE:
            items = pop_mark()
            push(tuple(items))
        elif op in (_REDUCE, _NEWOBJ):
            if len(stack) < 2:
                raise underflow()
            args = stack.pop()
            func = stack[-1]
            objects += 1
            obj = Obj("reduce" if op == _REDUCE else "newobj", func, args, base + op_at)
            stack[-1] = obj
            count_call(func)
            if watch:
                watch_call(func, args, op_at, OPNAMES[op])
            if op == _REDUCE and is_getattr(func):
                fetch = AttrFetch(func, args, base + op_at, obj)
                fetches.append(fetch)
                watch[id(obj)] = (func, fetch)
        elif op == _BINPERSID:
            if not stack:
                raise underflow()
            p = PersRef(stack[-1], base + op_at)
            persids.append(p)
            stack[-1] = p
        elif op == _NEWFALSE:
            push(False)
        elif op == _NEWTRUE:
            push(True)
        elif op == _EMPTY_TUPLE:
            push(())
        elif op == _TUPLE1:
            if not stack:
                raise underflow()
            stack[-1] = (stack[-1],)
        elif op == _TUPLE2:
            if len(stack) < 2:
                raise underflow()
            b = stack.pop()
            stack[-1] = (stack[-1], b)
        elif op == _TUPLE3:
            if len(stack) < 3:
                raise underflow()
            c = stack.pop()
            b = stack.pop()
            stack[-1] = (stack[-1], b, c)
        elif op == _BININT2:
            push(buf[pos] | (buf[pos + 1] << 8))
            pos += 2
        elif op == _BININT:
            push(i4(buf, pos)[0])
            pos += 4
        elif op == _LONG_BINPUT:
            need(4, pos)
            if not stack:
                raise underflow()
            k = u4(buf, pos)[0]
            if k not in memo and len(memo) >= max_memo:
                raise _fail(w, R_LIMIT, f"more than {max_memo:,} memo entries", base + op_at)
            memo[k] = stack[-1]
            pos += 4
        elif op == _LONG_BINGET:
            need(4, pos)
            k = u4(buf, pos)[0]
            try:
                push(memo[k])
            except KeyError:
                raise _fail(w, R_MALFORMED, f"memo key {k} read before it was written (at {base + op_at})", base + op_at) from None
            pos += 4
        elif op == _MEMOIZE:
            if not stack:
                raise underflow()
            if len(memo) >= max_memo:
                raise _fail(w, R_LIMIT, f"more than {max_memo:,} memo entries", base + op_at)
            memo[len(memo)] = stack[-1]
        elif op == _SETITEMS:
            items = pop_mark()
            if not stack:
                raise underflow()
            if len(items) % 2:
                raise _fail(w, R_MALFORMED, f"SETITEMS at {base + op_at} has an odd number of items", base + op_at)
            target = stack[-1]
            pairs = list(zip(items[::2], items[1::2], strict=False))
            if isinstance(target, PDict):
                target.items.extend(pairs)
            elif isinstance(target, Obj):
                if target.items is None:
                    target.items = []
                target.items.extend(pairs)
        elif op == _SETITEM:
            if len(stack) < 3:
                raise underflow()
            v = stack.pop()
            k = stack.pop()
            target = stack[-1]
            if isinstance(target, PDict):
                target.items.append((k, v))
            elif isinstance(target, Obj):
                if target.items is None:
                    target.items = []
                target.items.append((k, v))
        elif op == _EMPTY_DICT:
            objects += 1
            push(PDict())
        elif op == _EMPTY_LIST:
            objects += 1
            push([])
        elif op == _APPENDS:
            items = pop_mark()
            if not stack:
                raise underflow()
            target = stack[-1]
            if isinstance(target, list):
                target.extend(items)
            elif isinstance(target, Obj):
                if target.appends is None:
                    target.appends = []
                target.appends.extend(items)
        elif op == _APPEND:
            if len(stack) < 2:
                raise underflow()
            v = stack.pop()
            target = stack[-1]
            if isinstance(target, list):
                target.append(v)
            elif isinstance(target, Obj):
                if target.appends is None:
                    target.appends = []
                target.appends.append(v)
        elif op == _BUILD:
            if len(stack) < 2:
                raise underflow()
            state = stack.pop()
            target = stack[-1]
            if watch and id(target) in watch:
                hit = watch[id(target)]
                what = "the fetched value" if hit[1] is not None else "getattr"
                misused(hit, f"BUILD sets state on {what} at byte {base + op_at}")
            if isinstance(target, Obj):
                target.state = state
            elif isinstance(target, Global):
                count_call(target)
        elif op in (_GLOBAL, _INST):
            m, pos = readline(pos)
            n_, pos = readline(pos)
            try:
                module = m.decode("utf-8")
                name = n_.decode("utf-8")
            except UnicodeDecodeError:
                raise _fail(w, R_MALFORMED, f"GLOBAL at {base + op_at} is not UTF-8", base + op_at) from None
            g = add_global(module, name, op_at, "GLOBAL" if op == _GLOBAL else "INST")
            if op == _GLOBAL:
                push(g)
            else:
                items = pop_mark()
                objects += 1
                count_call(g)
                if watch:
                    watch_call(g, tuple(items), op_at, "INST")
                push(Obj("inst", g, tuple(items), base + op_at))
        elif op == _STACK_GLOBAL:
            if len(stack) < 2:
                raise underflow()
            name_v = stack.pop()
            module_v = stack.pop()
            push(add_global(module_v, name_v, op_at, "STACK_GLOBAL"))
        elif op == _PROTO:
            need(1, pos)
            proto = buf[pos]
            if proto > 5:
                raise _fail(w, R_MALFORMED, f"unsupported pickle protocol {proto} at {base + op_at}", base + op_at)
            w.protocol = max(w.protocol, proto)
            pos += 1
        elif op == _FRAME:
            need(8, pos)
            pos += 8
        elif op == _STOP:
            if not stack:
                raise underflow()
            w.result = stack[-1]
            w.complete = True
            w.end = base + pos
            w.ops = ops
            return
        elif op == _NONE:
            push(None)
        elif op == _BINFLOAT:
            need(8, pos)
            push(_F8.unpack_from(buf, pos)[0])
            pos += 8
        elif op in (_BINBYTES, _SHORT_BINBYTES, _BINBYTES8, _BYTEARRAY8):
            if op == _SHORT_BINBYTES:
                need(1, pos)
                n = buf[pos]
                pos += 1
            elif op == _BINBYTES:
                need(4, pos)
                n = u4(buf, pos)[0]
                pos += 4
            else:
                need(8, pos)
                n = u8(buf, pos)[0]
                pos += 8
            need(n, pos)
            push(keep_bytes("bytearray" if op == _BYTEARRAY8 else "bytes", pos, n))
            pos += n
        elif op in (_BINSTRING, _SHORT_BINSTRING):
            if op == _SHORT_BINSTRING:
                need(1, pos)
                n = buf[pos]
                pos += 1
            else:
                need(4, pos)
                n = i4(buf, pos)[0]
                pos += 4
                if n < 0:
                    raise _fail(w, R_MALFORMED, f"BINSTRING at {base + op_at} has a negative length", base + op_at)
            need(n, pos)
            v = keep_bytes("bytes", pos, n)
            # the Python 3 unpickler decodes protocol-0/1 strings to str (encoding ASCII, torch: UTF-8)
            push(v.decode("latin-1") if isinstance(v, bytes) else v)
            pos += n
        elif op == _STRING:
            raw, pos = readline(pos)
            s = _decode_stringnl(raw.rstrip(b"\r"))
            if s is None:
                raise _fail(w, R_MALFORMED, f"STRING at {base + op_at} is not a quoted string", base + op_at)
            push(s)
        elif op == _UNICODE:
            raw, pos = readline(pos)
            try:
                push(raw.decode("raw-unicode-escape"))
            except UnicodeDecodeError:
                raise _fail(w, R_MALFORMED, f"UNICODE at {base + op_at} does not decode", base + op_at) from None
        elif op in (_INT, _LONG):
            raw, pos = readline(pos)
            txt = raw.strip()
            if op == _LONG and txt.endswith(b"L"):
                txt = txt[:-1]
            if op == _INT and txt in (b"00", b"01"):
                push(txt == b"01")
            elif len(txt) > lim.max_int_digits:
                push(Blob("int", base + op_at + 1, len(txt)))
            else:
                try:
                    push(int(txt))
                except ValueError:
                    raise _fail(w, R_MALFORMED, f"{OPNAMES[op]} at {base + op_at} is not an integer", base + op_at) from None
        elif op in (_LONG1, _LONG4):
            if op == _LONG1:
                need(1, pos)
                n = buf[pos]
                pos += 1
            else:
                need(4, pos)
                n = i4(buf, pos)[0]
                pos += 4
                if n < 0:
                    raise _fail(w, R_MALFORMED, f"LONG4 at {base + op_at} has a negative length", base + op_at)
            need(n, pos)
            if n > lim.max_int_digits:
                push(Blob("int", base + pos, n))
            else:
                push(int.from_bytes(bytes(buf[pos : pos + n]), "little", signed=True))
            pos += n
        elif op == _FLOAT:
            raw, pos = readline(pos)
            try:
                push(float(raw))
            except ValueError:
                raise _fail(w, R_MALFORMED, f"FLOAT at {base + op_at} is not a number", base + op_at) from None
        elif op in (_PUT, _GET):
            raw, pos = readline(pos)
            try:
                k = int(raw)
            except ValueError:
                raise _fail(w, R_MALFORMED, f"{OPNAMES[op]} at {base + op_at} has a bad memo key", base + op_at) from None
            if op == _PUT:
                if k < 0:
                    raise _fail(w, R_MALFORMED, f"PUT at {base + op_at} has a negative memo key", base + op_at)
                if not stack:
                    raise underflow()
                if k not in memo and len(memo) >= max_memo:
                    raise _fail(w, R_LIMIT, f"more than {max_memo:,} memo entries", base + op_at)
                memo[k] = stack[-1]
            else:
                try:
                    push(memo[k])
                except KeyError:
                    raise _fail(w, R_MALFORMED, f"memo key {k} read before it was written (at {base + op_at})", base + op_at) from None
        elif op == _DICT:
            items = pop_mark()
            if len(items) % 2:
                raise _fail(w, R_MALFORMED, f"DICT at {base + op_at} has an odd number of items", base + op_at)
            objects += 1
            push(PDict(list(zip(items[::2], items[1::2], strict=False))))
        elif op == _LIST:
            items = pop_mark()
            objects += 1
            push(items)
        elif op == _EMPTY_SET:
            objects += 1
            push(PSet())
        elif op == _ADDITEMS:
            items = pop_mark()
            if not stack:
                raise underflow()
            target = stack[-1]
            if isinstance(target, PSet):
                target.items.extend(items)
        elif op == _FROZENSET:
            items = pop_mark()
            objects += 1
            push(PSet(items, frozen=True))
        elif op == _POP:
            if stack:
                stack.pop()
            else:
                pop_mark()
        elif op == _POP_MARK:
            pop_mark()
        elif op == _DUP:
            if not stack:
                raise underflow()
            push(stack[-1])
        elif op == _OBJ:
            items = pop_mark()
            if not items:
                raise underflow()
            cls = items[0]
            objects += 1
            count_call(cls)
            if watch:
                watch_call(cls, tuple(items[1:]), op_at, "OBJ")
            push(Obj("obj", cls, tuple(items[1:]), base + op_at))
        elif op == _NEWOBJ_EX:
            if len(stack) < 3:
                raise underflow()
            kwargs = stack.pop()
            args = stack.pop()
            cls = stack[-1]
            objects += 1
            count_call(cls)
            if watch:
                watch_call(cls, (args, kwargs), op_at, "NEWOBJ_EX")
            stack[-1] = Obj("newobj_ex", cls, args, base + op_at, kwargs)
        elif op == _PERSID:
            raw, pos = readline(pos)
            try:
                pid: Any = raw.decode("ascii")
            except UnicodeDecodeError:
                raise _fail(w, R_MALFORMED, f"PERSID at {base + op_at} is not ASCII", base + op_at) from None
            p = PersRef(pid, base + op_at)
            persids.append(p)
            push(p)
        elif op in (_EXT1, _EXT2, _EXT4):
            if op == _EXT1:
                need(1, pos)
                code = buf[pos]
                pos += 1
            elif op == _EXT2:
                need(2, pos)
                code = _U2.unpack_from(buf, pos)[0]
                pos += 2
            else:
                need(4, pos)
                code = i4(buf, pos)[0]
                pos += 4
            g = Global("?", "?", base + op_at, OPNAMES[op], resolved=False, note=f"extension code {code} (copyreg registry)")
            globals_.append(g)
            push(g)
        elif op == _NEXT_BUFFER:
            push(Opaque("out-of-band buffer"))
        elif op == _READONLY_BUFFER:
            if not stack:
                raise underflow()
        else:
            raise _fail(w, R_MALFORMED, f"unknown opcode 0x{op:02x} at {base + op_at}", base + op_at)


def first_op_ok(buf: Any, start: int = 0) -> bool:
    """True when the byte at ``start`` is a pickle opcode (the cheapest possible check)."""
    return start < len(buf) and buf[start] in VALID_OPCODES
