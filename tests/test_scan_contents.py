"""The registry a scan writes is the same whatever the worker count, the batch size or the speed work
(issue 21): every table of a scanned mixed folder is compared, timing columns aside, across ``-j 1``,
the default, tiny and huge batches, and against a dump stored from the code before the throughput work
(``tests/data/scan_contents.json``; regenerate only on purpose, with
``python -m tests.test_scan_contents OUT.json``, when the registry's contents change by design).
"""

from __future__ import annotations

import json
import math
import socket
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from registry.scan import scan
from registry.store.db import connect
from registry.store.events import verify_chain
from tests.builders import raw_safetensors, write_safetensors
from tests.pickle_builders import torch_zip_bytes

EXPECTED = Path(__file__).parent / "data" / "scan_contents.json"

#: columns that hold when something happened or how long it took (or values derived from those)
VOLATILE = {
    "first_seen", "seen_at", "created_at", "event_at", "applied_at", "seconds", "read_at", "observed_at",
    "mtime_ns", "inode", "device", "actor", "hash", "prev_hash", "elapsed_ms",
}  # fmt: skip
#: tables whose content is not the scan's (schema bookkeeping), and model_listing: the models view's
#: list columns, computed from the tables compared here (tests/test_listing_table.py holds it to the view)
SKIP_TABLES = {"migrations", "meta", "model_listing"}


