"""Pickle scanning throughput and verdicts: modelreg against picklescan, on the same files, in one run.

    python bench/pickle_scan.py [--rounds 3] [--tensors 1131] [--keep DIR]

Builds a set of files in a temporary folder (benign PyTorch-like checkpoints of realistic pickle size,
the real files of the shared corpus when present, and one file per known bypass class), scans every file
with both scanners (best of ``--rounds`` interleaved rounds), and prints the throughput ratio
(picklescan time / modelreg time: > 1 means modelreg is faster) and a table of the files on which the
two verdicts differ. picklescan is a benchmark-only dependency (``pip install picklescan``).
"""

from __future__ import annotations

import argparse
import gzip
import io
import logging
import os
import pickle  # writing only
import shutil
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from registry.files.pickles import scan_file  # noqa: E402
from tests.pickle_builders import (  # noqa: E402
    CORPUS_DIR,
    P,
    Reduce,
    ZipEntry,
    legacy_torch_bytes,
    npy_object_bytes,
    safetensors_pickle_polyglot,
    safetensors_with_length,
    torch_zip_bytes,
    zip_bytes,
)


def _sd_arrays(n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    names = [f"model.diffusion_model.input_blocks.{i // 8}.{i % 8}.transformer_blocks.0.attn1.to_q.weight" for i in range(n)]
    return {nm: rng.standard_normal(16).astype(np.float16) for nm in names}


def build_files(root: Path, n_tensors: int) -> dict[str, str]:
    """Write the benchmark files; returns {file name: expected truth ('benign' or 'malicious')}."""
    truth: dict[str, str] = {}

    def put(name: str, data: bytes, kind: str) -> None:
        (root / name).write_bytes(data)
        truth[name] = kind

    sd = _sd_arrays(n_tensors)
    lora = {f"lora_unet_down_blocks_{i}.lora_down.weight": np.ones((4, 8), np.float32) for i in range(256)}
    put("sd_checkpoint.ckpt", torch_zip_bytes(sd, wrap="state_dict"), "benign")
    put("sd_legacy.ckpt", legacy_torch_bytes(sd), "benign")
    put("lora.pt", torch_zip_bytes(lora), "benign")
    put("lora_list.pt", torch_zip_bytes(lora, container="list"), "benign")
    put("plain_dict.pkl", pickle.dumps({"step": 10, "names": ["a", "b"], "lr": 1e-4}, protocol=4), "benign")
    if CORPUS_DIR is not None:
        for rel in ("loras/lora_illust.pt", "models/taef2_encoder.pth"):
            shutil.copy(CORPUS_DIR / rel, root / Path(rel).name)
            truth[Path(rel).name] = "benign"
        shutil.copy(CORPUS_DIR / "pickles/unsafe_zip_pytorch.pt", root / "unsafe_zip_pytorch.pt")
        truth["unsafe_zip_pytorch.pt"] = "malicious"
        shutil.copy(CORPUS_DIR / "pickles/password_protected.zip", root / "password_protected.zip")
        truth["password_protected.zip"] = "unscannable"

    # valid safetensors files whose header length also reads as something else: EXT4 (0x84, the unpadded
    # LoKr of issue 12), PROTO 2 (0x80 0x02), gzip's magic (1f 8b); the real unpadded LoKr files
    put("st_ext4_prefix.safetensors", safetensors_with_length(0x3BC84, True, False), "benign")
    put("st_proto2_prefix.safetensors", safetensors_with_length(0x10280, True, False), "benign")
    put("st_gzip_prefix.safetensors", safetensors_with_length(0x8B1F, False, True), "benign")
    if CORPUS_DIR is not None:
        for name in ("smart_falcon_4_lokr.safetensors", "smart_falcon_16_lokr.safetensors"):
            shutil.copy(CORPUS_DIR / "loras" / name, root / name)
            truth[name] = "benign"

    small = {"w": np.ones((2, 2), np.float32)}
    evil = P(2).call("posix", "system", "echo pwned").stop()
    put("evil_st_header_polyglot.safetensors", safetensors_pickle_polyglot(evil), "malicious")
    put("evil_st_trailing.safetensors", safetensors_with_length(0x3BC84, True, False) + evil, "malicious")
    put("evil_jsonpickle.pkl", P(2).call("jsonpickle", "decode", '{"py/reduce": []}').stop(), "malicious")
    put("evil_plain.pkl", evil, "malicious")
    put("evil_named.safetensors", evil, "malicious")
    put("evil_named.bin", pickle.dumps(Reduce(os.system, "id"), protocol=4), "malicious")
    put("evil_zip.pt", torch_zip_bytes(small, data_pkl=evil), "malicious")
    put("evil_zip_flag.pt", torch_zip_bytes(small, data_pkl=evil, pkl_entry={"flags": 1}), "malicious")
    put("evil_zip_crc.pt", torch_zip_bytes(small, data_pkl=evil, pkl_entry={"crc": 7}), "malicious")
    put("evil_zip_names.pt", torch_zip_bytes(small, data_pkl=evil, pkl_entry={"local_name": "archive/x.txt"}), "malicious")
    put("evil_zip_member.pt", torch_zip_bytes(small, extra_members=[ZipEntry("archive/extra/v", evil)]), "malicious")
    put("evil_storage.pt", torch_zip_bytes(small, extra_members=[ZipEntry("archive/data/9", evil)]), "malicious")
    put("evil_string_stack_global.pkl",
        P(4).string0("os").string0("system").raw(b"\x93").mark().ustr("id").tuple().reduce().stop(), "malicious")  # fmt: skip
    put("evil_memo_confusion.pkl",
        P(4).str("posix").str("junk").pop().memoize().str("system").memoize().pop().pop().get(0).get(1).raw(b"\x93")
        .mark().ustr("id").tuple().reduce().stop(), "malicious")  # fmt: skip
    put("evil_submodule.pkl", P(2).call("asyncio.subprocess", "create_subprocess_shell", "id").stop(), "malicious")
    put("evil_importlib.pkl", P(2).call("importlib", "import_module", "os").stop(), "malicious")
    # functools.partial(posix.system, "id")(): the partial only binds; what it wraps decides
    put("evil_partial.pkl", P(2).glob("functools", "partial").mark().glob("posix", "system").ustr("id").tuple().reduce()
        .tuple_n(0).reduce().stop(), "malicious")  # fmt: skip
    put("evil_operator.pkl", P(2).call("_operator", "methodcaller", "system", "id").stop(), "malicious")
    put("evil_torch_gadget.pkl", P(2).call("torch.storage", "_load_from_bytes", b"x").stop(), "malicious")
    put("evil_dotted.pkl", P(4).str("torch.serialization").str("os.system").raw(b"\x93").mark().ustr("id").tuple().reduce().stop(), "malicious")
    put("evil_broken_after.pt", P(2).call("posix", "system", "id").raw(b"\x00junk").stop(), "malicious")
    put("evil_legacy_magic.pt", legacy_torch_bytes(small, magic_pickle=evil), "malicious")
    put("evil_second_pickle.pkl", pickle.dumps(1, protocol=2) + evil, "malicious")
    put("evil_object.npy", npy_object_bytes(evil), "malicious")
    put("evil_npz.npz", zip_bytes([ZipEntry("a.npy", npy_object_bytes(evil), method=8)]), "malicious")
    put("evil_nested.zip", zip_bytes([ZipEntry("in/model.pt", torch_zip_bytes(small, data_pkl=evil))]), "malicious")
    put("evil.pt.gz", gzip.compress(evil), "malicious")
    put("evil_prefix_zip.pt", evil + torch_zip_bytes(small), "malicious")
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as tf:
        for name, payload in [("storages", pickle.dumps(0, protocol=2)), ("tensors", pickle.dumps(0, protocol=2)), ("pickle", evil)]:
            ti = tarfile.TarInfo(name)
            ti.size = len(payload)
            tf.addfile(ti, io.BytesIO(payload))
    put("evil_legacy_tar.pt", tar.getvalue(), "malicious")
    try:
        import py7zr

        with py7zr.SevenZipFile(root / "evil.7z", "w") as a:
            a.writestr(torch_zip_bytes(small, data_pkl=evil), "model.pt")
        truth["evil.7z"] = "malicious"
    except ImportError:
        pass
    return truth


def _picklescan() -> Callable[[str], str] | None:
    try:
        from picklescan.scanner import scan_file_path
    except ImportError:
        return None
    logging.getLogger("picklescan").setLevel(logging.CRITICAL + 1)

    def run(path: str) -> str:
        try:
            r = scan_file_path(path)
        except Exception as e:  # noqa: BLE001 - picklescan raises on some inputs; that is its verdict
            return f"error ({type(e).__name__})"
        if r.issues_count:
            return "dangerous"
        if r.scan_err:
            return "error"
        if r.suspicious_count:
            return "suspicious"
        return "safe"

    return run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tensors", type=int, default=1131, help="tensors in the SD-like checkpoints (SD 1.5: 1131)")
    ap.add_argument("--keep", type=Path, help="write the files here and keep them")
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="modelreg-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    truth = build_files(root, args.tensors)
    files = sorted(truth)
    total_bytes = sum((root / f).stat().st_size for f in files)
    ps = _picklescan()
    if ps is None:
        print("picklescan is not installed: pip install picklescan (benchmark-only dependency)")
        return 2

    def ours(path: str) -> str:
        return scan_file(path).verdict

    def ours_no_tensors(path: str) -> str:
        return scan_file(path, recover_tensors=False).verdict

    runners = {"modelreg": ours, "modelreg (no tensor recovery)": ours_no_tensors, "picklescan": ps}
    best = {k: float("inf") for k in runners}
    per_file = {k: {f: float("inf") for f in files} for k in runners}
    verdicts: dict[str, dict[str, str]] = {k: {} for k in runners}
    for _ in range(args.rounds):
        for name, fn in runners.items():  # interleaved rounds: the machine's noise hits all alike
            t_all = 0.0
            for f in files:
                t0 = time.perf_counter()
                verdicts[name][f] = fn(str(root / f))
                dt = time.perf_counter() - t0
                per_file[name][f] = min(per_file[name][f], dt)
                t_all += dt
            best[name] = min(best[name], t_all)

    print(f"{len(files)} files, {total_bytes / 1e6:.1f} MB, best of {args.rounds} rounds")
    print(f"{'scanner':<32} {'seconds':>8} {'files/s':>8} {'MB/s':>8}")
    for name in runners:
        print(f"{name:<32} {best[name]:>8.3f} {len(files) / best[name]:>8.1f} {total_bytes / 1e6 / best[name]:>8.1f}")
    ratio = best["picklescan"] / best["modelreg"]
    ratio_nt = best["picklescan"] / best["modelreg (no tensor recovery)"]
    print(f"throughput ratio modelreg / picklescan: {ratio:.2f}x (with tensor recovery), {ratio_nt:.2f}x (scan only)")
    benign = [f for f in files if truth[f] == "benign" and not f.endswith(".safetensors")]
    b_ours = sum(per_file["modelreg"][f] for f in benign)
    b_ps = sum(per_file["picklescan"][f] for f in benign)
    print(f"benign checkpoints only: modelreg {b_ours:.3f}s, picklescan {b_ps:.3f}s, ratio {b_ps / b_ours:.2f}x")
    sts = [f for f in files if f.endswith(".safetensors") and truth[f] == "benign"]
    s_ours = sum(per_file["modelreg"][f] for f in sts)
    s_ps = sum(per_file["picklescan"][f] for f in sts)
    print(f"benign safetensors files ({len(sts)}; modelreg parses and checks the header): modelreg {s_ours:.3f}s, "
          f"picklescan {s_ps:.3f}s")  # fmt: skip

    print("\nverdicts where the two differ (truth: what the file is built to be)")
    print(f"{'file':<34} {'truth':<12} {'modelreg':<12} {'picklescan':<14}")
    differ = 0
    for f in files:
        a, b = verdicts["modelreg"][f], verdicts["picklescan"][f]
        if a != b:
            differ += 1
            print(f"{f:<34} {truth[f]:<12} {a:<12} {b:<14}")
    missed = [f for f in files if truth[f] == "malicious" and verdicts["modelreg"][f] != "dangerous"]
    ps_missed = [f for f in files if truth[f] == "malicious" and verdicts["picklescan"][f] != "dangerous"]
    false_alarm = [f for f in files if truth[f] == "benign" and verdicts["modelreg"][f] == "dangerous"]
    st_wrong = [f for f in files if f.endswith(".safetensors") and truth[f] == "benign" and verdicts["modelreg"][f] != "safe"]
    print(f"benign safetensors files not called safe by modelreg: {len(st_wrong)} {st_wrong}")
    print(f"\n{differ} of {len(files)} verdicts differ; malicious files not called dangerous: modelreg {len(missed)} "
          f"{missed}, picklescan {len(ps_missed)}; benign files called dangerous by modelreg: {len(false_alarm)}")  # fmt: skip
    hostile_missed = _hostile_corpus(root / "hostile", ps)
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)
    return 1 if missed or false_alarm or st_wrong or hostile_missed else 0


def _hostile_corpus(root: Path, ps: Callable[[str], str]) -> int:
    """Both scanners on the hostile corpus of the tests (one file per bypass class); returns modelreg's misses."""
    from collections import Counter

    from tests.files.hostile import write_all

    pairs = write_all(root)
    ours: Counter[str] = Counter()
    theirs: Counter[str] = Counter()
    missed = 0
    for case, path in pairs:
        v = scan_file(path, recover_tensors=False).verdict
        ours[v] += 1
        missed += v not in case.allowed
        theirs[ps(str(path)).split(" ")[0]] += 1
    print(f"\nhostile corpus (tests/files/hostile.py): {len(pairs)} files")
    print(f"  modelreg:   {dict(sorted(ours.items()))}, not caught: {missed}")
    print(f"  picklescan: {dict(sorted(theirs.items()))}")
    return missed


if __name__ == "__main__":
    raise SystemExit(main())
