"""Recover the tensors of a PyTorch checkpoint from its symbolic pickle, without unpickling it.

The pickle machine (:mod:`registry.files.pickle_vm`) leaves placeholders where a real unpickler would
have called functions. This module reads the placeholders that build tensors —
``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, …)`` and its relatives, with storages
named by persistent ids ``('storage', FloatStorage, key, location, numel[, view])`` — and turns them into
:class:`TensorDescriptor` s: name (the path of dict keys and list indices to the tensor), dtype, shape,
stride, storage key and offset, and the absolute byte offset of the data in the file when the storage is
stored uncompressed (zip) or laid out after the pickles (legacy format).

It understands state dicts (dicts and ``OrderedDict``), lists (whose tensors are named by their index, ``0``,
``1`` …, as in ``lora_diffusion``'s ``.pt`` files, plain lists of LoRA factors), ``nn.Parameter`` wrappers, tensor
subclasses rebuilt by ``_rebuild_from_type_v2`` and pickled ``nn.Module`` objects (whose ``_parameters``,
``_buffers`` and ``_modules`` give state-dict names). Anything else that builds a tensor is reported as
beyond the reader, never guessed at and never executed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from registry.files.pickle_vm import DEFAULT_LIMITS, Global, Limits, Obj, PDict, PersRef, PSet
from registry.files.safetensors import DTYPE_BITS, TensorInfo

#: legacy storage class → safetensors dtype
STORAGE_DTYPES: dict[str, str] = {
    "DoubleStorage": "F64",
    "FloatStorage": "F32",
    "HalfStorage": "F16",
    "BFloat16Storage": "BF16",
    "LongStorage": "I64",
    "IntStorage": "I32",
    "ShortStorage": "I16",
    "CharStorage": "I8",
    "ByteStorage": "U8",
    "BoolStorage": "BOOL",
    "ComplexFloatStorage": "C64",
    "ComplexDoubleStorage": "C128",
    "UntypedStorage": "U8",
}

#: torch dtype attribute → safetensors dtype
TORCH_DTYPES: dict[str, str] = {
    "float64": "F64", "double": "F64", "float32": "F32", "float": "F32", "float16": "F16", "half": "F16",
    "bfloat16": "BF16", "int64": "I64", "long": "I64", "int32": "I32", "int": "I32", "int16": "I16",
    "short": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL", "uint16": "U16", "uint32": "U32",
    "uint64": "U64", "complex64": "C64", "cfloat": "C64", "complex128": "C128", "cdouble": "C128",
    "float8_e4m3fn": "F8_E4M3", "float8_e5m2": "F8_E5M2", "float8_e4m3fnuz": "F8_E4M3FNUZ",
    "float8_e5m2fnuz": "F8_E5M2FNUZ", "float8_e8m0fnu": "F8_E8M0",
}  # fmt: skip

_ITEMSIZE_EXTRA = {"C128": 16}

_TENSOR_BUILDERS = {"_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3"}
_PARAM_WRAPPERS = {"_rebuild_parameter", "_rebuild_parameter_with_state"}
_UNSUPPORTED_BUILDERS = {
    "_rebuild_qtensor", "_rebuild_sparse_tensor", "_rebuild_meta_tensor_no_storage", "_rebuild_wrapper_subclass",
    "_rebuild_device_tensor_from_numpy", "_rebuild_device_tensor_from_cpu_tensor", "_rebuild_nested_tensor",
    "_rebuild_xla_tensor", "_rebuild_mlc_tensor",
}  # fmt: skip
_MODULE_SLOTS = ("_parameters", "_buffers", "_modules")


def itemsize(dtype: str) -> int | None:
    if dtype in _ITEMSIZE_EXTRA:
        return _ITEMSIZE_EXTRA[dtype]
    bits = DTYPE_BITS.get(dtype)
    return bits // 8 if bits and bits % 8 == 0 else None


@dataclass(frozen=True)
class StorageLoc:
    """Where a storage's bytes are: absolute offset (None when not addressable) and bytes available."""

    key: str
    file_offset: int | None
    nbytes: int | None
    note: str = ""


