"""Benign files written by real PyTorch (and diffusers / transformers / timm when present), for the scanner.

Everything here only WRITES files (``torch.save``, ``torch.jit.save``, ``save_pretrained``, ``numpy.save``);
nothing is ever loaded back. The expected tensors of plain state dicts are computed from the in-memory
tensors before saving, so a test can compare what the scanner recovers with what was written.

Import this module only where torch is importable (``pytest.importorskip("torch")``).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import datetime
import enum
import functools
import io
import pathlib
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

#: torch dtype → safetensors spelling (what the scanner reports)
ST_DTYPE: dict[torch.dtype, str] = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
    torch.bool: "BOOL", torch.complex64: "C64", torch.complex128: "C128",
}  # fmt: skip
for _n, _s in [("uint16", "U16"), ("uint32", "U32"), ("uint64", "U64"), ("float8_e4m3fn", "F8_E4M3"),
               ("float8_e5m2", "F8_E5M2"), ("float8_e4m3fnuz", "F8_E4M3FNUZ"), ("float8_e5m2fnuz", "F8_E5M2FNUZ"),
               ("float8_e8m0fnu", "F8_E8M0")]:  # fmt: skip
    if hasattr(torch, _n):
        ST_DTYPE[getattr(torch, _n)] = _s

Expected = dict[str, tuple[str, tuple[int, ...], bytes]]


@dataclass
class Case:
    """One benign file: where it is, what it is, and what the scanner must say about it."""

    name: str
    path: Path
    what: str
    #: verdicts that are right for it (never "dangerous" or "unscannable")
    allowed: frozenset[str]
    #: tensors (name → dtype, shape, bytes) that must be recovered, when the file is a plain state dict
    expect: Expected | None = None
    #: names that must be listed as recovered (shape/dtype only), e.g. non-contiguous views
    expect_shapes: dict[str, tuple[str, tuple[int, ...]]] = field(default_factory=dict)


SAFE = frozenset({"safe"})
NOT_DANGEROUS = frozenset({"safe", "suspicious"})


def tensor_bytes(t: torch.Tensor) -> bytes:
    """The row-major bytes of ``t`` as torch writes a contiguous tensor (little-endian)."""
    flat = t.detach().clone().contiguous().reshape(-1)
    return bytes(flat.view(torch.uint8).numpy().tobytes())


def expected(sd: dict[str, torch.Tensor], prefix: str = "") -> Expected:
    return {prefix + k: (ST_DTYPE[v.dtype], tuple(v.shape), tensor_bytes(v)) for k, v in sd.items()}


# -- classes a real checkpoint pickles (module-level so pickle can name them) ----------------------------


class Mode(enum.Enum):
    TRAIN = "train"
    EVAL = "eval"


@dataclasses.dataclass
class TrainConfig:
    lr: float = 1e-4
    batch_size: int = 4
    resolution: tuple[int, int] = (512, 512)
    mode: Mode = Mode.TRAIN


class Block(nn.Module):
    """A transformer-ish block holding callables as attributes, as timm / older repos do."""

    def __init__(self, dim: int = 8) -> None:
        super().__init__()
        norm = functools.partial(nn.LayerNorm, eps=1e-6)
        self.norm = norm(dim)
        self.norm_layer = norm  # a functools.partial kept as an attribute
        self.fc = nn.Linear(dim, dim)
        self.act = nn.functional.gelu  # a torch function kept as an attribute
        self.act2 = torch.tanh
        self.drop = nn.Dropout(0.1)
        self.register_buffer("pos", torch.arange(dim, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop(self.act(self.fc(self.norm(x))))


class WithBoundMethod(nn.Module):
    """A module that keeps one of its own methods as an attribute (pickled as getattr(self, name))."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.fn = self.scale

    def scale(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.lin(x))


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.lin = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(torch.relu(self.bn(self.conv(x))).mean(dim=(2, 3)))


#: module names registered by :func:`_fake_module`, removed again when the files are written
_FAKED: list[str] = []


def _fake_module(modname: str, clsname: str, fields: dict[str, Any]) -> type:
    """A class importable as ``modname.clsname`` while the files are written (pickle looks it up by name),
    e.g. Lightning's ModelCheckpoint; :func:`build_benign` unregisters the modules afterwards."""
    parts = modname.split(".")
    for i in range(1, len(parts) + 1):
        name = ".".join(parts[:i])
        if name not in sys.modules:
            sys.modules[name] = types.ModuleType(name)
            _FAKED.append(name)
    cls = type(clsname, (), dict(fields))
    cls.__module__ = modname
    cls.__qualname__ = clsname
    setattr(sys.modules[modname], clsname, cls)
    return cls