def build_mixed(root: Path) -> None:
    """A folder of every kind of file a scan meets: kohya, PEFT and LyCORIS adapters (shared and lone
    shapes, conv, Tucker, DoRA, BF16, a NaN and an all-zero module, a broken module), a checkpoint-like
    file, a PyTorch zip, a duplicate, and the bad cases (empty, HTML, LFS pointer, truncated, unknown)."""
    rng = np.random.default_rng(21)

    def f16(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.05).astype(np.float16)

    kohya: dict[str, Any] = {}
    for i in range(5):  # five modules of one shape (a stacked batch) and lone shapes
        k = f"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_{'qkvo'[i % 4]}{i}"
        kohya[f"{k}.lora_down.weight"] = f16(4, 32)
        kohya[f"{k}.lora_up.weight"] = f16(32, 4)
        kohya[f"{k}.alpha"] = np.asarray(2.0, dtype=np.float16)
    kohya["lora_unet_mid_block_attentions_0_proj_in.lora_down.weight"] = f16(4, 48, 1, 1)
    kohya["lora_unet_mid_block_attentions_0_proj_in.lora_up.weight"] = f16(48, 4, 1, 1)
    kohya["lora_unet_mid_block_attentions_0_proj_in.alpha"] = np.asarray(4.0, dtype=np.float16)
    kohya["lora_unet_up_blocks_1_resnets_0_conv1.lora_down.weight"] = f16(4, 16, 3, 3)
    kohya["lora_unet_up_blocks_1_resnets_0_conv1.lora_up.weight"] = f16(16, 4, 1, 1)
    kohya["lora_unet_up_blocks_1_resnets_0_conv2.lora_down.weight"] = f16(4, 16, 1, 1)
    kohya["lora_unet_up_blocks_1_resnets_0_conv2.lora_mid.weight"] = f16(4, 4, 3, 3)
    kohya["lora_unet_up_blocks_1_resnets_0_conv2.lora_up.weight"] = f16(16, 4, 1, 1)
    kohya["lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight"] = f16(8, 24)
    kohya["lora_te_text_model_encoder_layers_0_mlp_fc1.lora_up.weight"] = np.zeros((40, 8), np.float16)
    kohya["lora_te_text_model_encoder_layers_0_mlp_fc1.alpha"] = np.asarray(8.0, dtype=np.float16)
    nan_down = f16(4, 32)
    nan_down[1, 3] = np.nan
    kohya["lora_te_text_model_encoder_layers_1_self_attn_q_proj.lora_down.weight"] = nan_down
    kohya["lora_te_text_model_encoder_layers_1_self_attn_q_proj.lora_up.weight"] = f16(32, 4)
    kohya["lora_te_text_model_encoder_layers_1_self_attn_k_proj.lora_down.weight"] = f16(4, 32)
    kohya["lora_te_text_model_encoder_layers_1_self_attn_k_proj.lora_up.weight"] = f16(32, 5)  # ranks differ
    kohya["lora_te_text_model_encoder_layers_1_self_attn_v_proj.lora_down.weight"] = f16(4, 32)
    kohya["lora_te_text_model_encoder_layers_1_self_attn_v_proj.lora_up.weight"] = f16(32, 4)
    kohya["lora_te_text_model_encoder_layers_1_self_attn_v_proj.dora_scale"] = f16(1, 32)
    kohya["lora_te_text_model_encoder_layers_2_self_attn_q_proj.lora_down.weight"] = f16(4, 32).astype(np.float32)
    kohya["lora_te_text_model_encoder_layers_2_self_attn_q_proj.lora_up.weight"] = f16(32, 4).astype(np.float32)
    bf = (rng.standard_normal((4, 32)) * 0.05).astype(np.float32)
    kohya["lora_te_text_model_encoder_layers_3_self_attn_q_proj.lora_down.weight"] = (
        "BF16", [4, 32], (bf.view(np.uint32) >> 16).astype("<u2").tobytes()
    )
    kohya["lora_te_text_model_encoder_layers_3_self_attn_q_proj.lora_up.weight"] = f16(32, 4)
    kohya["lora_unet_orphan_proj.lora_down.weight"] = f16(4, 8)  # no up: incomplete
    meta = {"ss_network_dim": "4", "ss_network_alpha": "2", "ss_base_model_version": "sd_v1", "ss_seed": "7",
            "ss_output_name": "mixed", "ss_tag_frequency": json.dumps({"a": {"cat": 3, "dog": 1}})}  # fmt: skip
    write_safetensors(root / "kohya.safetensors", kohya, meta)
    write_safetensors(root / "copy" / "kohya again.safetensors", kohya, meta)

    peft: dict[str, Any] = {}
    for blk in range(3):
        for proj in ("to_q", "to_k"):
            k = f"transformer.transformer_blocks.{blk}.attn.{proj}"
            peft[f"{k}.lora_A.weight"] = f16(4, 64)
            peft[f"{k}.lora_B.weight"] = f16(64, 4)
    cfg = {"r": 4, "lora_alpha": 8, "alpha_pattern": {"transformer_blocks.1.attn.to_k": 2}, "use_rslora": False}
    write_safetensors(root / "peft.safetensors", peft, {"lora_adapter_metadata": json.dumps(cfg)})

    loha = {
        "lora_unet_down_blocks_0_attentions_0_proj_in.hada_w1_a": f16(32, 2),
        "lora_unet_down_blocks_0_attentions_0_proj_in.hada_w1_b": f16(2, 24),
        "lora_unet_down_blocks_0_attentions_0_proj_in.hada_w2_a": f16(32, 2),
        "lora_unet_down_blocks_0_attentions_0_proj_in.hada_w2_b": f16(2, 24),
        "lora_unet_down_blocks_0_attentions_0_proj_in.alpha": np.asarray(2.0, dtype=np.float16),
        "lora_unet_down_blocks_0_attentions_0_proj_out.lokr_w1": f16(4, 4),
        "lora_unet_down_blocks_0_attentions_0_proj_out.lokr_w2_a": f16(8, 2),
        "lora_unet_down_blocks_0_attentions_0_proj_out.lokr_w2_b": f16(2, 6),
    }
    write_safetensors(root / "lycoris.safetensors", loha, {"ss_network_module": "lycoris.kohya"})

    ckpt = {
        "model.diffusion_model.input_blocks.0.0.weight": f16(8, 4, 3, 3),
        "model.diffusion_model.input_blocks.0.0.bias": f16(8),
        "first_stage_model.decoder.conv_in.weight": f16(16, 4, 3, 3),
        "cond_stage_model.transformer.text_model.embeddings.position_ids": np.arange(77, dtype=np.int64)[None],
    }
    write_safetensors(root / "checkpoint.safetensors", ckpt)
    for i in range(6):  # tiny files, several to a batch
        write_safetensors(
            root / "tiny" / f"t{i}.safetensors",
            {"lora_unet_x.lora_down.weight": f16(2, 4), "lora_unet_x.lora_up.weight": f16(4, 2)},
            {"ss_seed": str(i)},
        )
    arrays = {"model.diffusion_model.out.2.weight": np.arange(32, dtype=np.float16).reshape(4, 8)}
    (root / "model.ckpt").write_bytes(torch_zip_bytes(arrays, wrap="state_dict"))
    (root / "empty.safetensors").write_bytes(b"")
    (root / "page.safetensors").write_bytes(b"<!DOCTYPE html><html><body>Sign in</body></html>")
    (root / "pointer.safetensors").write_bytes(
        b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"ab" * 32 + b"\nsize 123\n"
    )
    good = raw_safetensors({"w": {"dtype": "F16", "shape": [4], "data_offsets": [0, 8]}}, b"\0" * 8)
    (root / "truncated.safetensors").write_bytes(good[:-3])
    (root / "blob.bin").write_bytes(bytes(range(256)) * 3)


