"""Static scanning of pickle-based model files: nothing is ever unpickled.

``scan_file(path)`` sniffs the file by content and reads every pickle stream a loader could run:

* raw pickles (protocols 0–5), and every further pickle that follows the first in the same file;
* legacy ``torch.save`` files (magic number, protocol, system info, the object, the storage keys, then
  raw storages);
* zips read the way PyTorch reads them (:mod:`registry.files.zipread`): every member whose bytes or
  name say pickle, not only ``data.pkl``; members that torch treats as raw storages are checked for
  hidden pickles; TorchScript archives are reported as code;
* numpy ``.npy`` object arrays (a pickle after the header) and ``.npz`` archives;
* containers inside containers (zip, 7z through ``py7zr``, tar, gzip), up to a depth limit.

Each stream is walked by the symbolic machine of :mod:`registry.files.pickle_vm`, which lists every
imported name (``GLOBAL``, ``INST``, ``STACK_GLOBAL`` with operands tracked through the memo, ``EXT*``)
with its byte offset; :mod:`registry.files.pickle_policy` judges each one. The file's verdict is the
worst of them: ``dangerous`` (a name known to run code, or one that cannot be resolved), then
``unscannable`` (a stream that does not parse, a member that is encrypted or cannot be read, a limit
reached: never "clean"), then ``suspicious`` (names outside the allowlist, TorchScript code, zip tricks),
else ``safe``.

For safe and suspicious PyTorch files the tensors are recovered symbolically
(:mod:`registry.files.torch_tensors`) with absolute byte offsets of their data in the file.
"""

from __future__ import annotations

import ast
import bz2
import contextlib
import dataclasses
import io
import lzma
import mmap
import os
import re
import struct
import tarfile
import time
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from registry.errors import FormatError, SafetensorsError
from registry.files import safetensors as st
from registry.files import zipread
from registry.files.pickle_policy import Safety, judge, judge_fetch
from registry.files.pickle_vm import (
    DEFAULT_LIMITS,
    VALID_OPCODES,
    Global,
    Limits,
    Obj,
    Walk,
    class_like,
    is_getattr,
    walk,
)
from registry.files.sniff import COMPRESSED_FORMATS, TORCH_MAGIC, _zip_kind, sniff_head
from registry.files.torch_tensors import STORAGE_DTYPES, Recovery, StorageLoc, itemsize, recover
from registry.findings import Finding, Severity, finding, rule

VERDICTS = ("safe", "suspicious", "dangerous", "unscannable")
#: rank of each verdict, worst last
VERDICT_RANK = {"safe": 0, "suspicious": 1, "unscannable": 2, "dangerous": 3}

R_DANGEROUS = rule(
    "pickle.dangerous-global",
    Severity.CRITICAL,
    "The pickle imports a name that runs code, touches files or the network",
    "Loading this file with pickle or torch.load (without weights_only=True) runs that code. Do not load it.",
)
R_SUSPICIOUS = rule(
    "pickle.suspicious-global",
    Severity.MEDIUM,
    "The pickle imports names outside the tensor-checkpoint allowlist",
    "Not proof of harm: custom classes, training callbacks and configs appear in real checkpoints. Loading "
    "it still imports and calls them; prefer torch.load(weights_only=True) or a safetensors conversion.",
)
R_UNSCANNABLE = rule(
    "pickle.unscannable",
    Severity.HIGH,
    "Part of the file cannot be scanned",
    "A stream that does not parse, an encrypted or unreadable member, or a limit reached: the scanner "
    "cannot tell whether that part runs code, so the file is not clean.",
)
R_EVASION = rule(
    "pickle.evasion",
    Severity.HIGH,
    "The file uses a trick that hides content from strict readers",
    "Zip members whose local and central names, flags or methods disagree, pickles hidden in storage "
    "members, or a pickle at the start of a file of another format: loaders read what scanners skip.",
)
R_TORCHSCRIPT = rule(
    "pickle.torchscript",
    Severity.HIGH,
    "TorchScript archive: it contains code",
    "torch.jit.load compiles and runs the archive's code; torch.load(weights_only=True) refuses TorchScript "
    "archives since PyTorch 2.6 (CVE-2025-32434).",
)
R_TRAILING = rule("pickle.trailing-data", Severity.LOW, "Bytes follow the last pickle or storage")
R_TENSORS_PARTIAL = rule(
    "pickle.tensors-partial",
    Severity.LOW,
    "Some tensors could not be located without unpickling",
    "The symbolic reader follows tensor rebuild calls and containers only; anything else is listed, not guessed.",
)

_PICKLE_NAME = re.compile(r"\.(pkl|pickle|pt|pth|bin|ckpt|joblib|dat|data)$", re.IGNORECASE)
_PICKLE_MAGIC = tuple(bytes([0x80, p]) for p in range(6))
#: calls in TorchScript source that reach files, the network or native code
_TS_CALLS = re.compile(
    r"\b(torch\.(?:save|load|from_file|hub\.load|ops\.load_library|classes\.load_library)"
    r"|ops\.aten\.(?:save|from_file|_load_for_mobile)|builtins\.(?:open|eval|exec))\s*\("
)
_CONTAINER_OR_PICKLE = frozenset(
    {"pickle", "pytorch-legacy", "pytorch-zip", "torchscript", "zip", "npz", "7z", "npy", "tar"} | COMPRESSED_FORMATS
)
_HEAD_LIMITS = Limits(max_ops=20_000, max_objects=20_000)
_LEGACY_ROLES = ("magic number", "protocol version", "system info", "object", "storage keys")


@dataclass(frozen=True)
class GlobalUse:
    """One imported name, where it appears and what it means."""

    module: str
    name: str
    #: byte offset of the opcode: in the file when ``absolute``, else inside ``member``
    offset: int
    #: the stream's place: None for the file itself, else the member path (``outer.7z!inner/data.pkl``)
    member: str | None
    opcode: str
    safety: Safety
    reason: str
    absolute: bool = True
    resolved: bool = True

    @property
    def qualname(self) -> str:
        return f"{self.module}.{self.name}"

    def where(self) -> str:
        if self.member and not self.absolute:
            return f"byte {self.offset:,} of member {self.member}"
        return f"byte {self.offset:,} of the file" + (f", in {self.member}" if self.member else "")

    def as_dict(self) -> dict[str, Any]:
        return {
            "module": self.module,
            "name": self.name,
            "offset": self.offset,
            "absolute": self.absolute,
            "member": self.member,
            "opcode": self.opcode,
            "safety": self.safety.label,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Stream:
    """One pickle stream that was walked."""

    member: str | None
    role: str
    offset: int
    absolute: bool
    protocol: int
    ops: int
    complete: bool
    error: str | None
    n_globals: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "member": self.member,
            "role": self.role,
            "offset": self.offset,
            "absolute": self.absolute,
            "protocol": self.protocol,
            "ops": self.ops,
            "complete": self.complete,
            "error": self.error,
            "globals": self.n_globals,
        }