# -- the cases -----------------------------------------------------------------------------------------


def _save(obj: Any, path: Path, **kw: Any) -> Path:
    torch.save(obj, path, **kw)
    return path


def _all_dtypes() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    base = torch.randn(3, 5, generator=g)
    out: dict[str, torch.Tensor] = {}
    for dt in ST_DTYPE:
        name = str(dt).removeprefix("torch.")
        if dt == torch.bool:
            out[name] = base > 0
        elif dt.is_complex:
            out[name] = torch.complex(base, -base).to(dt)
        elif dt.is_floating_point:
            out[name] = base.to(dt)
        else:
            out[name] = (base * 40).to(torch.int64).clamp(0 if not dt.is_signed else -100, 100).to(dt)
    return out


def build_benign(root: Path, heavy: bool = True) -> list[Case]:
    """Write every benign case under ``root``; ``heavy`` adds the diffusers/transformers/timm models."""
    try:
        return _build(root, heavy)
    finally:
        while _FAKED:
            sys.modules.pop(_FAKED.pop(), None)


def _build(root: Path, heavy: bool) -> list[Case]:
    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    cases: list[Case] = []

    def add(name: str, what: str, make: Callable[[Path], Any], allowed: frozenset[str] = SAFE,
            expect: Expected | None = None, expect_shapes: dict[str, tuple[str, tuple[int, ...]]] | None = None) -> None:  # fmt: skip
        p = root / name
        make(p)
        cases.append(Case(name, p, what, allowed, expect, dict(expect_shapes or {})))

    # 1. every dtype, zip and legacy, every pickle protocol torch accepts
    dts = _all_dtypes()
    add("all_dtypes.pt", "state dict with one tensor of each dtype", lambda p: _save(dts, p), expect=expected(dts))
    legacy_dts = {k: v for k, v in dts.items() if not k.startswith(("float8", "uint16", "uint32", "uint64"))}
    add("all_dtypes_legacy.pt", "legacy (pre-1.6) format, every classic dtype",
        lambda p: _save(legacy_dts, p, _use_new_zipfile_serialization=False), expect=expected(legacy_dts))  # fmt: skip
    new_dts = {k: v for k, v in dts.items() if k not in legacy_dts}
    if new_dts:
        add("new_dtypes_legacy.pt", "legacy format with float8 / unsigned dtypes",
            lambda p: _save(new_dts, p, _use_new_zipfile_serialization=False), NOT_DANGEROUS)  # fmt: skip
    tiny = Tiny()
    sd = tiny.state_dict()
    for proto in (2, 3, 4, 5):
        add(f"state_dict_p{proto}.pth", f"nn.Module.state_dict() (OrderedDict), pickle protocol {proto}",
            functools.partial(_save, sd, pickle_protocol=proto), expect=expected(sd))  # fmt: skip
        add(f"state_dict_p{proto}_legacy.pth", f"legacy format, pickle protocol {proto}",
            functools.partial(_save, sd, pickle_protocol=proto, _use_new_zipfile_serialization=False),
            expect=expected(sd))  # fmt: skip
    add("v1-5-pruned-emaonly.ckpt", "archive prefix with dashes and dots in the file name",
        lambda p: _save({"state_dict": sd, "global_step": 840000, "epoch": 6}, p), expect=expected(sd))  # fmt: skip
    buf = io.BytesIO()
    torch.save(sd, buf)
    add("from_buffer.bin", "torch.save to a BytesIO (prefix 'archive')", lambda p: p.write_bytes(buf.getvalue()),
        expect=expected(sd))  # fmt: skip

    # 2. structures
    t1, t2, t3 = torch.randn(2, 3), torch.arange(6, dtype=torch.int32), torch.ones(4, dtype=torch.float16)
    add("bare_tensor.pt", "torch.save of one tensor", lambda p: _save(t1, p), expect={"tensor": (
        "F32", (2, 3), tensor_bytes(t1))})  # fmt: skip
    param = nn.Parameter(torch.randn(3, 3))
    add("parameter.pt", "torch.save of an nn.Parameter", lambda p: _save(param, p),
        expect={"tensor": ("F32", (3, 3), tensor_bytes(param))})  # fmt: skip
    nested = {
        "a": {"b": [t1, (t2, t3)]},
        "size": torch.Size([2, 3]),
        "od": collections.OrderedDict(w=t1),
        "dtype": torch.float16,
        "device": torch.device("cpu"),
        "meta": {"name": "x", "n": 3, "f": 0.5, "none": None, "flag": True, "raw": b"\x00\x01"},
        "lists": [[1, 2], [t2]],
    }
    add("nested.pt", "nested dicts / lists / tuples, torch.Size, dtype and device values", lambda p: _save(nested, p),
        expect={"a.b.0": ("F32", (2, 3), tensor_bytes(t1)), "a.b.1.0": ("I32", (6,), tensor_bytes(t2)),
                "a.b.1.1": ("F16", (4,), tensor_bytes(t3)), "od.w": ("F32", (2, 3), tensor_bytes(t1)),
                "lists.1.0": ("I32", (6,), tensor_bytes(t2))})  # fmt: skip
    add("nested_legacy.pt", "the same, legacy format", lambda p: _save(nested, p, _use_new_zipfile_serialization=False),
        expect={"a.b.0": ("F32", (2, 3), tensor_bytes(t1)), "a.b.1.1": ("F16", (4,), tensor_bytes(t3))})  # fmt: skip
    dol = {"layers": [torch.randn(2) for _ in range(3)], "names": ["a", "b", "c"]}
    add("dict_of_lists.pt", "a dict of lists", lambda p: _save(dol, p),
        expect={f"layers.{i}": ("F32", (2,), tensor_bytes(t)) for i, t in enumerate(dol["layers"])})  # fmt: skip
    tup = (torch.randn(2), torch.randn(3))
    add("tuple.pt", "a tuple of tensors", lambda p: _save(tup, p),
        expect={"0": ("F32", (2,), tensor_bytes(tup[0])), "1": ("F32", (3,), tensor_bytes(tup[1]))})  # fmt: skip

    # 3. storage sharing, views, strides
    base = torch.arange(100, dtype=torch.float32)
    views = {"base": base, "slice": base[10:20], "square": base.view(10, 10), "row": base.view(10, 10)[3],
             "transposed": base.view(10, 10).t(), "every_other": base[::2]}  # fmt: skip
    contiguous_views = {k: views[k] for k in ("base", "slice", "square", "row")}
    shapes = {"transposed": ("F32", (10, 10)), "every_other": ("F32", (50,))}
    add("views.pt", "tensors sharing one storage: slices, reshapes, a transpose, a strided view",
        lambda p: _save(views, p), expect=expected(contiguous_views), expect_shapes=shapes)  # fmt: skip
    add("views_legacy.pt", "the same, legacy format", lambda p: _save(views, p, _use_new_zipfile_serialization=False),
        expect=expected(contiguous_views), expect_shapes=shapes)  # fmt: skip
    sub = torch.randn(4, 4)
    sub.extra_attr = "hello"
    add("tensor_with_attribute.pt", "a tensor with a Python attribute (_rebuild_from_type_v2 state)",
        lambda p: _save({"t": sub}, p), expect={"t": ("F32", (4, 4), tensor_bytes(sub))})  # fmt: skip
    big = {f"blocks.{i}.{k}": torch.randn(64, 64 if k == "weight" else 1).squeeze(-1) for i in range(60)
           for k in ("weight", "bias")}  # fmt: skip
    add("big_state_dict.pt", "120 tensors, about 1 MB", lambda p: _save(big, p), expect=expected(big))

    # 4. exotic tensor kinds: not recovered, but never dangerous
    coo = torch.sparse_coo_tensor(torch.tensor([[0, 1], [1, 0]]), torch.tensor([1.0, 2.0]), (2, 2))
    add("sparse_coo.pt", "a sparse COO tensor", lambda p: _save({"s": coo}, p), NOT_DANGEROUS)
    csr = torch.eye(3).to_sparse_csr()
    add("sparse_csr.pt", "a sparse CSR tensor", lambda p: _save({"s": csr}, p), NOT_DANGEROUS)
    q = torch.quantize_per_tensor(torch.randn(4), 0.1, 0, torch.qint8)
    qc = torch.quantize_per_channel(torch.randn(2, 3), torch.tensor([0.1, 0.2]), torch.tensor([0, 1]), 0, torch.quint8)
    add("quantized.pt", "per-tensor and per-channel quantized tensors", lambda p: _save({"q": q, "qc": qc}, p),
        NOT_DANGEROUS)  # fmt: skip
    meta = torch.empty(3, 4, device="meta")
    add("meta.pt", "a tensor on the meta device", lambda p: _save({"m": meta}, p), NOT_DANGEROUS)
    nt = torch.nested.nested_tensor([torch.randn(2), torch.randn(3)])
    add("nested_tensor.pt", "a nested tensor", lambda p: _save({"n": nt}, p), NOT_DANGEROUS)
    njt = torch.nested.nested_tensor([torch.randn(2, 4), torch.randn(3, 4)], layout=torch.jagged)
    add("nested_jagged.pt", "a nested jagged tensor (NJT)", lambda p: _save({"n": njt}, p), NOT_DANGEROUS)

    # 5. training state
    model = Tiny()
    adam = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    adam.step()
    sgd = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sgd.step()
    sched = torch.optim.lr_scheduler.OneCycleLR(adam, max_lr=0.01, total_steps=10)
    cos = torch.optim.lr_scheduler.CosineAnnealingLR(sgd, T_max=10)
    lam = torch.optim.lr_scheduler.LambdaLR(sgd, lambda s: 0.9**s)
    scaler = torch.amp.GradScaler("cpu")
    add("optimizer.pt", "AdamW and SGD state dicts (step tensors, param groups)",
        lambda p: _save({"adam": adam.state_dict(), "sgd": sgd.state_dict()}, p))  # fmt: skip
    add("schedulers.pt", "OneCycleLR, CosineAnnealingLR, LambdaLR and GradScaler state dicts",
        lambda p: _save({"onecycle": sched.state_dict(), "cos": cos.state_dict(), "lambda": lam.state_dict(),
                         "scaler": scaler.state_dict()}, p), NOT_DANGEROUS)  # fmt: skip
    msd = model.state_dict()
    ModelCheckpoint = _fake_module("pytorch_lightning.callbacks.model_checkpoint", "ModelCheckpoint", {})
    AttributeDict = _fake_module("pytorch_lightning.utilities.parsing", "AttributeDict", {})
    ad = AttributeDict()
    ad.__dict__.update({"lr": 1e-4, "unet_config": {"channels": 320}})
    hp = {
        "args": argparse.Namespace(lr=1e-4, name="run", steps=[1, 2]),
        "out_dir": pathlib.Path("/data/runs/x"),
        "pure": pathlib.PurePosixPath("a/b"),
        "cfg": TrainConfig(),
        "mode": Mode.EVAL,
        "tags": {"a", "b"},
        "frozen": frozenset({1, 2}),
        "sl": slice(1, 10, 2),
        "when": datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
        "delta": datetime.timedelta(days=1),
        "np_f64": np.float64(1.5),
        "np_i64": np.int64(3),
        "np_f32": np.float32(2.5),
        "np_bool": np.bool_(True),
        "np_arr": np.arange(6, dtype=np.float32).reshape(2, 3),
        "np_dtype": np.dtype("float16"),
        "np_str_arr": np.array(["a", "bc"]),
        "complex": complex(1, 2),
        "counter": collections.Counter("aab"),
        "bytes": bytearray(b"xy"),
        "attrdict": ad,
        "torch_version": torch.__version__,
    }
    ckpt = {
        "epoch": 3,
        "global_step": 1200,
        "pytorch-lightning_version": "1.9.0",
        "state_dict": msd,
        "loops": {"fit_loop": {"state_dict": {}, "epoch_progress": {"total": {"ready": 3}}}},
        "callbacks": {ModelCheckpoint: {"best_model_score": torch.tensor(0.25), "dirpath": "/ckpt",
                                        "best_k_models": {"/ckpt/a.ckpt": torch.tensor(0.3)}}},
        "optimizer_states": [adam.state_dict()],
        "lr_schedulers": [cos.state_dict()],
        "hparams_name": "kwargs",
        "hyper_parameters": hp,
        "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": __import__("random").getstate()},
    }  # fmt: skip
    add("lightning.ckpt", "a Lightning-like checkpoint: callbacks keyed by class, Namespace, Path, dataclass, "
        "enum, set, slice, datetime, numpy scalars/arrays/dtype, optimizer and scheduler state, RNG states",
        lambda p: _save(ckpt, p), NOT_DANGEROUS, expect=expected(msd))  # fmt: skip
    add("lightning_legacy.ckpt", "the same, legacy format", lambda p: _save(ckpt, p, _use_new_zipfile_serialization=False),
        NOT_DANGEROUS, expect=expected(msd))  # fmt: skip
    sd_like = {"state_dict": msd, "global_step": 470000, "epoch": 0,
               "callbacks": {ModelCheckpoint: {"best_model_score": None}}, "np": np.float64(0.1)}  # fmt: skip
    add("sd_v1_style.ckpt", "the shape of the SD 1.x release checkpoints (ModelCheckpoint key, numpy scalar)",
        lambda p: _save(sd_like, p), NOT_DANGEROUS, expect=expected(msd))  # fmt: skip
    vec = torch.randn(2, 768)
    emb = {"string_to_token": {"*": 265}, "string_to_param": {"*": vec}, "name": "style",
           "step": 3000, "sd_checkpoint": "abc123", "sd_checkpoint_name": "v1-5"}  # fmt: skip
    add("embedding.pt", "an A1111 textual-inversion embedding", lambda p: _save(emb, p),
        expect={"string_to_param.*": ("F32", (2, 768), tensor_bytes(vec))})  # fmt: skip

    # 6. whole modules (pickled classes: suspicious at worst)
    seq = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4, 2))
    add("sequential_model.pt", "torch.save(nn.Sequential(...)): a whole pickled module",
        lambda p: _save(seq, p), NOT_DANGEROUS)  # fmt: skip
    add("sequential_model_legacy.pt", "the same, legacy format",
        lambda p: _save(seq, p, _use_new_zipfile_serialization=False), NOT_DANGEROUS)  # fmt: skip
    blk = nn.Sequential(Block(), Block())
    add("module_with_callables.pt", "a module with functools.partial, F.gelu and torch.tanh attributes",
        lambda p: _save(blk, p), NOT_DANGEROUS)  # fmt: skip
    wide = nn.ModuleDict({"mha": nn.MultiheadAttention(8, 2), "lstm": nn.LSTM(4, 4), "emb": nn.Embedding(10, 4),
                          "gn": nn.GroupNorm(2, 4), "up": nn.Upsample(scale_factor=2, mode="nearest"),
                          "silu": nn.SiLU(), "wn": nn.utils.weight_norm(nn.Linear(3, 3))})  # fmt: skip
    add("module_zoo.pt", "MultiheadAttention, LSTM, Embedding, GroupNorm, Upsample, SiLU, old-style weight_norm hook",
        lambda p: _save(wide, p), NOT_DANGEROUS)  # fmt: skip
    add("module_bound_method.pt", "a module keeping one of its methods as an attribute (getattr(self, name))",
        lambda p: _save(WithBoundMethod(), p), NOT_DANGEROUS)  # fmt: skip
    compiled = torch.compile(Tiny())
    add("compiled_model.pt", "torch.save(torch.compile(model)): dynamo's wrapper objects pickled",
        lambda p: _save(compiled, p), NOT_DANGEROUS)  # fmt: skip
    add("module_and_optimizer.pt", "whole model and whole optimizer objects pickled",
        lambda p: _save({"model": model, "optimizer": adam, "epoch": 1}, p), NOT_DANGEROUS)  # fmt: skip

    # 7. TorchScript
    scripted = torch.jit.script(Tiny())
    add("scripted.pt", "torch.jit.script + torch.jit.save", lambda p: torch.jit.save(scripted, str(p)), NOT_DANGEROUS)
    traced = torch.jit.trace(Tiny().eval(), torch.randn(1, 3, 8, 8))
    add("traced.pt", "torch.jit.trace + torch.jit.save", lambda p: torch.jit.save(traced, str(p)), NOT_DANGEROUS)
    add("lite.ptl", "a lite-interpreter module (zip with bytecode.pkl)",
        lambda p: p.write_bytes(scripted._save_to_buffer_for_lite_interpreter()), NOT_DANGEROUS)  # fmt: skip
    add("lite_flatbuffer.ptl", "a lite-interpreter module as a flatbuffer (PTMF)",
        lambda p: p.write_bytes(scripted._save_to_buffer_for_lite_interpreter(_use_flatbuffer=True)), NOT_DANGEROUS)  # fmt: skip

    # 8. numpy files and plain pickles people keep next to models
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    add("array.npy", "numpy.save of a float array", lambda p: np.save(p, arr))
    add("arrays.npz", "numpy.savez of two arrays", lambda p: np.savez(p, a=arr, b=arr.astype(np.int16)))
    add("arrays_compressed.npz", "numpy.savez_compressed", lambda p: np.savez_compressed(p, a=arr))
    add("object_array.npy", "an object array of plain values (allow_pickle)",
        lambda p: np.save(p, np.array([{"a": 1}, [1, 2], "s"], dtype=object), allow_pickle=True), NOT_DANGEROUS)  # fmt: skip

    if heavy:
        cases.extend(_heavy(root))
    return cases