@dataclass(frozen=True)
class TensorDescriptor:
    name: str
    dtype: str
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    storage_key: str
    #: in elements of ``dtype``, as torch records it
    storage_offset: int
    storage_dtype: str
    #: absolute offset of the tensor's first element in the file (None when it has none)
    file_offset: int | None
    nbytes: int
    contiguous: bool
    builder: str
    #: why the tensor's bytes cannot be read as a dense row-major array ("" when they can)
    note: str = ""

    @property
    def readable(self) -> bool:
        return self.file_offset is not None and self.contiguous and not self.note and self.dtype in DTYPE_BITS

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    def to_tensor_info(self) -> TensorInfo:
        """The safetensors-compatible entry (``begin``/``end``/``offset`` are absolute file offsets)."""
        if self.file_offset is None:
            raise ValueError(f"tensor {self.name!r} has no byte offset in the file")
        return TensorInfo(self.name, self.dtype, self.shape, self.file_offset, self.file_offset + self.nbytes, self.file_offset)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dtype": self.dtype,
            "shape": list(self.shape),
            "stride": list(self.stride),
            "storage_key": self.storage_key,
            "storage_offset": self.storage_offset,
            "file_offset": self.file_offset,
            "nbytes": self.nbytes,
            "contiguous": self.contiguous,
            "note": self.note,
        }


@dataclass
class Recovery:
    #: tensors of the model (the ``state_dict`` entry when the checkpoint has one), names relative to it
    tensors: list[TensorDescriptor] = field(default_factory=list)
    #: the key the model's tensors were found under (``state_dict``), or None for the whole structure
    state_dict_key: str | None = None
    #: tensors outside the state dict (optimizer state …), full names
    other: list[TensorDescriptor] = field(default_factory=list)
    #: what the reader could not follow (each a sentence)
    problems: list[str] = field(default_factory=list)
    #: the container at the root: dict, OrderedDict, list, module, tensor …
    root: str = ""
    #: top-level entries of a dict root whose values are plain scalars (``epoch``, ``global_step``, ``name`` …)
    scalars: dict[str, str] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return not self.problems

    def tensor_infos(self) -> list[TensorInfo]:
        return [t.to_tensor_info() for t in self.tensors if t.readable]


def _gname(v: Any) -> str | None:
    return v.qualname if isinstance(v, Global) else None


def _ints(v: Any) -> tuple[int, ...] | None:
    if isinstance(v, Obj) and _gname(v.func) == "torch.Size" and isinstance(v.args, tuple) and v.args:
        v = v.args[0]
    if isinstance(v, (tuple, list)) and all(isinstance(x, int) and not isinstance(x, bool) for x in v):
        return tuple(v)
    return None


def contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    out = [1] * len(shape)
    acc = 1
    for i in range(len(shape) - 1, -1, -1):
        out[i] = acc
        acc *= max(shape[i], 1)
    return tuple(out)


def is_contiguous(shape: tuple[int, ...], stride: tuple[int, ...]) -> bool:
    if len(shape) != len(stride):
        return False
    if any(d == 0 for d in shape):
        return True
    expect = contiguous_strides(shape)
    return all(d == 1 or s == e for d, s, e in zip(shape, stride, expect, strict=False))


def _pid_fields(p: PersRef) -> tuple[str, str, str, int | None, Any] | str:
    """(storage type name, key, location, numel, view) from a torch persistent id, or a problem string."""
    pid = p.pid
    if not isinstance(pid, tuple) or len(pid) < 5:
        return f"persistent id {pid!r} is not a torch storage reference"
    tag = pid[0].decode("ascii", "replace") if isinstance(pid[0], bytes) else pid[0]
    if tag != "storage":
        return f"persistent id of type {tag!r} is not a storage"
    st = pid[1]
    if not isinstance(st, Global):
        return "storage type in the persistent id is not a global"
    key = pid[2]
    if isinstance(key, int) and not isinstance(key, bool):
        key = str(key)
    if not isinstance(key, str):
        return f"storage key {key!r} is not a string"
    numel = pid[4] if isinstance(pid[4], int) and not isinstance(pid[4], bool) else None
    view = pid[5] if len(pid) > 5 else None
    loc = pid[3] if isinstance(pid[3], str) else str(pid[3])
    return st.name, key, loc, numel, view