@dataclass
class PickleScan:
    path: str
    format: str
    verdict: str
    reason: str
    globals: list[GlobalUse] = field(default_factory=list)
    streams: list[Stream] = field(default_factory=list)
    #: archive members looked at (containers only)
    members: list[str] = field(default_factory=list)
    unscannable: list[str] = field(default_factory=list)
    evasions: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    recovery: Recovery | None = None
    #: facts about the container (kind, archive prefix, byte order, members, TorchScript code files …)
    container: dict[str, Any] = field(default_factory=dict)
    elapsed_s: float = 0.0

    @property
    def deciding(self) -> list[GlobalUse]:
        """The globals that decided the verdict (the dangerous ones, else the suspicious ones)."""
        worst = max((g.safety for g in self.globals), default=Safety.SAFE)
        if worst == Safety.SAFE:
            return []
        out: dict[str, GlobalUse] = {}
        for g in self.globals:
            if g.safety == worst and g.qualname not in out:
                out[g.qualname] = g
        return list(out.values())

    def distinct_globals(self) -> list[GlobalUse]:
        """First occurrence of each imported name, in order of appearance."""
        out: dict[tuple[str, str, str | None], GlobalUse] = {}
        for g in self.globals:
            out.setdefault((g.module, g.name, g.member), g)
        return list(out.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "verdict": self.verdict,
            "reason": self.reason,
            "deciding": [g.as_dict() for g in self.deciding],
            "globals": [g.as_dict() for g in self.distinct_globals()],
            "streams": [s.as_dict() for s in self.streams],
            "members": self.members,
            "unscannable": self.unscannable,
            "evasions": self.evasions,
            "container": self.container,
            "tensors": len(self.recovery.tensors) if self.recovery else None,
        }


def find_appended_zip(buf: Any, start: int, end: int) -> int | None:
    """Where a zip archive appended to other content begins (its first local header), or None.

    Looks for the end-of-central-directory record in the last 64 KiB and checks that the central
    directory and first local header it points to are where it says, so random bytes do not count.
    """
    lo = max(start, end - (65535 + 22))
    tail = bytes(buf[lo:end])
    i = tail.rfind(b"PK\x05\x06")
    if i < 0 or len(tail) - i < 22:
        return None
    n_entries, cd_size, cd_offset = struct.unpack_from("<HII", tail, i + 10)
    eocd = lo + i
    base = eocd - cd_size - cd_offset
    if n_entries == 0 or base <= start or base + cd_offset < start:
        return None
    if bytes(buf[base + cd_offset : base + cd_offset + 4]) != b"PK\x01\x02":
        return None
    if bytes(buf[base : base + 4]) != b"PK\x03\x04":
        return None
    return base


def _npy_has_object(descr: Any) -> bool | None:
    """Whether an ``.npy`` header's dtype holds Python objects (numpy then unpickles the data): ``|O``,
    ``object``, a structured dtype with an object field … None when numpy cannot parse the descriptor."""
    from numpy.lib import format as npformat

    try:
        return bool(npformat.descr_to_dtype(descr).hasobject)
    except Exception:  # noqa: BLE001 - a hostile descriptor may raise anything; that is "not understood"
        return None


class _Bomb(Exception):
    """Decompressed content passed the size limit."""


def _decompressor(kind: str) -> Any:
    if kind == "gzip":
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if kind == "zlib":
        return zlib.decompressobj()
    if kind == "bzip2":
        return bz2.BZ2Decompressor()
    return lzma.LZMADecompressor(format=lzma.FORMAT_XZ if kind == "xz" else lzma.FORMAT_ALONE)


_MEMBER_MAGIC = {"gzip": b"\x1f\x8b", "bzip2": b"BZh", "xz": b"\xfd7zXZ\x00"}


def _inflate(reg: zipread.Region, kind: str, limit: int) -> tuple[bytes, int, str]:
    """Decompress ``reg`` chunk by chunk, never holding more than ``limit`` + 1 output bytes.

    gzip, bzip2 and xz readers go on to the next member after one ends (``gzip.open`` does), so every
    member is inflated; zlib and lzma readers stop at the end of the stream. Returns the content, the
    number of members, and a note on what follows or is missing ("" when nothing).
    """
    zl = kind in ("gzip", "zlib")
    magic = _MEMBER_MAGIC.get(kind)
    out = bytearray()
    d = _decompressor(kind)
    members = 1
    pos = reg.start

    def chunk() -> bytes:
        nonlocal pos
        b = bytes(reg.buf[pos : min(reg.end, pos + (1 << 20))])
        pos += len(b)
        return b

    buf = chunk()
    while True:
        piece = d.decompress(buf, limit + 1 - len(out))
        buf = d.unconsumed_tail if zl else b""
        out += piece
        if len(out) > limit:
            raise _Bomb()
        if d.eof:
            rest = bytes(d.unused_data) + buf
            if not rest and pos < reg.end:
                rest = chunk()
            left = len(rest) + reg.end - pos
            if magic is None or not rest.startswith(magic):
                if left and magic is not None and not rest.strip(b"\0") and pos >= reg.end:
                    left = 0  # null padding after the last member
                note = f"{left:,} bytes after the end of the {kind} stream" if left else ""
                return bytes(out), members, note
            d = _decompressor(kind)
            members += 1
            buf = rest
            continue
        if piece and (buf or not zl and not d.needs_input):
            continue  # output was capped: more to come from the same input
        if pos >= reg.end:
            return bytes(out), members, f"the {kind} stream ends before its end marker (truncated)"
        buf = buf + chunk()


@lru_cache(maxsize=4096)
def _judge(module: str, name: str, resolved: bool) -> tuple[Safety, str]:
    return judge(module, name, resolved)


def _fetch_target(v: Any, depth: int = 0) -> tuple[tuple[str, str] | None, bool]:
    """What ``getattr`` fetches from: an imported name, a class fetched from one (``Outer.Inner``, how
    protocol 2 pickles nested names), or an instance built by calling either."""
    if depth > 32:
        return None, False
    if isinstance(v, Global):
        return ((v.module, v.name), False) if v.resolved else (None, False)
    if isinstance(v, Obj) and is_getattr(v.func):
        args = v.args
        if isinstance(args, tuple) and len(args) == 2 and isinstance(args[1], str) and class_like(args[1]):
            inner, inst = _fetch_target(args[0], depth + 1)
            if inner is not None and not inst:
                return (inner[0], f"{inner[1]}.{args[1]}"), False
        return None, False
    if isinstance(v, Obj):
        inner, inst = _fetch_target(v.func, depth + 1)
        return (inner, True) if inner is not None and not inst else (None, False)
    return None, False