def _heavy(root: Path) -> list[Case]:
    """Tiny real models from diffusers, transformers and timm, saved the ways people save them."""
    out: list[Case] = []
    try:
        from diffusers import AutoencoderKL, UNet2DConditionModel
    except Exception:  # noqa: BLE001 - optional stack
        UNet2DConditionModel = None  # noqa: N806
    if UNet2DConditionModel is not None:
        unet = UNet2DConditionModel(
            block_out_channels=(8, 16), layers_per_block=1, sample_size=8, in_channels=4, out_channels=4,
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=8, attention_head_dim=2, norm_num_groups=4,
        )  # fmt: skip
        usd = {f"model.diffusion_model.{k}": v for k, v in unet.state_dict().items()}
        p = root / "tiny_sd.ckpt"
        torch.save({"state_dict": usd, "global_step": 1000, "epoch": 1}, p)
        out.append(Case(p.name, p, "a tiny diffusers UNet2DConditionModel state dict as an SD-style .ckpt", SAFE, expected(usd)))
        d = root / "unet_bin"
        unet.save_pretrained(d, safe_serialization=False)
        p = d / "diffusion_pytorch_model.bin"
        out.append(Case("unet_bin/" + p.name, p, "diffusers save_pretrained(safe_serialization=False)", SAFE,
                        expected(unet.state_dict())))  # fmt: skip
        p = root / "unet_whole.pt"
        holder = nn.ModuleDict({"unet": unet, "blk": Block(8)})
        torch.save(holder, p)
        out.append(Case(p.name, p, "a whole diffusers UNet pickled beside a module holding torch.tanh", NOT_DANGEROUS))
        vae = AutoencoderKL(block_out_channels=(8,), norm_num_groups=4, latent_channels=4, sample_size=8)
        p = root / "vae.pt"
        torch.save(vae.state_dict(), p)
        out.append(Case(p.name, p, "a tiny AutoencoderKL state dict", SAFE, expected(vae.state_dict())))
    try:
        from transformers import CLIPTextConfig, CLIPTextModel
    except Exception:  # noqa: BLE001
        CLIPTextModel = None  # noqa: N806
    if CLIPTextModel is not None:
        cfg = CLIPTextConfig(vocab_size=64, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                             num_attention_heads=2, max_position_embeddings=16)  # fmt: skip
        te = CLIPTextModel(cfg)
        d = root / "clip_bin"
        te.save_pretrained(d, safe_serialization=False)
        bins = sorted(d.glob("*.bin"))
        if not bins:
            # transformers 5 writes safetensors only: write the .bin the way transformers 4 did
            bins = [d / "pytorch_model.bin"]
            torch.save(te.state_dict(), bins[0])
        out.append(Case("clip_bin/" + bins[0].name, bins[0], "a transformers CLIPTextModel saved as pytorch_model.bin",
                        SAFE, expected(te.state_dict()) if len(bins) == 1 else None))  # fmt: skip
    try:
        import timm
    except Exception:  # noqa: BLE001
        timm = None
    if timm is not None:
        vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=2, depth=1, embed_dim=24,
                                num_heads=2, img_size=32, patch_size=16)  # fmt: skip
        p = root / "timm_vit_whole.pth"
        torch.save(vit, p)
        out.append(Case(p.name, p, "a whole timm ViT pickled (partial norm layers, activation classes)", NOT_DANGEROUS))
        p = root / "timm_vit_sd.pth"
        torch.save(vit.state_dict(), p)
        out.append(Case(p.name, p, "a timm ViT state dict", SAFE, expected(vit.state_dict())))
    return out
