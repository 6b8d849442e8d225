"""Benchmark: ``modelreg trace`` over 10,000 images, against a bare read of the same files.

Builds N images in a temporary folder, in four formats as their generators write them: A1111 PNG
(``parameters`` tEXt with Lora/TI hashes), ComfyUI PNG (``prompt`` and ``workflow`` JSON, ~15 nodes),
InvokeAI PNG (``invokeai_metadata``), and A1111 JPEG (EXIF UserComment, UTF-16). Each carries
``--pixel-kib`` KiB of incompressible pixel data (IDAT / entropy-coded segment) that tracing hashes but
never decodes. References are matched against an in-memory matcher holding ``--models`` registered
models (hash prefixes and names, the same structure ``Matcher.from_registry`` builds).

Prints images/s for the bare read (open + read every byte: the floor for anything that hashes the file)
and for tracing (SHA-256 + metadata + parse + match), and their ratio. Target: >= 500 images/s.

    python bench/trace.py [--images 10000] [--pixel-kib 64] [--models 1000] [--repeat 2]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._timing import best  # noqa: E402
from registry.trace.match import Matcher  # noqa: E402
from registry.trace.trace import trace_file  # noqa: E402
from tests.image_builders import PNG_SIG, chunk, text_chunk  # noqa: E402


def _png(texts: dict[str, str], pixels: bytes) -> bytes:
    ihdr = chunk(b"IHDR", struct.pack(">IIBBBBB", 512, 512, 8, 2, 0, 0, 0))
    body = b"".join(text_chunk(k, v, "iTXt" if any(ord(c) > 255 for c in v) else "tEXt") for k, v in texts.items())
    idats = b"".join(chunk(b"IDAT", pixels[i : i + 65536]) for i in range(0, len(pixels), 65536))
    return PNG_SIG + ihdr + body + idats + chunk(b"IEND", b"")


def _jpeg(user_comment: str, pixels: bytes) -> bytes:
    body = b"UNICODE\0" + user_comment.encode("utf-16-be")  # as piexif's UserComment.dump(encoding="unicode")
    t = b"MM" + struct.pack(">HI", 42, 8) + struct.pack(">H", 1) + struct.pack(">HHII", 0x8769, 4, 1, 26) + b"\0" * 4
    t += struct.pack(">H", 1) + struct.pack(">HHII", 0x9286, 7, len(body), 44) + b"\0" * 4 + body
    app1 = b"Exif\0\0" + t
    sof = b"\x08" + struct.pack(">HH", 512, 512) + b"\x03" + b"\x01\x11\x00\x02\x11\x01\x03\x11\x01"
    scan = pixels.replace(b"\xff", b"\xfe")
    return (b"\xff\xd8" + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + b"\xff\xc0" + struct.pack(">H", len(sof) + 2)
            + sof + b"\xff\xda" + struct.pack(">H", 8) + b"\x01\x01\x00\x00\x3f\x00" + scan + b"\xff\xd9")  # fmt: skip


def build(folder: Path, n: int, pixel_kib: int, models: list[tuple[str, str, str, str]]) -> None:
    """``models``: (sha256, autov3, name, blake3) of the registered models the images name."""
    rng = os.urandom
    for i in range(n):
        pixels = rng(pixel_kib * 1024)
        ck, lo, lo2 = models[i % len(models)], models[(i * 7 + 1) % len(models)], models[(i * 13 + 2) % len(models)]
        kind = i % 4
        if kind == 0:
            text = (f"photo {i}, <lora:{lo[2]}:0.8>, <lora:{lo2[2]}:0.5>\nNegative prompt: blurry\n"
                    f"Steps: 28, Sampler: DPM++ 2M, CFG scale: 6, Seed: {i}, Size: 512x512, Model hash: {ck[0][:10]}, "
                    f'Model: {ck[2]}, Lora hashes: "{lo[2]}: {lo[1][:12]}, {lo2[2]}: {lo2[1][:12]}", Version: v1.10.1')  # fmt: skip
            data = _png({"parameters": text}, pixels)
        elif kind == 1:
            prompt = {
                "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": f"{ck[2]}.safetensors"}},
                "10": {"class_type": "LoraLoader", "inputs": {"lora_name": f"{lo[2]}.safetensors", "strength_model": 0.8,
                                                              "strength_clip": 1.0, "model": ["4", 0], "clip": ["4", 1]}},
                "6": {"class_type": "CLIPTextEncode", "inputs": {"text": f"a castle {i}", "clip": ["10", 1]}},
                "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "ugly", "clip": ["10", 1]}},
                "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
                "3": {"class_type": "KSampler", "inputs": {"seed": i, "steps": 30, "cfg": 5.5, "sampler_name": "euler",
                      "scheduler": "normal", "denoise": 1.0, "model": ["10", 0], "positive": ["6", 0],
                      "negative": ["7", 0], "latent_image": ["5", 0]}},
                "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
                "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}},
            }  # fmt: skip
            nodes = [{"id": int(k), "type": v["class_type"], "mode": 0, "pos": [k, k], "size": [300, 100],
                      "widgets_values": [x for x in v["inputs"].values() if not isinstance(x, list)]}
                     for k, v in prompt.items()]  # fmt: skip
            wf = {"last_node_id": 10, "nodes": nodes, "links": [[j, 4, 0, 10, 0, "MODEL"] for j in range(12)],
                  "groups": [], "config": {}, "extra": {"ds": {"scale": 1, "offset": [0, 0]}}, "version": 0.4}  # fmt: skip
            data = _png({"prompt": json.dumps(prompt), "workflow": json.dumps(wf)}, pixels)
        elif kind == 2:
            md = {"positive_prompt": f"a fox {i}", "seed": i, "steps": 30, "cfg_scale": 7.0, "width": 512, "height": 512,
                  "model": {"key": "k", "hash": f"blake3:{ck[3]}", "name": ck[2], "base": "sdxl", "type": "main"},
                  "loras": [{"model": {"key": "l", "hash": f"blake3:{lo[3]}", "name": lo[2], "base": "sdxl", "type": "lora"},
                             "weight": 0.75}], "app_version": "5.6.0"}  # fmt: skip
            data = _png({"invokeai_metadata": json.dumps(md)}, pixels)
        else:
            text = f"jpeg {i} ✓\nSteps: 20, Sampler: Euler, Seed: {i}, Size: 512x512, Model hash: {ck[0][:10]}, Model: {ck[2]}"
            data = _jpeg(text, pixels)
        sub = folder / f"{i // 1000:02d}"
        sub.mkdir(exist_ok=True)
        (sub / f"img{i:05d}.{'jpg' if kind == 3 else 'png'}").write_bytes(data)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=10_000)
    ap.add_argument("--pixel-kib", type=int, default=64)
    ap.add_argument("--models", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()

    matcher = Matcher()
    models: list[tuple[str, str, str, str]] = []
    for j in range(args.models):
        sha = hashlib.sha256(f"model {j}".encode()).hexdigest()
        v3 = hashlib.sha256(f"tensors {j}".encode()).hexdigest()
        b3 = hashlib.sha256(f"blake {j}".encode()).hexdigest()
        name = f"model_{j:04d}"
        models.append((sha, v3, name, b3))
        matcher.add_hash(sha, "sha256", sha)
        matcher.add_hash(sha, "autov3", v3)
        matcher.add_hash(sha, "blake3", b3)
        matcher.names[name][sha] = "file name"
        matcher.display[sha] = f"/models/{name}.safetensors"

    with tempfile.TemporaryDirectory(prefix="modelreg-bench-trace-") as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        build(folder, args.images, args.pixel_kib, models)
        files = sorted(str(p) for p in folder.rglob("*") if p.is_file())
        total = sum(os.path.getsize(f) for f in files)
        print(f"built {len(files)} images ({total / 2**20:.0f} MiB, {args.pixel_kib} KiB pixels each) in "
              f"{time.perf_counter() - t0:.1f}s; matcher: {args.models} models")  # fmt: skip

        def bare() -> None:
            for f in files:
                with open(f, "rb") as fh:
                    while fh.read(1 << 20):
                        pass

        statuses: dict[str, int] = {}

        def trace() -> None:
            statuses.clear()
            for f in files:
                t = trace_file(f, matcher)
                for m in t.matches:
                    statuses[m.status] = statuses.get(m.status, 0) + 1

        t_bare = best(bare, args.repeat)
        t_trace = best(trace, args.repeat)
        n = len(files)
        print(f"bare read:  {n / t_bare:9.0f} images/s  ({t_bare:.2f}s)")
        print(f"trace:      {n / t_trace:9.0f} images/s  ({t_trace:.2f}s; SHA-256 + metadata + parse + match)")
        print(f"ratio trace/bare read: {t_bare / t_trace:.2f} (1.0 = tracing as fast as reading the bytes)")
        print(f"reference outcomes: {dict(sorted(statuses.items()))}")
        print(f"target >= 500 images/s: {'met' if n / t_trace >= 500 else 'NOT met'}")


if __name__ == "__main__":
    main()