def _judge_getattr(g: Global, w: Walk) -> tuple[Safety, str]:
    """``builtins.getattr`` by what the stream does with it.

    Protocol-2 pickles spell a nested name (``Detect.forward``, ``_VariableFunctionsClass.tanh``, a nested
    class) as ``getattr(parent, name)``, and Python 3.12 pickles enum members that way. Such a fetch is
    suspicious when its target is an imported name (or an instance of one) that is not dangerous, its
    attribute is a plain name that runs nothing, and the fetched value is only stored, or, when the name
    is spelled like a class, used the way a class is. Anything else is dangerous.
    """
    uses = [f for f in w.attr_fetches if f.fn is g]
    misuse = w.attr_misuse.get(id(g), [])
    base = "builtin 'getattr' reaches any attribute"
    if misuse:
        return Safety.DANGEROUS, f"{base}: {misuse[0]}"
    if not uses:
        return Safety.DANGEROUS, f"{base}: imported but not called as a plain getattr(target, name)"
    worst: tuple[Safety, str] = (Safety.SAFE, "")
    for f in uses:
        args = f.args
        if not isinstance(args, tuple) or len(args) != 2:
            n = len(args) if isinstance(args, tuple) else "non-tuple"
            return Safety.DANGEROUS, f"{base}: called with {n} arguments at byte {f.offset:,}"
        target, inst = _fetch_target(args[0])
        verdict = judge_fetch(args[1], target, inst)
        if verdict[0] == Safety.DANGEROUS:
            return Safety.DANGEROUS, f"{base}: {verdict[1]} (at byte {f.offset:,})"
        if f.misuse and not class_like(str(args[1])):
            return Safety.DANGEROUS, f"{base}: fetches {args[1]!r} at byte {f.offset:,}, and {f.misuse[0]}"
        worst = max(worst, verdict, key=lambda v: v[0])
    return worst


def _importable(module: str, name: str) -> bool:
    """Whether ``find_class(module, name)`` could import anything: both are dotted Python identifiers."""
    return all(p.isidentifier() for p in module.split(".") + name.split("."))


class _RegionFile:
    """The seek/read interface :func:`registry.files.safetensors.read_header_bytes` needs, over a region."""

    def __init__(self, reg: zipread.Region) -> None:
        self.reg = reg
        self.pos = 0

    def seek(self, pos: int) -> None:
        self.pos = pos

    def read(self, n: int) -> bytes:
        a = self.reg.start + self.pos
        b = min(self.reg.end, a + n)
        self.pos += b - a
        return bytes(self.reg.buf[a:b])


def _st_header(reg: zipread.Region) -> st.SafetensorsHeader:
    n, raw = st.read_header_bytes(_RegionFile(reg), len(reg))  # type: ignore[arg-type]
    return st.parse_header(raw, n, len(reg))