class _Reader:
    def __init__(self, storages: Callable[[str], StorageLoc | None], limits: Limits) -> None:
        self.storages = storages
        self.limits = limits
        self.problems: list[str] = []
        self.found: list[tuple[tuple[str, ...], TensorDescriptor]] = []
        self._problem_kinds: dict[str, int] = {}

    def problem(self, kind: str, text: str) -> None:
        n = self._problem_kinds.get(kind, 0)
        self._problem_kinds[kind] = n + 1
        if n < 5:
            self.problems.append(text)
        elif n == 5:
            self.problems.append(f"(further problems of the kind {kind!r} not listed)")

    # -- tensor descriptors -------------------------------------------------------------------------
    def describe(self, name: str, obj: Obj, builder: str) -> TensorDescriptor | None:
        args = obj.args
        if not isinstance(args, tuple) or len(args) < 4:
            self.problem("args", f"tensor {name!r}: {builder} called with unexpected arguments")
            return None
        storage, soff, size, stride = args[0], args[1], _ints(args[2]), _ints(args[3])
        if not isinstance(storage, PersRef):
            self.problem("storage", f"tensor {name!r}: storage is not a persistent reference")
            return None
        f = _pid_fields(storage)
        if isinstance(f, str):
            self.problem("storage", f"tensor {name!r}: {f}")
            return None
        st_name, key, _loc, numel, view = f
        if size is None or stride is None or not isinstance(soff, int) or isinstance(soff, bool):
            self.problem("args", f"tensor {name!r}: size, stride or offset is not a list of integers")
            return None
        sdtype = STORAGE_DTYPES.get(st_name)
        dtype = sdtype
        if builder == "_rebuild_tensor_v3":
            dt = args[6] if len(args) > 6 else None
            dtype = TORCH_DTYPES.get(dt.name) if isinstance(dt, Global) and dt.module == "torch" else None
        if sdtype is None or dtype is None:
            self.problem("dtype", f"tensor {name!r}: storage type {st_name!r} is not a plain dense dtype")
            return None
        isz = itemsize(dtype)
        ssz = itemsize(sdtype)
        if isz is None or ssz is None:
            self.problem("dtype", f"tensor {name!r}: dtype {dtype} has no whole-byte element size")
            return None
        numel_t = 1
        for d in size:
            numel_t *= d
        nbytes = numel_t * isz
        contiguous = is_contiguous(size, stride)
        loc = self.storages(key)
        note = ""
        base: int | None = None
        avail: int | None = None
        if loc is None:
            note = f"storage {key!r} not found in the file"
        else:
            base, avail, note = loc.file_offset, loc.nbytes, loc.note
        # legacy view: (view_key, offset_in_elements, view_numel)
        if isinstance(view, tuple) and len(view) == 3 and isinstance(view[1], int) and isinstance(view[2], int):
            if base is not None:
                base += view[1] * ssz
            avail = view[2] * ssz
        elif numel is not None and avail is not None and numel * ssz > avail and not note:
            note = f"storage {key!r} declares {numel * ssz:,} bytes but the file holds {avail:,}"
        if numel is not None and avail is None:
            avail = numel * ssz
        extent = 0
        if numel_t:
            extent = (soff + 1 + sum((d - 1) * s for d, s in zip(size, stride, strict=False))) * isz
        if soff < 0 or any(s < 0 for s in stride):
            note = note or "negative offset or stride"
        elif avail is not None and extent > avail and not note:
            note = f"tensor reaches byte {extent:,} of storage {key!r}, which has {avail:,}"
        fo = base + soff * isz if base is not None else None
        return TensorDescriptor(
            name=name,
            dtype=dtype,
            shape=size,
            stride=stride,
            storage_key=key,
            storage_offset=soff,
            storage_dtype=sdtype,
            file_offset=fo,
            nbytes=nbytes,
            contiguous=contiguous,
            builder=f"torch._utils.{builder}",
            note=note,
        )

    # -- the structure walk --------------------------------------------------------------------------
    def walk(self, root: Any) -> None:
        budget = self.limits.max_walk_nodes
        todo: list[tuple[Any, tuple[str, ...], int]] = [(root, (), 0)]
        while todo:
            v, path, depth = todo.pop()
            budget -= 1
            if budget < 0:
                self.problem("budget", f"structure too large to name (more than {self.limits.max_walk_nodes:,} nodes)")
                return
            if depth > 256:
                self.problem("depth", f"structure nested deeper than 256 levels at {'.'.join(path)!r}")
                continue
            children: list[tuple[str | None, Any]] = []
            if isinstance(v, Obj):
                g = v.func if isinstance(v.func, Global) else None
                mod, nm = (g.module, g.name) if g else ("", "")
                label = ".".join(path) or "<root>"
                if mod == "torch._utils" and nm in _TENSOR_BUILDERS:
                    d = self.describe(".".join(path) or "tensor", v, nm)
                    if d is not None:
                        self.found.append((path, d))
                    continue
                if mod == "torch._utils" and nm in _PARAM_WRAPPERS and isinstance(v.args, tuple) and v.args:
                    todo.append((v.args[0], path, depth + 1))
                    continue
                if mod == "torch.nn.parameter" and nm == "Parameter" and isinstance(v.args, tuple) and v.args:
                    todo.append((v.args[0], path, depth + 1))
                    continue
                if mod == "torch._tensor" and nm == "_rebuild_from_type_v2":
                    a = v.args
                    if isinstance(a, tuple) and len(a) >= 3 and isinstance(a[2], tuple):
                        todo.append((Obj("reduce", a[0], a[2], v.offset), path, depth + 1))
                    else:
                        self.problem("args", f"{label}: _rebuild_from_type_v2 with unexpected arguments")
                    continue
                if mod == "torch._utils" and nm in _UNSUPPORTED_BUILDERS:
                    self.problem("builder", f"tensor {label!r} is built by {mod}.{nm}, which the reader does not follow")
                    continue
                if mod == "collections" and nm in ("OrderedDict", "Counter", "defaultdict"):
                    a = v.args
                    if isinstance(a, tuple) and a:
                        first = a[0]
                        if isinstance(first, PDict):
                            children.extend(first.items)
                        elif isinstance(first, list):
                            children.extend(p for p in first if isinstance(p, tuple) and len(p) == 2)
                    children.extend(v.items or [])
                else:
                    # an arbitrary object: its state (attributes), items and appended values
                    st = v.state
                    if isinstance(st, tuple) and len(st) == 2 and isinstance(st[0], (PDict, type(None))):
                        st = st[0]  # (dict_state, slots_state)
                    if isinstance(st, PDict):
                        for k, val in st.items:
                            if k in _MODULE_SLOTS:
                                if isinstance(val, (PDict, Obj)):
                                    todo.append((val, path, depth + 1))
                            else:
                                children.append((k, val))
                    children.extend(v.items or [])
                    children.extend(enumerate(v.appends or []))  # type: ignore[arg-type]
            elif isinstance(v, PDict):
                children = list(v.items)
            elif isinstance(v, (list, tuple)):
                children = list(enumerate(v))  # type: ignore[arg-type]
            elif isinstance(v, (PersRef, PSet)):
                continue
            else:
                continue
            # dict semantics: a repeated key keeps its first position and its last value
            seen: dict[str, int] = {}
            named: list[tuple[str, Any]] = []
            for k, val in children:
                ks = _key(k)
                if ks in seen:
                    named[seen[ks]] = (ks, val)
                else:
                    seen[ks] = len(named)
                    named.append((ks, val))
            for ks, val in reversed(named):
                if _may_hold_tensor(val):
                    todo.append((val, path + (ks,), depth + 1))