def _norm(v: Any, root: str, host: str) -> Any:
    if isinstance(v, str):
        out = v.replace(root, "<root>").replace(host, "<host>")
        if out[:1] in "[{":
            try:
                return _norm(json.loads(out), root, host)
            except ValueError:
                return out
        return out
    if isinstance(v, dict):
        return {k: _norm(x, root, host) for k, x in v.items() if k not in VOLATILE and k not in ("findings_sha256", "blob_row_sha256")}
    if isinstance(v, list | tuple):
        return [_norm(x, root, host) for x in v]
    if isinstance(v, bytes | bytearray | memoryview):
        return bytes(v).hex()
    return v


def dump(db: Path, root: Path) -> dict[str, list[list[Any]]]:
    """Every table's rows (sorted; volatile columns dropped; the scanned folder and host name replaced
    by placeholders, digests over messages that name the folder dropped)."""
    out: dict[str, list[list[Any]]] = {}
    host = socket.gethostname()
    with connect(db, read_only=True) as con:
        tables = [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' ORDER BY 1"
        ).fetchall()]  # fmt: skip
        for t in tables:
            if t in SKIP_TABLES:
                continue
            cols = [r[0] for r in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position", [t]
            ).fetchall() if r[0] not in VOLATILE]  # fmt: skip
            sel = ", ".join(f'CAST("{c}" AS VARCHAR)' if c in ("payload", "evidence") else f'"{c}"' for c in cols)
            rows = [_norm(list(r), str(root), host) for r in con.execute(f'SELECT {sel} FROM "{t}"').fetchall()]
            out[t] = [cols, *sorted(rows, key=lambda r: json.dumps(r, sort_keys=True, default=str))]
    return out


def _close(a: Any, b: Any, path: str) -> None:
    if isinstance(a, float) and isinstance(b, float | int) and not isinstance(b, bool):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) or (math.isnan(a) and math.isnan(b)), f"{path}: {a} != {b}"
    elif isinstance(a, dict) and isinstance(b, dict):
        assert sorted(a) == sorted(b), f"{path}: keys {sorted(a)} != {sorted(b)}"
        for k in a:
            _close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), f"{path}: {len(a)} items != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{path}[{i}]")
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def _scan(tmp_path: Path, name: str, **kw: Any) -> dict[str, list[list[Any]]]:
    db = tmp_path / f"{name}.duckdb"
    scan([tmp_path / "m"], db, **kw)
    with connect(db, read_only=True) as con:
        assert verify_chain(con).ok
    return dump(db, tmp_path / "m")


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("contents")
    build_mixed(root / "m")
    return root


def test_every_table_is_the_same_whatever_the_workers_and_batches(mixed: Path) -> None:
    one = _scan(mixed, "j1", workers=1)
    assert one["lora_modules"][1:] and one["tensor_stats"][1:] and one["findings"][1:] and one["events"][1:]
    assert _scan(mixed, "auto", workers=0) == one
    assert _scan(mixed, "j3", workers=3) == one
    assert _scan(mixed, "b1", workers=1, batch_files=1) == one
    assert _scan(mixed, "b0s", workers=2, batch_seconds=0.0) == one


def test_every_table_matches_the_stored_dump(mixed: Path) -> None:
    got = json.loads(json.dumps(_scan(mixed, "stored", workers=1), default=str))
    want = json.loads(EXPECTED.read_text(encoding="utf-8"))
    assert sorted(got) == sorted(want)
    for t in want:
        _close(got[t], want[t], t)


if __name__ == "__main__":  # regenerate the stored dump (on purpose only)
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        build_mixed(Path(d) / "m")
        scan([Path(d) / "m"], Path(d) / "r.duckdb", workers=1)
        doc = dump(Path(d) / "r.duckdb", Path(d) / "m")
    Path(sys.argv[1]).write_text(json.dumps(doc, indent=0, sort_keys=True, default=str) + "\n", encoding="utf-8")