class _Scanner:
    def __init__(self, path: str, limits: Limits, recover_tensors: bool) -> None:
        self.path = path
        self.lim = limits
        self.recover_tensors = recover_tensors
        self.globals: list[GlobalUse] = []
        self.streams: list[Stream] = []
        self.members: list[str] = []
        self.unscannable: list[str] = []
        self.evasions: list[str] = []
        self.trailing: list[str] = []
        self.torchscript_code: list[str] = []
        self.container: dict[str, Any] = {}
        self.recovery: Recovery | None = None
        self.total_bytes = 0
        self.top_format = "unknown"
        #: why a safetensors file is safe (set when nothing else was found)
        self.st_reason = ""
        #: the file's safetensors header when the caller parsed it already (the scan does)
        self.st_header: st.SafetensorsHeader | None = None

    # -- streams ----------------------------------------------------------------------------------
    def _record(self, w: Walk, where: str | None, role: str, absolute: bool) -> None:
        for g in w.globals:
            safety, reason = _judge(g.module, g.name, g.resolved)
            if g.resolved and is_getattr(g):
                safety, reason = _judge_getattr(g, w)
            if not g.resolved and g.note:
                reason = f"{reason}: {g.note}"
            self.globals.append(
                GlobalUse(g.module, g.name, g.offset, where, g.opcode, safety, reason, absolute, g.resolved)
            )
        self.streams.append(
            Stream(
                where,
                role,
                w.start,
                absolute,
                w.protocol,
                w.ops,
                w.complete,
                str(w.error) if w.error else None,
                len(w.globals),
            )
        )

    def walk_one(self, reg: zipread.Region, pos: int, where: str | None, role: str) -> Walk:
        w = walk(reg.buf, pos, reg.end, self.lim)
        self._record(w, where, role, reg.absolute)
        return w

    def _place(self, where: str | None) -> str:
        return where if where else "the file"

    def fail(self, where: str | None, text: str) -> None:
        msg = f"{self._place(where)}: {text}"
        if msg not in self.unscannable:
            self.unscannable.append(msg)

    def pickle_sequence(self, reg: zipread.Region, where: str | None, role: str) -> list[Walk]:
        """Walk the pickle at the start of ``reg`` and every complete pickle that follows it."""
        out: list[Walk] = []
        pos = reg.start
        while pos < reg.end and len(out) < self.lim.max_pickles:
            w = walk(reg.buf, pos, reg.end, self.lim)
            first = not out
            if first or w.complete or w.globals:
                self._record(w, where, role if first else f"{role} #{len(out) + 1}", reg.absolute)
            if not w.complete:
                err = str(w.error) if w.error else "stream ends early"
                if first or w.globals:
                    self.fail(where, f"pickle {'#' + str(len(out) + 1) + ' ' if not first else ''}does not parse: {err}")
                else:
                    self.trailing.append(f"{self._place(where)}: {reg.end - pos:,} bytes after the last pickle")
                return out
            out.append(w)
            pos = w.end
            if pos < reg.end and reg.buf[pos] not in VALID_OPCODES:
                self.trailing.append(f"{self._place(where)}: {reg.end - pos:,} bytes after the last pickle")
                break
        if len(out) >= self.lim.max_pickles and pos < reg.end:
            self.fail(where, f"more than {self.lim.max_pickles} consecutive pickles")
        return out

    # -- dispatch ----------------------------------------------------------------------------------
    def region(self, reg: zipread.Region, where: str | None, depth: int, name_hint: str | None = None,
               fh: Any = None) -> str:  # fmt: skip
        head = reg.head(4096)
        fmt = sniff_head(head, len(reg), reg.head).format
        if depth > self.lim.max_depth:
            self.fail(where, f"containers nested deeper than {self.lim.max_depth} levels")
            return fmt
        if fmt in ("zip", "pytorch-zip", "npz"):
            fmt = self.zip(reg, where, depth, fh)
        elif fmt == "7z":
            self.sevenzip(reg, where, depth, fh)
        elif fmt == "tar":
            self.tar(reg, where, depth, fh)
        elif fmt in COMPRESSED_FORMATS:
            self.stream(reg, where, depth, fmt)
        elif fmt == "torchscript-mobile":
            self.container.setdefault("kind", "torchscript-mobile")
            self.torchscript_code.append(self._place(where))
        elif fmt == "npy":
            self.npy(reg, where)
        elif fmt == "pytorch-legacy":
            self.legacy(reg, where)
        elif fmt == "pickle":
            self.pickle_sequence(reg, where, "pickle")
        elif fmt == "safetensors":
            self.safetensors(reg, where, depth, fh)
        elif name_hint is not None and _PICKLE_NAME.search(name_hint) and fmt not in ("safetensors", "gguf", "empty"):
            # a loader would unpickle this member by its name: it must parse
            self.pickle_sequence(reg, where, "pickle")
            fmt = "pickle"
        else:
            self.polyglot(reg, where, fmt)
            self.appended_zip(reg, where, depth, fmt, fh)
        return fmt

    # -- safetensors ---------------------------------------------------------------------------------
    def safetensors(self, reg: zipread.Region, where: str | None, depth: int, fh: Any) -> None:
        """A safetensors file: code can hide only where its structure does not account for the bytes.

        When the header parses (UTF-8, one JSON object, inside the file), the first ``8 + N`` bytes are the
        length prefix and the header: the prefix's low bytes may spell a pickle opcode (``\\x84`` is EXT4,
        ``\\x80`` PROTO), which is an accident of the number, not a pickle. They count only when a pickle
        machine started at byte 0 gets through them and imports a real name (a crafted polyglot). Gaps between
        tensors, bytes after the last tensor, and a zip archive whose directory ends the file are scanned as
        content of their own. When the header does not parse, nothing accounts for the first bytes: they are
        checked as a pickle like any unknown content.
        """
        try:
            given = self.st_header if depth == 0 and reg.start == 0 and reg.absolute else None
            header = given if given is not None and given.file_size == len(reg) else _st_header(reg)
        except SafetensorsError as e:
            if depth == 0:
                self.container.update({"kind": "safetensors", "header": f"does not parse: {e}"})
            self.polyglot(reg, where, "safetensors")
            self.appended_zip(reg, where, depth, "safetensors", fh)
            return
        regions: list[tuple[int, int, str]] = []
        for f in header.findings:
            ev = f.evidence
            if f.rule_id == st.R_GAP.id:
                a, b = header.data_start + int(ev["gap_begin"]), header.data_start + int(ev["gap_end"])
                regions.append((a, b, f"unused bytes {a:,}–{b:,} before tensor {ev.get('tensor')!r}"))
            elif f.rule_id == st.R_TRAILING.id:
                a = int(ev["data_end"])
                regions.append((a, len(reg), f"{len(reg) - a:,} bytes after the last tensor"))
        unaccounted = sum(b - a for a, b, _ in regions)
        if depth == 0:
            self.container.update(
                {"kind": "safetensors", "header_len": header.header_len, "tensors": len(header.tensors),
                 "unaccounted_bytes": unaccounted}  # fmt: skip
            )
        self._prefix_pickle(reg, where, header)
        scanned_zip: list[tuple[int, int]] = []
        for a, b, label in regions:
            sub = zipread.Region(reg.buf, reg.start + a, reg.start + b, reg.absolute)
            place = label if where is None else f"{where}: {label}"
            inner = sniff_head(sub.head(4096), len(sub), sub.head).format
            if inner in _CONTAINER_OR_PICKLE or inner == "torchscript-mobile":
                what = (f"a zip archive is appended there ({inner}); zipfile-based loaders open it"
                        if inner in ("zip", "pytorch-zip", "npz", "torchscript") else f"they hold {inner} content")  # fmt: skip
                self.evasions.append(f"{place}: the safetensors header does not account for them, and {what}")
                self.region(sub, place, depth + 1, fh=None)
                scanned_zip.append((a, b))
            else:
                self.polyglot(sub, place, "unaccounted")
        at = find_appended_zip(reg.buf, reg.start, reg.end)
        if at is not None and not any(reg.start + a <= at < reg.start + b for a, b in scanned_zip):
            self.appended_zip(reg, where, depth, "safetensors", fh)
        if not self.streams and not self.evasions and not self.unscannable:
            rest = (f"; the {unaccounted:,} bytes it does not account for hold no pickle or archive"
                    if unaccounted else "")  # fmt: skip
            self.st_reason = (
                f"safetensors: the length prefix, a {header.header_len:,}-byte JSON header and "
                f"{len(header.tensors):,} tensor(s) that loaders read as data{rest}"
            )

    def _prefix_pickle(self, reg: zipread.Region, where: str | None, header: st.SafetensorsHeader) -> None:
        """The pickle a loader would read from byte 0 of a valid safetensors file: evidence only when it
        imports a name an importer can find (a dotted identifier), which takes more than the 8-byte length
        prefix. Names a real unpickler cannot import are dropped: an ``EXT`` code (no extension is
        registered in a stock interpreter: the unpickler raises), or a ``GLOBAL`` line that runs into the
        JSON header and the tensor bytes."""
        if not len(reg) or reg.buf[reg.start] not in VALID_OPCODES:
            return
        w = walk(reg.buf, reg.start, reg.end, Limits(max_ops=100_000, max_objects=100_000))
        kept = [g for g in w.globals if g.resolved and _importable(g.module, g.name)]
        if not kept:
            return
        w = dataclasses.replace(w, globals=kept)
        self._record(w, where, "polyglot prefix", reg.absolute)
        self.evasions.append(
            f"{self._place(where)}: a pickle read from byte 0 runs through the {header.header_len:,}-byte "
            f"safetensors header and imports {', '.join(sorted({g.qualname for g in kept})[:5])} "
            "(a safetensors/pickle polyglot: Python's pickle loader, and torch's with weights_only off, would run it)"
        )

    def polyglot(self, reg: zipread.Region, where: str | None, fmt: str) -> None:
        """A file of another format whose first bytes are also a pickle that imports something.

        Content that is not a pickle by its format often starts with bytes that spell opcodes by accident (a
        safetensors length prefix whose low byte is 0x82-0x84 spells EXT1/2/4, also when the header is cut
        short). So here, as in :meth:`_prefix_pickle`, only an import a stock unpickler could perform counts:
        a dotted Python name; an ``EXT`` code names nothing unless the loading program registered extensions
        with ``copyreg``, and a pickle that cannot import cannot call. Content sniffed as a pickle, or named
        like one inside an archive, is read by :meth:`pickle_sequence`, where unresolved imports stay dangerous."""
        if len(reg) == 0 or reg.buf[reg.start] not in VALID_OPCODES:
            return
        w = walk(reg.buf, reg.start, reg.end, Limits(max_ops=100_000, max_objects=100_000))
        kept = [g for g in w.globals if g.resolved and _importable(g.module, g.name)]
        if len(kept) != len(w.globals):
            w = dataclasses.replace(w, globals=kept)
        if w.globals:
            self._record(w, where, "polyglot prefix", reg.absolute)
            self.evasions.append(
                f"{self._place(where)}: the first bytes of this {fmt} content are also a pickle that imports "
                f"{', '.join(sorted({g.qualname for g in w.globals})[:5])}"
            )
            if not w.complete:
                self.fail(where, f"pickle prefix does not parse: {w.error}")

    def appended_zip(self, reg: zipread.Region, where: str | None, depth: int, fmt: str, fh: Any) -> None:
        """A zip archive appended to content of another format (an image, a text, a safetensors file):
        ``zipfile`` opens such a file from its end, so a loader built on it reads the members."""
        at = find_appended_zip(reg.buf, reg.start, reg.end)
        if at is None:
            return
        self.evasions.append(
            f"{self._place(where)}: a zip archive is appended to this {fmt} content (from byte {at - reg.start:,}); "
            "zipfile-based loaders open it"
        )
        self.zip(reg, where, depth + 1, fh)

    # -- legacy torch.save ---------------------------------------------------------------------------
    def legacy(self, reg: zipread.Region, where: str | None) -> None:
        self.container.setdefault("kind", "pytorch-legacy")
        walks: list[Walk] = []
        pos = reg.start
        for role in _LEGACY_ROLES:
            if pos >= reg.end:
                self.fail(where, f"legacy torch file ends before its {role} pickle")
                return
            w = self.walk_one(reg, pos, where, f"legacy {role}")
            if not w.complete:
                self.fail(where, f"legacy {role} pickle does not parse: {w.error}")
                return
            walks.append(w)
            pos = w.end
        magic, proto = walks[0].result, walks[1].result
        if magic != TORCH_MAGIC:
            self.container["legacy_magic_ok"] = False
        if proto != 1001:
            self.container["legacy_protocol"] = proto if isinstance(proto, int) else repr(proto)
        keys = walks[4].result
        if not isinstance(keys, list) or not all(isinstance(k, (str, int)) for k in keys):
            self.fail(where, "legacy storage-key list is not a list of keys; storages cannot be located")
            return
        # lay out the raw storages that follow the pickles: u64 element count, then the bytes
        types: dict[str, tuple[str, int | None]] = {}
        for p in walks[3].persids:
            pid = p.pid
            if isinstance(pid, tuple) and len(pid) >= 5 and isinstance(pid[1], Global):
                types[str(pid[2])] = (pid[1].name, pid[4] if isinstance(pid[4], int) else None)
        locs: dict[str, StorageLoc] = {}
        problems: list[str] = []
        for k in keys:
            key = str(k)
            st = types.get(key)
            dt = STORAGE_DTYPES.get(st[0]) if st else None
            isz = itemsize(dt) if dt else None
            if isz is None:
                problems.append(f"storage {key!r} has no known element size; later storages cannot be located")
                pos = -1
                break
            if pos + 8 > reg.end:
                problems.append(f"file ends before storage {key!r}")
                pos = -1
                break
            (numel,) = struct.unpack_from("<Q", reg.buf, pos)
            nbytes = numel * isz
            if pos + 8 + nbytes > reg.end:
                problems.append(f"storage {key!r} ({nbytes:,} bytes) runs past the end of the file")
                pos = -1
                break
            locs[key] = StorageLoc(key, pos + 8 if reg.absolute else None, nbytes, "" if reg.absolute else "inside a compressed container")
            pos += 8 + nbytes
        if pos >= 0 and pos < reg.end:
            self.trailing.append(f"{self._place(where)}: {reg.end - pos:,} bytes after the last storage")
            tail = zipread.Region(reg.buf, pos, reg.end, reg.absolute)
            self.polyglot(tail, where, "trailing data")
        if self.recover_tensors:
            rec = recover(walks[3].result, locs.get, self.lim)
            rec.problems[:0] = problems
            self.recovery = rec

    # -- zip -----------------------------------------------------------------------------------------
    def zip(self, reg: zipread.Region, where: str | None, depth: int, fh: Any) -> str:
        if fh is None or not reg.absolute or reg.start != 0:
            data = reg.tobytes()
            fh = io.BytesIO(data)
            zbuf: Any = data
            absolute = False
        else:
            zbuf = reg.buf
            absolute = True
        try:
            members, quirks = zipread.read_central_directory(fh, zbuf, self.lim.max_members)
        except FormatError as e:
            self.fail(where, str(e))
            return "zip"
        names = [m.name for m in members]
        kind = _zip_kind(names)
        sub = (lambda n: n) if where is None else (lambda n: f"{where}!{n}")
        if depth == 0:
            self.container.update({"kind": kind, "members": len(members)})
        for q in quirks:
            self.evasions.append(f"{sub(q.member)}: {q.message} ({q.kind})")
        pkl = [m for m in members if m.name.endswith("/data.pkl") and m.name.count("/") == 1]
        prefix = pkl[0].name[: -len("/data.pkl")] if pkl else None
        if depth == 0 and prefix is not None:
            self.container["prefix"] = prefix
        storage_re = re.compile(re.escape(prefix) + r"/data/[^/]+$") if prefix is not None else None
        by_name = {m.name: m for m in members}
        main_walk: Walk | None = None
        for m in members:
            path = sub(m.name)
            self.members.append(path)
            if m.name.endswith("/"):
                continue
            if m.problems:
                self.fail(path, "; ".join(m.problems))
                continue
            is_storage = bool(storage_re and storage_re.match(m.name))
            if "/code/" in m.name and kind == "torchscript":
                self.torchscript_code.append(path)
                self._torchscript_code(zbuf, m, path, absolute)
                continue
            head = zipread.member_head(zbuf, m, 4096)
            if m.encrypted:
                if head is not None and head.startswith(_PICKLE_MAGIC):
                    self.evasions.append(f"{path}: marked encrypted but holds a plaintext pickle (zip flag trick)")
                elif is_storage and m.stored:
                    self.evasions.append(f"{path}: storage member marked encrypted")
                    continue
                else:
                    self.fail(path, "member is encrypted")
                    continue
            if m.compress_type not in (zipread.STORED, zipread.DEFLATED, zipread.BZIP2):
                self.fail(path, f"member uses compression method {m.compress_type}, which cannot be read here")
                continue
            if head is None:
                self.fail(path, "member data cannot be read")
                continue
            if is_storage:
                # torch reads these as raw bytes; a pickle hidden here is evidence of intent
                if head.startswith(_PICKLE_MAGIC):
                    self._hidden_pickle(zbuf, m, path, absolute)
                continue
            is_main = m.name == f"{prefix}/data.pkl"
            sniffed = sniff_head(head, m.file_size).format
            plain = not (is_main or sniffed in _CONTAINER_OR_PICKLE or _PICKLE_NAME.search(m.name))
            # plain data (byteorder, version, text …): only a pickle prefix that imports something matters
            if plain and (not head or head[0] not in VALID_OPCODES or not walk(head, limits=_HEAD_LIMITS).globals):
                continue
            try:
                r = self._member_region(zbuf, m, absolute)
            except FormatError as e:
                self.fail(path, str(e))
                continue
            if m.stored and not m.encrypted and sniffed == "pickle" and m.crc != zlib.crc32(r.tobytes()):
                self.evasions.append(f"{path}: CRC-32 does not match the data (strict readers refuse it, torch does not)")
            if is_main:
                # torch unpickles data.pkl whatever its first bytes look like
                ws = self.pickle_sequence(r, path, "data.pkl")
                if ws:
                    main_walk = ws[0]
            else:
                self.region(r, path, depth + 1, name_hint=m.name)
        if kind == "torchscript" and depth == 0:
            self.container["torchscript_code_files"] = len(self.torchscript_code)
        if main_walk is not None and kind == "pytorch-zip" and depth == 0 and self.recover_tensors:
            order = by_name.get(f"{prefix}/byteorder")
            big = False
            if order is not None and order.stored and order.data_offset is not None and not order.problems:
                bo = bytes(zbuf[order.data_offset : order.data_offset + min(order.compress_size, 16)]).strip()
                self.container["byteorder"] = bo.decode("ascii", "replace")
                big = bo == b"big"

            def loc(key: str) -> StorageLoc | None:
                mm = by_name.get(f"{prefix}/data/{key}")
                if mm is None:
                    return None
                if mm.problems or mm.data_offset is None:
                    return StorageLoc(key, None, None, f"storage member unreadable: {'; '.join(mm.problems)}")
                if not mm.stored or mm.encrypted:
                    return StorageLoc(key, None, mm.file_size, "storage member is compressed or encrypted")
                if big:
                    return StorageLoc(key, mm.data_offset, mm.compress_size, "big-endian storage")
                return StorageLoc(key, mm.data_offset if absolute else None, mm.compress_size,
                                  "" if absolute else "inside another container")  # fmt: skip

            self.recovery = recover(main_walk.result, loc, self.lim)
        return kind

    def _member_region(self, zbuf: Any, m: zipread.Member, absolute: bool) -> zipread.Region:
        limit = min(self.lim.max_member_bytes, self.lim.max_total_bytes - self.total_bytes)
        r = zipread.member_bytes(zbuf, m, max(0, limit))
        if not m.stored:
            self.total_bytes += len(r)
        if m.stored and not absolute:
            return zipread.Region(r.buf, r.start, r.end, False)
        return r

    def _torchscript_code(self, zbuf: Any, m: zipread.Member, path: str, absolute: bool) -> None:
        """TorchScript source runs on ``torch.jit.load``; calls that touch files or load code are dangerous."""
        try:
            r = self._member_region(zbuf, m, absolute)
        except FormatError as e:
            self.fail(path, str(e))
            return
        text = r.head(8 << 20).decode("utf-8", "replace")
        for hit in _TS_CALLS.finditer(text):
            module, name = hit.group(1).rsplit(".", 1)
            safety, reason = _judge(module, name, True)
            if safety == Safety.SAFE:
                continue
            self.globals.append(
                GlobalUse(module, name, r.start + hit.start() if r.absolute else hit.start(), path, "CODE",
                          Safety.DANGEROUS, f"TorchScript code calls {module}.{name}: {reason}", r.absolute)  # fmt: skip
            )

    def _hidden_pickle(self, zbuf: Any, m: zipread.Member, path: str, absolute: bool) -> None:
        try:
            r = self._member_region(zbuf, m, absolute)
        except FormatError:
            return
        w = walk(r.buf, r.start, r.end, self.lim)
        if w.complete and w.globals:
            self._record(w, path, "hidden in storage", r.absolute)
            self.evasions.append(f"{path}: a storage member holds a complete pickle that imports names")

    # -- 7z, tar, gzip ---------------------------------------------------------------------------------
    def sevenzip(self, reg: zipread.Region, where: str | None, depth: int, fh: Any) -> None:
        try:
            import py7zr
            from py7zr.io import Py7zIO, WriterFactory
        except ImportError:
            self.fail(where, "7z archive: py7zr is not installed, so its members cannot be read")
            return
        keep = self.lim.max_member_bytes

        class Capped(Py7zIO):
            """Keeps the first ``keep`` bytes of a member and counts the rest."""

            def __init__(self) -> None:
                self.buf = bytearray()
                self.total = 0

            def write(self, s: bytes | bytearray) -> int:
                self.total += len(s)
                room = keep - len(self.buf)
                if room > 0:
                    self.buf += s[:room]
                return len(s)

            def read(self, size: int | None = None) -> bytes:
                return bytes(self.buf)

            def seek(self, offset: int, whence: int = 0) -> int:
                return 0

            def flush(self) -> None:
                return None

            def size(self) -> int:
                return self.total

        class Factory(WriterFactory):
            def __init__(self) -> None:
                self.products: dict[str, Capped] = {}

            def create(self, filename: str) -> Py7zIO:
                self.products[filename] = Capped()
                return self.products[filename]

        src = fh if (fh is not None and reg.absolute and reg.start == 0) else io.BytesIO(reg.tobytes())
        src.seek(0)
        budget = max(0, self.lim.max_total_bytes - self.total_bytes)
        factory = Factory()
        try:
            with py7zr.SevenZipFile(src, mode="r", max_extract_size=budget) as a:
                if a.needs_password():
                    self.fail(where, "7z archive is encrypted")
                    return
                infos = a.list()
                if len(infos) > self.lim.max_members:
                    self.fail(where, f"7z archive lists {len(infos):,} members")
                    return
                declared = sum(int(i.uncompressed or 0) for i in infos)
                if declared > budget:
                    self.fail(where, f"7z members total {declared:,} bytes uncompressed (limit {budget:,})")
                    return
                a.extractall(factory=factory)
        except Exception as e:  # noqa: BLE001 - py7zr raises many types; any failure is "unscannable"
            if type(e).__name__ == "PasswordRequired":
                self.fail(where, "7z archive is encrypted (password required)")
            else:
                self.fail(where, f"7z archive cannot be read: {type(e).__name__}: {str(e)[:200]}")
            return
        for name, product in factory.products.items():
            path = name if where is None else f"{where}!{name}"
            self.members.append(path)
            self.total_bytes += product.total
            if product.total > keep:
                self.fail(path, f"member is larger than {keep:,} bytes and was not read")
                continue
            data = bytes(product.buf)
            self.region(zipread.Region(data, 0, len(data), False), path, depth + 1, name_hint=name)

    def tar(self, reg: zipread.Region, where: str | None, depth: int, fh: Any) -> None:
        src = fh if (fh is not None and reg.absolute and reg.start == 0) else io.BytesIO(reg.tobytes())
        src.seek(0)
        absolute = src is fh
        try:
            with tarfile.open(fileobj=src, mode="r:") as tf:
                entries = []
                for i, ti in enumerate(tf):
                    if i >= self.lim.max_members:
                        self.fail(where, f"tar archive has more than {self.lim.max_members:,} members")
                        break
                    entries.append(ti)
        except (tarfile.TarError, OSError, EOFError, ValueError) as e:
            self.fail(where, f"tar archive cannot be read: {e}")
            return
        buf = reg.buf if absolute else src.getvalue()
        names = {ti.name for ti in entries}
        legacy = {"storages", "tensors", "pickle"} <= names
        if depth == 0:
            self.container.update({"kind": "pytorch-legacy-tar" if legacy else "tar", "members": len(entries)})
        for ti in entries:
            path = ti.name if where is None else f"{where}!{ti.name}"
            self.members.append(path)
            if not ti.isfile():
                continue
            if ti.offset_data + ti.size > len(buf):
                self.fail(path, "member runs past the end of the archive")
                continue
            r = zipread.Region(buf, ti.offset_data, ti.offset_data + ti.size, absolute)
            if legacy and ti.name == "storages":
                self._tar_records(r, path, "storages")
            elif legacy and ti.name == "tensors":
                self._tar_records(r, path, "tensors")
            elif legacy and ti.name == "pickle":
                self.pickle_sequence(r, path, "object")
            else:
                self.region(r, path, depth + 1, name_hint=ti.name)
        if legacy and self.recover_tensors and depth == 0:
            self.recovery = Recovery(problems=["legacy tar format (PyTorch < 0.4): tensors are not recovered"])

    def _tar_records(self, r: zipread.Region, where: str, what: str) -> None:
        """The ``storages``/``tensors`` members of the legacy tar format: a count, then per record a small
        pickle followed by raw bytes whose length the pickle (and a binary header) determines."""
        w = self.walk_one(r, r.start, where, f"{what} count")
        if not w.complete or not isinstance(w.result, int) or w.result < 0:
            self.fail(where, f"legacy {what} count does not parse")
            return
        pos = w.end
        for i in range(w.result):
            if pos >= r.end:
                self.fail(where, f"legacy {what} ends after {i} of {w.result} records")
                return
            rw = self.walk_one(r, pos, where, f"{what} record {i}")
            if not rw.complete:
                self.fail(where, f"legacy {what} record {i} does not parse: {rw.error}")
                return
            pos = rw.end
            res = rw.result
            if what == "storages":
                st = res[2] if isinstance(res, tuple) and len(res) == 3 else None
                dt = STORAGE_DTYPES.get(st.name) if isinstance(st, Global) else None
                isz = itemsize(dt) if dt else None
                if isz is None or pos + 8 > r.end:
                    self.fail(where, f"legacy storage record {i} has no known element size")
                    return
                (numel,) = struct.unpack_from("<Q", r.buf, pos)
                pos += 8 + numel * isz
            else:
                if pos + 8 > r.end:
                    self.fail(where, f"legacy tensor record {i} is truncated")
                    return
                (ndim,) = struct.unpack_from("<i", r.buf, pos)
                if ndim < 0 or ndim > 64:
                    self.fail(where, f"legacy tensor record {i} has {ndim} dimensions")
                    return
                pos += 8 + 16 * ndim + 8
            if pos > r.end:
                self.fail(where, f"legacy {what} record {i} runs past the end of the member")
                return

    def stream(self, reg: zipread.Region, where: str | None, depth: int, kind: str) -> None:
        """A compressed stream (gzip, zlib, bzip2, xz, lzma: what ``joblib`` and ``gzip.open`` read):
        inflated up to the size limits, every member of a multi-member stream, then scanned."""
        if kind in ("zstd", "lz4"):
            self.fail(where, f"{kind} stream: this scanner cannot decompress it, so its content is unknown")
            return
        limit = max(0, min(self.lim.max_member_bytes, self.lim.max_total_bytes - self.total_bytes))
        try:
            out, members, note = _inflate(reg, kind, limit)
        except _Bomb:
            self.fail(where, f"{kind} content is larger than {limit:,} bytes (bomb?)")
            return
        except (zlib.error, OSError, EOFError, ValueError, lzma.LZMAError) as e:
            self.fail(where, f"{kind} stream does not decompress: {e}")
            return
        if note:
            self.trailing.append(f"{self._place(where)}: {note}")
        self.total_bytes += len(out)
        inner = f"{where or kind}!content"
        self.members.append(inner)
        if depth == 0:
            self.container.update({"kind": kind, "compressed_members": members})
        self.region(zipread.Region(out, 0, len(out), False), inner, depth + 1, name_hint=None)

    # -- numpy ---------------------------------------------------------------------------------------
    def npy(self, reg: zipread.Region, where: str | None) -> None:
        head = reg.head(12)
        if len(head) < 10:
            self.fail(where, "npy header truncated")
            return
        major = head[6]
        if major == 1:
            (hl,) = struct.unpack_from("<H", head, 8)
            start = 10
        elif major in (2, 3) and len(head) >= 12:
            (hl,) = struct.unpack_from("<I", head, 8)
            start = 12
        else:
            self.fail(where, f"npy format version {major} is unknown")
            return
        if hl > 1 << 20 or reg.start + start + hl > reg.end:
            self.fail(where, f"npy header of {hl:,} bytes is too long or truncated")
            return
        text = bytes(reg.buf[reg.start + start : reg.start + start + hl]).decode("latin-1")
        try:
            hdr = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError) as e:
            self.fail(where, f"npy header is not a Python literal: {type(e).__name__}")
            return
        if not isinstance(hdr, dict) or "descr" not in hdr:
            self.fail(where, "npy header has no 'descr'")
            return
        self.container.setdefault("npy_descr", repr(hdr["descr"]))
        data = zipread.Region(reg.buf, reg.start + start + hl, reg.end, reg.absolute)
        has_object = _npy_has_object(hdr["descr"])
        if has_object is None:
            # numpy may still make sense of it; a pickle right after the header is what it would load
            if len(data) and data.buf[data.start] == 0x80:
                self.pickle_sequence(data, where, "npy data (dtype not understood)")
            return
        if has_object:
            if len(data) == 0:
                self.fail(where, "npy object array has no pickle")
                return
            self.pickle_sequence(data, where, "npy object array")

    # -- verdict -------------------------------------------------------------------------------------
    def result(self, fmt: str, elapsed: float) -> PickleScan:
        worst = max((g.safety for g in self.globals), default=Safety.SAFE)
        reason: str
        if worst == Safety.DANGEROUS:
            g = next(g for g in self.globals if g.safety == Safety.DANGEROUS)
            verdict, reason = "dangerous", f"imports {g.qualname} at {g.where()}: {g.reason}"
        elif self.unscannable:
            verdict, reason = "unscannable", self.unscannable[0]
        elif worst == Safety.SUSPICIOUS:
            names = sorted({g.qualname for g in self.globals if g.safety == Safety.SUSPICIOUS})
            more = f" and {len(names) - 5} more" if len(names) > 5 else ""
            verdict, reason = "suspicious", f"imports names outside the allowlist: {', '.join(names[:5])}{more}"
        elif self.torchscript_code or self.container.get("kind") == "torchscript":
            verdict, reason = "suspicious", "TorchScript archive: holds code that torch.jit.load runs"
            if self.container.get("kind") == "torchscript-mobile":
                reason = "TorchScript mobile module (flatbuffer): holds bytecode that torch.jit.load runs"
        elif self.evasions:
            verdict, reason = "suspicious", self.evasions[0]
        elif not self.streams:
            verdict, reason = "safe", self.st_reason or f"no pickle stream in this {fmt} content"
            header = self.container.get("header")
            if not self.st_reason and isinstance(header, str) and header.startswith("does not parse"):
                reason = (
                    f"no code found, but the file is damaged: its safetensors header {header}; "
                    "its first bytes import nothing a loader could run (safe means no code, not a usable file)"
                )
        else:
            n = len({g.qualname for g in self.globals})
            verdict, reason = "safe", f"every imported name ({n}) is on the tensor-checkpoint allowlist"
        scan = PickleScan(
            path=self.path,
            format=fmt,
            verdict=verdict,
            reason=reason,
            globals=self.globals,
            streams=self.streams,
            members=self.members,
            unscannable=self.unscannable,
            evasions=self.evasions,
            recovery=self.recovery if verdict in ("safe", "suspicious") else None,
            container=self.container,
            elapsed_s=elapsed,
        )
        scan.findings = _findings(scan, self)
        return scan


