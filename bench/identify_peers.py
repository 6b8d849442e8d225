"""Side by side: modelreg's identification and InvokeAI's model classifier on the same files, scored against
a ground-truth table (``bench/identify_peers_truth.csv``), and (``--time``) the time of scanning them.

Optional and not part of CI; installs nothing. When ``invokeai`` is importable (its own environment, e.g.
``/path/to/invokeai-venv/bin/python bench/identify_peers.py`` with this checkout on ``PYTHONPATH``), every file
is also classified by ``ModelConfigFactory.from_model_on_disk``. Otherwise only modelreg's answers are scored
and the report says that InvokeAI was not available. Checked with InvokeAI 6.14.2: its LoRA loader module is
imported first, because importing the factory alone leaves ``invokeai.backend.patches.layers.utils``
half-initialised: the first LoRA check of the process then raises ``ImportError``, which the factory
records like a non-match. Which check that is varies from process to process (the factory keeps its config
classes in a set); when it is the one that fits, the file comes out ``unknown`` (an SD1.5 kohya LoRA
classified first: 1 run in 6 without the pre-import, 0 in 6 with it). Any ``ImportError`` inside InvokeAI's
checks is counted and printed, never silent.

The files come from three sources named in the table's ``source`` column and are all written (or copied) into
one folder:

* ``corpus:<path>`` - a real file of the shared corpus (``$MODELREG_CORPUS`` or ``../shared/corpus``), copied;
* ``header:<name>`` - a real safetensors header of the corpus, written out with zero-filled data;
* ``fixture:<case>`` - a real layout of ``tests/data/identify`` written out with zero-filled data: a
  safetensors file, or a PyTorch zip (``.pt``/``.pth``; a plain list when the names are list indices).

Scoring, per tool and file: **right** when the kind (LoRA and LyCORIS count as one class) and the base are
right - where the truth lists several bases (``sd1|sd2|sdxl-base``: shapes that cannot decide), naming any of
them or saying "unknown" counts as right; **wrong kind**; **wrong base** (a base named that the truth
excludes); **unknown** (the file's kind is not recognised, or no base is named where the truth has one).
FLUX.2 / TAESD variants are scored separately on the rows that have one.

``--time`` then times, on the same folder, ``modelreg scan`` with its default options into a fresh registry
(run by ``--modelreg-python``, default this interpreter, as ``python -m cli.main`` from this checkout) and
InvokeAI classifying every file with ``from_model_on_disk(hash_algo="blake3_single")`` (InvokeAI's default
``hashing_algorithm``: the classification computes the file's BLAKE3 with InvokeAI's own ``ModelHash``), plus
``ModelHash`` alone for the share of hashing; it checks that both tools' BLAKE3 digests agree and prints the
load average before and after.

    python bench/identify_peers.py [--work DIR] [--truth CSV] [--markdown] [--time [--modelreg-python PY]]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from registry.files.pickles import scan_file  # noqa: E402
from registry.files.safetensors import DTYPE_BITS, read_header  # noqa: E402
from registry.files.sniff import sniff_file  # noqa: E402
from registry.identify import identify, identify_header  # noqa: E402

CORPUS = Path(os.environ.get("MODELREG_CORPUS") or ROOT.parent / "shared" / "corpus")
FIXTURES = ROOT / "tests" / "data" / "identify"

#: InvokeAI BaseModelType values -> modelreg architectures
INVOKE_BASES = {
    "sd-1": "sd1", "sd-2": "sd2", "sd-3": "sd3", "sdxl": "sdxl-base", "sdxl-refiner": "sdxl-refiner",
    "flux": "flux1", "flux2": "other:flux2", "z-image": "other:z-image", "qwen-image": "other:qwen-image",
    "cogview4": "other:cogview4", "any": "unknown", "unknown": "unknown",
}  # fmt: skip
#: InvokeAI ModelType values -> modelreg kinds
INVOKE_KINDS = {"main": "checkpoint", "lora": "lora", "embedding": "embedding", "vae": "vae", "controlnet": "controlnet",
                "t2i_adapter": "t2i_adapter", "ip_adapter": "ip_adapter", "clip_vision": "image_encoder",
                "t5_encoder": "text_encoder", "clip_embed": "text_encoder", "unknown": "unknown"}  # fmt: skip


@dataclass
class Answer:
    kind: str
    base: str
    variant: str | None
    note: str = ""


# -- files ---------------------------------------------------------------------------------------------------


def _safetensors(path: Path, tensors: list[tuple[str, str, list[int]]], metadata: dict[str, str] | None) -> None:
    """A valid safetensors file with zero-filled data (sparse where the filesystem allows)."""
    header: dict[str, Any] = {"__metadata__": metadata} if metadata else {}
    pos = 0
    for name, dtype, shape in tensors:
        n = int(np.prod(shape, dtype=np.int64)) if shape else 1
        nbytes = n * DTYPE_BITS[dtype] // 8
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [pos, pos + nbytes]}
        pos += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(len(raw).to_bytes(8, "little") + raw)
        f.truncate(8 + len(raw) + pos)


_NP = {"F16": np.float16, "F32": np.float32, "BF16": np.float16, "F64": np.float64, "I64": np.int64}


def _torch_zip(path: Path, tensors: list[tuple[str, str, list[int]]]) -> None:
    from tests.pickle_builders import torch_zip_bytes

    arrays = {n: np.zeros(s, dtype=_NP.get(dt, np.float32)) for n, dt, s in tensors}
    listed = [n for n, _, _ in tensors] == [str(i) for i in range(len(tensors))]
    path.write_bytes(torch_zip_bytes(arrays=arrays, container="list" if listed else "OrderedDict"))


def materialise(row: dict[str, str], work: Path) -> Path | None:
    kind, _, ref = row["source"].partition(":")
    out = work / row["file"]
    if kind == "corpus":
        p = CORPUS / ref
        if not p.is_file():
            return None
        shutil.copyfile(p, out)
        return out
    if kind == "header":
        p = CORPUS / "headers" / ref
        if not p.is_file():
            return None
        doc = json.loads(p.read_text())
        _safetensors(out, [(n, e["dtype"], e["shape"]) for n, e in doc["keys"].items()], doc.get("metadata") or None)
        return out
    if kind == "fixture":
        with gzip.open(FIXTURES / f"{ref}.json.gz") as f:
            doc = json.loads(f.read())
        if out.suffix in (".pt", ".pth"):
            _torch_zip(out, [tuple(t) for t in doc["tensors"]])  # type: ignore[misc]
        else:
            _safetensors(out, [tuple(t) for t in doc["tensors"]], doc.get("metadata"))  # type: ignore[misc]
        return out
    raise SystemExit(f"unknown source {row['source']!r}")


# -- the tools -------------------------------------------------------------------------------------------------


def modelreg(path: Path) -> Answer:
    fmt = sniff_file(path).format
    if fmt == "safetensors":
        ident, _ = identify_header(read_header(path))
    else:
        rec = scan_file(path).recovery
        ident, _ = identify(rec.tensor_infos() if rec else [])
    cands = "|".join(ident.arch_candidates)
    return Answer(ident.kind, ident.arch, ident.arch_variant, f"candidates {cands}" if cands else "")


def invokeai_classifier() -> Any | None:
    os.environ.setdefault("TQDM_DISABLE", "1")  # InvokeAI's per-file "Hashing" progress bars
    try:
        # importing the factory alone hits a circular import that makes the LoRA checks fail quietly
        import invokeai.backend.model_manager.load.model_loaders.lora  # noqa: F401
        from invokeai.backend.model_manager.configs.factory import ModelConfigFactory
    except Exception as exc:  # noqa: BLE001 - any failure means the peer is not available here
        print(f"InvokeAI not available ({type(exc).__name__}: {exc}); scoring modelreg alone")
        return None
    return ModelConfigFactory


#: (file, InvokeAI config class) whose check raised ImportError: a circular import, not an answer
IMPORT_ERRORS: list[tuple[str, str]] = []


def invokeai(factory: Any, path: Path) -> Answer:
    try:
        res = factory.from_model_on_disk(path, hash_algo="blake3_single")
    except Exception as exc:  # noqa: BLE001 - a crash is an answer of "unknown" with its reason
        return Answer("unknown", "unknown", None, f"{type(exc).__name__}: {exc}"[:80])
    IMPORT_ERRORS.extend((path.name, k) for k, v in res.details.items() if isinstance(v, ImportError))
    cfg = res.config
    if cfg is None:
        return Answer("unknown", "unknown", None)
    typ = str(getattr(getattr(cfg, "type", None), "value", getattr(cfg, "type", "unknown")))
    base = str(getattr(getattr(cfg, "base", None), "value", getattr(cfg, "base", "unknown")))
    var = getattr(cfg, "variant", None)
    var_s = str(getattr(var, "value", var)) if var is not None else None
    return Answer(INVOKE_KINDS.get(typ, typ), INVOKE_BASES.get(base, f"other:{base}"), var_s, f"{typ}/{base}")


# -- scoring ---------------------------------------------------------------------------------------------------


def _kind_class(k: str) -> str:
    return "adapter" if k in ("lora", "lycoris") else k


def score(truth: dict[str, str], a: Answer) -> str:
    allowed = truth["base"].split("|")
    if a.kind == "unknown":
        return "unknown"
    if _kind_class(a.kind) != _kind_class(truth["kind"]):
        return "wrong kind"
    if a.base in allowed:
        return "right"
    if a.base == "unknown":
        return "right" if len(allowed) > 1 else "unknown"
    return "wrong base"


def _norm(v: str | None) -> str:
    return re.sub(r"[^a-z0-9]", "", (v or "").lower())


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = [f"python {sys.version.split()[0]}"]
    for pkg in ("invokeai", "torch"):
        with contextlib.suppress(PackageNotFoundError):
            out.append(f"{pkg} {version(pkg)}")
    rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    out.append(f"modelreg checkout {rev.stdout.strip() or '?'}")
    return ", ".join(out)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def time_scans(factory: Any, files: list[Path], work: Path, modelreg_python: str) -> None:
    """Time ``modelreg scan`` (default options, fresh registry) and InvokeAI classifying + BLAKE3-hashing ``files``."""
    from invokeai.backend.model_hash.model_hash import ModelHash

    apparent = sum(f.stat().st_size for f in files)
    allocated = sum(f.stat().st_blocks * 512 for f in files)
    for f in files:  # one read each first, so neither tool pays for a cold page cache the other does not
        with open(f, "rb") as fh:
            while fh.read(1 << 24):
                pass
    print(f"\n== scan time: {len(files)} files in one folder, {apparent / 1e9:.2f} GB "
          f"({allocated / 1e9:.2f} GB allocated; the rest is zero-filled sparse data), {os.cpu_count()} CPUs")  # fmt: skip
    print(f"load average before: {_load()}")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    cli = [modelreg_python, "-m", "cli.main"]
    with tempfile.TemporaryDirectory() as dbdir:
        db = str(Path(dbdir) / "registry.duckdb")
        t0 = time.perf_counter()
        run = subprocess.run([*cli, "--db", db, "scan", str(work), "-q"], cwd=ROOT, env=env, capture_output=True, text=True)
        t_modelreg = time.perf_counter() - t0
        print(f"modelreg scan (default options, fresh registry, process start included): {t_modelreg:.1f} s, "
              f"exit {run.returncode}; its output:")  # fmt: skip
        print("    " + (run.stdout + run.stderr).strip().replace("\n", "\n    "))
        q = subprocess.run([*cli, "--db", db, "query", "--format", "json", "SELECT path, blake3 FROM model_files"],
                           cwd=ROOT, env=env, capture_output=True, text=True)  # fmt: skip
        mr_b3 = {Path(r["path"]).name: r["blake3"] for r in json.loads(q.stdout or "[]")} if q.returncode == 0 else {}
    print(f"load average after modelreg: {_load()}")
    iv_b3: dict[str, str] = {}
    t0 = time.perf_counter()
    for f in files:
        cfg = factory.from_model_on_disk(f, hash_algo="blake3_single").config
        iv_b3[f.name] = str(getattr(cfg, "hash", "")).removeprefix("blake3:")
    t_invoke = time.perf_counter() - t0
    t0 = time.perf_counter()
    hasher = ModelHash(algorithm="blake3_single")
    for f in files:
        hasher.hash(f)
    t_hash = time.perf_counter() - t0
    print(f"InvokeAI from_model_on_disk(hash_algo='blake3_single') on each file: {t_invoke:.1f} s "
          f"(of which ModelHash blake3_single alone takes {t_hash:.1f} s)")  # fmt: skip
    print(f"load average after InvokeAI: {_load()}")
    same = sum(1 for n, d in iv_b3.items() if d and mr_b3.get(n) == d)
    print(f"BLAKE3 digests: {same} of {len(files)} files agree between modelreg and InvokeAI"
          + ("" if same == len(files) else f"; differ or missing: {sorted(n for n in iv_b3 if mr_b3.get(n) != iv_b3[n])}"))
    print(f"SUMMARY scan time: modelreg {t_modelreg:.1f} s, InvokeAI {t_invoke:.1f} s "
          f"(ratio {t_modelreg / t_invoke:.2f}), {len(files)} files, {apparent / 1e9:.2f} GB")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--truth", type=Path, default=Path(__file__).with_name("identify_peers_truth.csv"))
    ap.add_argument("--work", type=Path, default=None, help="where to write the materialised files (default: a temp dir)")
    ap.add_argument("--markdown", action="store_true", help="also print the table and the counts as Markdown")
    ap.add_argument("--time", action="store_true", help="then time modelreg scan and InvokeAI on the same files")
    ap.add_argument("--modelreg-python", default=sys.executable,
                    help="interpreter with modelreg's dependencies for --time (default: this one)")  # fmt: skip
    args = ap.parse_args()
    rows = list(csv.DictReader(args.truth.open()))
    factory = invokeai_classifier()
    if args.time and factory is None:
        raise SystemExit("--time needs InvokeAI importable in this interpreter")
    print(_versions())
    tools = ["modelreg"] + (["invokeai"] if factory is not None else [])
    counts = {t: dict.fromkeys(("right", "wrong kind", "wrong base", "unknown"), 0) for t in tools}
    variants = {t: [0, 0] for t in tools}
    elapsed = dict.fromkeys(tools, 0.0)
    skipped: list[str] = []
    md: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        files: list[tuple[dict[str, str], Path]] = []
        for row in rows:
            path = materialise(row, work)
            if path is None:
                skipped.append(row["file"])
            else:
                files.append((row, path))
        print(f"{'file':<36} {'truth':<28} " + " ".join(f"{t + ' says':<40}" for t in tools))
        for row, path in files:
            answers: dict[str, Answer] = {}
            for t in tools:
                t0 = time.perf_counter()
                answers[t] = modelreg(path) if t == "modelreg" else invokeai(factory, path)
                elapsed[t] += time.perf_counter() - t0
            truth = f"{row['kind']} {row['base']}" + (f" ({row['variant']})" if row["variant"] else "")
            cells, md_cells = [], []
            for t in tools:
                a = answers[t]
                s = score(row, a)
                counts[t][s] += 1
                if row["variant"]:
                    variants[t][1] += 1
                    variants[t][0] += _norm(a.variant) == _norm(row["variant"])
                said = f"{a.kind} {a.base}" + (f" ({a.variant})" if a.variant else "")
                cells.append(f"{said[:30]:<31}{'ok' if s == 'right' else s:<9}")
                md_cells.append(f"{said} — {'**' + s + '**' if s != 'right' else s}")
            print(f"{row['file'][:35]:<36} {truth[:27]:<28} " + " ".join(cells))
            truth_md = truth.replace("|", "\\|")  # a Markdown cell cannot hold a bare |
            md.append(f"| `{row['file']}` | {truth_md} | " + " | ".join(md_cells) + " |")
        print()
        n = len(files)
        for t in tools:
            c = counts[t]
            print(f"{t:<9} {n} files: right {c['right']}, wrong kind {c['wrong kind']}, wrong base {c['wrong base']}, "
                  f"unknown {c['unknown']}; variant right {variants[t][0]} of {variants[t][1]}; "
                  f"{elapsed[t]:.2f} s classifying")  # fmt: skip
        if factory is None:
            print("InvokeAI was not available in this environment: no peer answers were measured")
        elif IMPORT_ERRORS:
            print(f"WARNING: {len(IMPORT_ERRORS)} InvokeAI checks raised ImportError (circular import), e.g. "
                  f"{IMPORT_ERRORS[:3]}: its answers above may miss files")  # fmt: skip
        else:
            print("InvokeAI: no check raised ImportError")
        if skipped:
            print(f"skipped (corpus absent): {', '.join(skipped)}")
        if args.markdown:
            print("\n| file | truth | " + " | ".join(tools) + " |\n|---|---|" + "---|" * len(tools))
            print("\n".join(md))
            print("\n| tool | files | right | wrong kind | wrong base | unknown | variant right |\n|---|---|---|---|---|---|---|")
            for t in tools:
                c = counts[t]
                print(f"| {t} | {n} | {c['right']} | {c['wrong kind']} | {c['wrong base']} | {c['unknown']} | "
                      f"{variants[t][0]} of {variants[t][1]} |")  # fmt: skip
        if args.time:
            time_scans(factory, [p for _, p in files], work, args.modelreg_python)


if __name__ == "__main__":
    main()
