"""Benchmark: validating and checking a training-data declaration.

Prints, for the complete example declaration and a LoRA whose captions have many distinct tags, the
time of validation (schema + formats + self-consistency) against parsing the same text (the baseline),
and of all contradiction checks against one pass over the tag-frequency table (the baseline). Ratios
only mean something relative to the baseline measured in the same run.

    python bench/declarations.py [--tags N] [--repeat R]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._timing import best  # noqa: E402
from registry import declarations as d  # noqa: E402
from registry.training import DatasetDir, TrainingFacts  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tags", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    text = (Path(__file__).resolve().parent.parent / "examples" / "declarations" / "complete.yaml").read_text()
    doc, _ = d.parse_document(text)
    as_json = json.dumps(doc)
    d.validate(doc)  # warm the validator
    t_parse = best(lambda: json.loads(as_json), args.repeat * 20)
    t_valid = best(lambda: d.validate(doc), args.repeat * 20)
    print(f"validate complete.yaml: {t_valid * 1e3:.2f} ms; json.loads of it {t_parse * 1e3:.3f} ms; ratio {t_valid / t_parse:.0f}x")

    n_dirs = 4
    tags = {f"{i}_set": {f"tag number {i}_{j}": (j % 50) + 1 for j in range(args.tags // n_dirs)} for i in range(n_dirs)}
    facts = TrainingFacts(
        datasets=[DatasetDir(f"{i}_set", 5, 50) for i in range(n_dirs)],
        tag_frequency=tags,
        num_train_images=1000,
        trigger_words=["ohwx"],
    )

    def baseline() -> int:
        return sum(c for t in tags.values() for c in t.values())

    t_base = best(baseline, args.repeat)
    t_check = best(lambda: d.check_declaration(doc, facts=facts, file_hashes={"sha256": "0" * 64}), args.repeat)
    print(
        f"check_declaration with {args.tags} caption tags: {t_check * 1e3:.1f} ms; one pass over the tags "
        f"{t_base * 1e3:.2f} ms; ratio {t_check / t_base:.0f}x"
    )


if __name__ == "__main__":
    main()