def _findings(scan: PickleScan, s: _Scanner) -> list[Finding]:
    out: list[Finding] = []
    seen: set[str] = set()
    for g in scan.globals:
        if g.safety != Safety.DANGEROUS or g.qualname in seen:
            continue
        seen.add(g.qualname)
        if len(seen) > 20:
            break
        out.append(
            finding(
                R_DANGEROUS.id,
                f"imports {g.qualname} ({g.opcode}) at {g.where()}: {g.reason}",
                module=g.module,
                name=g.name,
                offset=g.offset,
                member=g.member,
                opcode=g.opcode,
            )
        )
    sus = sorted({g.qualname for g in scan.globals if g.safety == Safety.SUSPICIOUS})
    if sus:
        more = f" and {len(sus) - 10} more" if len(sus) > 10 else ""
        out.append(
            finding(
                R_SUSPICIOUS.id,
                f"imports {len(sus)} name(s) outside the tensor-checkpoint allowlist: {', '.join(sus[:10])}{more}",
                names=sus[:50],
            )
        )
    for text in scan.unscannable[:10]:
        out.append(finding(R_UNSCANNABLE.id, text))
    for text in scan.evasions[:10]:
        out.append(finding(R_EVASION.id, text))
    if s.torchscript_code or scan.container.get("kind") == "torchscript":
        out.append(
            finding(
                R_TORCHSCRIPT.id,
                f"TorchScript archive with {len(s.torchscript_code)} code file(s); torch.jit.load runs them",
                code_files=s.torchscript_code[:20],
            )
        )
    for text in s.trailing[:5]:
        out.append(finding(R_TRAILING.id, text))
    rec = scan.recovery
    if rec is not None and (rec.problems or any(not t.readable for t in rec.tensors)):
        unreadable = [t for t in rec.tensors if not t.readable]
        parts = list(rec.problems[:5])
        if unreadable:
            ex = unreadable[0]
            parts.append(
                f"{len(unreadable)} tensor(s) have no dense bytes in the file (first: {ex.name!r}: "
                f"{ex.note or 'non-contiguous view'})"
            )
        out.append(finding(R_TENSORS_PARTIAL.id, "; ".join(parts), problems=rec.problems[:20]))
    return out