def _key(k: Any) -> str:
    if isinstance(k, str):
        return k
    if isinstance(k, bool) or k is None:
        return str(k)
    if isinstance(k, (int, float)):
        return str(k)
    if isinstance(k, bytes):
        return k.decode("utf-8", "replace")
    return f"<{type(k).__name__}>"


def _may_hold_tensor(v: Any) -> bool:
    return isinstance(v, (Obj, PDict, list, tuple))


def recover(
    root: Any,
    storages: Callable[[str], StorageLoc | None],
    limits: Limits = DEFAULT_LIMITS,
) -> Recovery:
    """Find every tensor in a symbolic pickle value and locate its bytes through ``storages``."""
    r = _Reader(storages, limits)
    r.walk(root)
    rec = Recovery(problems=r.problems, root=_root_kind(root), scalars=_scalars(root))
    sd_paths = [p for p, _ in r.found if p and p[0] == "state_dict"]
    if sd_paths and _is_mapping(root):
        rec.state_dict_key = "state_dict"
        for p, d in r.found:
            if p and p[0] == "state_dict":
                rec.tensors.append(_renamed(d, ".".join(p[1:]) or "tensor"))
            else:
                rec.other.append(d)
    else:
        rec.tensors = [d for _, d in r.found]
    return rec


def _scalars(root: Any) -> dict[str, str]:
    if isinstance(root, PDict):
        items = root.items
    elif _is_mapping(root):
        items = root.items or []
    else:
        return {}
    out: dict[str, str] = {}
    for k, v in items[:1000]:
        if isinstance(k, str) and isinstance(v, (str, int, float)) and len(out) < 100:
            text = str(v)
            if len(text) <= 4096:
                out[k] = text
    return out


def _renamed(d: TensorDescriptor, name: str) -> TensorDescriptor:
    from dataclasses import replace

    return replace(d, name=name)


def _is_mapping(v: Any) -> bool:
    return isinstance(v, PDict) or (
        isinstance(v, Obj) and isinstance(v.func, Global) and v.func.qualname == "collections.OrderedDict"
    )


def _root_kind(v: Any) -> str:
    if isinstance(v, PDict):
        return "dict"
    if isinstance(v, list):
        return "list"
    if isinstance(v, tuple):
        return "tuple"
    if isinstance(v, Obj) and isinstance(v.func, Global):
        q = v.func.qualname
        if q == "collections.OrderedDict":
            return "OrderedDict"
        if v.func.module == "torch._utils" and v.func.name in _TENSOR_BUILDERS | _PARAM_WRAPPERS:
            return "tensor"
        return q
    return type(v).__name__
