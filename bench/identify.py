"""Benchmark: identification and training-metadata parsing against reading the header.

For an SDXL kohya LoRA (the real module layout, about 2,400 tensors), a FLUX checkpoint layout and a
kohya metadata block, prints the time of ``identify`` / ``parse_training_metadata`` against the baseline
the scan pays anyway for the same file: ``json.loads`` of its header bytes. Ratios only mean something
relative to the baseline measured in the same run.

    python bench/identify.py [--repeat R]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._timing import best  # noqa: E402
from registry.identify import identify  # noqa: E402
from registry.training import parse_training_metadata  # noqa: E402
from tests import archspecs as A  # noqa: E402


def header_bytes(shapes: dict[str, list[int]], metadata: dict[str, str] | None = None) -> bytes:
    doc: dict[str, object] = {"__metadata__": metadata} if metadata else {}
    pos = 0
    for name, shape in shapes.items():
        n = 2
        for d in shape:
            n *= d
        doc[name] = {"dtype": "F16", "shape": shape, "data_offsets": [pos, pos + n]}
        pos += n
    return json.dumps(doc, separators=(",", ":")).encode()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    md = {
        "ss_network_module": "networks.lora", "ss_network_dim": "32", "ss_network_alpha": "16",
        "ss_dataset_dirs": json.dumps({f"{i}_subject{i}": {"n_repeats": i, "img_count": 20} for i in range(1, 20)}),
        "ss_tag_frequency": json.dumps({f"{i}_subject{i}": {f"tag{j}": j for j in range(400)} for i in range(1, 20)}),
        "ss_training_started_at": "1700000000", "ss_resolution": "(1024, 1024)", "ss_learning_rate": "1e-4",
        "modelspec.architecture": "stable-diffusion-xl-v1-base/lora",
    }  # fmt: skip
    cases = {
        "SDXL kohya LoRA": A.lora_tensors(A.unet_modules("sdxl-base", "ldm"), prefix="lora_unet_", rank=32)
        | A.lora_tensors(A.clip_modules(768, 12), prefix="lora_te1_", rank=32)
        | A.lora_tensors(A.clip_modules(1280, 32), prefix="lora_te2_", rank=32),
        "FLUX checkpoint": A.weight_tensors(A.flux_modules("bfl")),
    }
    print(f"{'case':<22} {'tensors':>8} {'json.loads':>12} {'identify':>12} {'ratio':>7}")
    for name, shapes in cases.items():
        raw = header_bytes(shapes, md)
        pairs = [(k, v) for k, v in shapes.items()]
        base = best(lambda raw=raw: json.loads(raw), args.repeat)  # type: ignore[misc]
        t = best(lambda pairs=pairs: identify(pairs, md), args.repeat)  # type: ignore[misc]
        print(f"{name:<22} {len(shapes):>8} {base * 1e3:>10.2f}ms {t * 1e3:>10.2f}ms {t / base:>6.2f}x")
    raw_md = json.dumps(md).encode()
    base = best(lambda: json.loads(raw_md), args.repeat)
    t = best(lambda: parse_training_metadata(md), args.repeat)
    print(f"{'kohya metadata':<22} {len(md):>8} {base * 1e3:>10.2f}ms {t * 1e3:>10.2f}ms {t / base:>6.2f}x  (parse_training_metadata)")


if __name__ == "__main__":
    main()