def scan_file(
    path: str | os.PathLike[str],
    limits: Limits = DEFAULT_LIMITS,
    recover_tensors: bool = True,
    safetensors_header: st.SafetensorsHeader | None = None,
    data: bytes | None = None,
) -> PickleScan:
    """Scan a file statically. Never raises for bad content: problems become the verdict and findings.

    ``safetensors_header``: the file's header, when the caller has parsed it already (not parsed twice).
    ``data``: the whole file's bytes, when the caller holds them already (a small file): scanned as
    the file itself would be (absolute offsets), without opening it again.
    """
    t0 = time.perf_counter()
    p = os.fspath(path)
    s = _Scanner(p, limits, recover_tensors)
    s.st_header = safetensors_header
    if data is not None:
        if not data:
            return s.result("empty", time.perf_counter() - t0)
        fmt = _guarded(s, zipread.Region(data, 0, len(data), True), io.BytesIO(data))
        return s.result(fmt, time.perf_counter() - t0)
    with open(p, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            return s.result("empty", time.perf_counter() - t0)
        mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            fmt = _guarded(s, zipread.Region(mm, 0, size, True), fh)
            res = s.result(fmt, time.perf_counter() - t0)
        finally:
            with contextlib.suppress(BufferError):  # a view escaped: the OS frees the map at exit
                mm.close()
    return res


def scan_bytes(
    data: bytes,
    name: str = "<bytes>",
    limits: Limits = DEFAULT_LIMITS,
    recover_tensors: bool = True,
) -> PickleScan:
    """Scan bytes held in memory (offsets are offsets in ``data``)."""
    t0 = time.perf_counter()
    s = _Scanner(name, limits, recover_tensors)
    if not data:
        return s.result("empty", time.perf_counter() - t0)
    fmt = _guarded(s, zipread.Region(data, 0, len(data), True), io.BytesIO(data))
    return s.result(fmt, time.perf_counter() - t0)


#: prefix of the reason recorded when the scanner itself fails (the fuzz run treats it as a bug)
SCANNER_ERROR = "scanner error"


def _guarded(s: _Scanner, reg: zipread.Region, fh: Any) -> str:
    """Run the scan; an unexpected failure of the scanner is recorded as unscannable, never raised."""
    try:
        return s.region(reg, None, 0, fh=fh)
    except MemoryError:
        s.fail(None, "ran out of memory while scanning")
    except Exception as e:  # noqa: BLE001 - bad input must end in a verdict, not a crash of the run
        s.fail(None, f"{SCANNER_ERROR}: {type(e).__name__}: {e}")
    return "unknown"
