"""`modelreg probe`: the extra is optional and lazy; end to end on a tiny diffusers folder (CPU)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import numpy as np
import pytest
from click.testing import CliRunner

from cli.main import root
from registry.probe import missing_packages
from tests.builders import write_safetensors

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(root, list(args), catch_exceptions=False)
    return r.exit_code, r.stdout, r.stderr


def test_without_the_extra_one_line_with_the_pip_command(monkeypatch: pytest.MonkeyPatch, db: Path) -> None:
    import registry.probe

    monkeypatch.setattr(registry.probe, "missing_packages", lambda: ["torch", "diffusers"])
    code, out, err = run("probe", "abc", "--base", "x")
    assert code == 3 and out == ""
    assert err == (
        "modelreg: the probe needs the 'probe' extra (missing: torch, diffusers); "
        "install it with: pip install 'modelreg[probe]'\n"
    )


def test_help_scan_and_show_never_import_torch(tmp_path: Path) -> None:
    m = write_safetensors(tmp_path / "m.safetensors", {"w": np.arange(4, dtype=np.float32)})
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from cli.main import root\n"
        "r = CliRunner()\n"
        f"db = {str(tmp_path / 'r.duckdb')!r}\n"
        "for args in (['--help'], ['probe', '--help'], ['--db', db, 'scan', sys.argv[1]], ['--db', db, 'show', sys.argv[1]]):\n"
        "    res = r.invoke(root, args, catch_exceptions=False)\n"
        "    assert res.exit_code == 0, (args, res.output)\n"
        "heavy = sorted(m for m in ('torch', 'diffusers', 'transformers', 'open_clip', 'peft') if m in sys.modules)\n"
        "print(','.join(heavy) or 'none')\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(m)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "none"


def test_seed_parsing() -> None:
    from cli.probe import parse_seeds

    assert parse_seeds("0-3") == [0, 1, 2, 3]
    assert parse_seeds("1,5,9-10") == [1, 5, 9, 10]
    for bad in ("3-1", "x", "-1", "1,1"):
        with pytest.raises(click.BadParameter):
            parse_seeds(bad)


needs_extra = pytest.mark.skipif(
    bool(missing_packages()), reason=f"the probe extra is not installed (missing: {', '.join(missing_packages())})"
)


@pytest.fixture(scope="module")
def tiny_folder_and_lora(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    import torch

    from registry.probe.offline import build_pipeline, shapes_dataset, train_lora

    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("tiny")
    pipe = build_pipeline("tiny")
    pipe.save_pretrained(d / "base")
    lora = train_lora(pipe, shapes_dataset(1, seed=1), "a photo of ohwx", d / "lora" / "ohwx.safetensors", steps=20)
    # a kohya-style trigger word and tags in the file's metadata, as trainers embed them
    from safetensors.numpy import load_file, save_file

    tensors = load_file(str(lora))
    meta = {"ss_tag_frequency": json.dumps({"1_ohwx": {"ohwx": 3, "disc": 3, "plain background": 2}}),
            "ss_output_name": "ohwx", "ss_network_module": "networks.lora"}
    save_file(tensors, str(lora), metadata=meta)
    return d / "base", lora


@needs_extra
def test_probe_end_to_end(tiny_folder_and_lora: tuple[Path, Path], tmp_path: Path, db: Path) -> None:
    base, lora = tiny_folder_and_lora
    battery = tmp_path / "small.json"
    battery.write_text(json.dumps({"name": "small", "version": 1, "prompts": [
        {"id": "doctor", "text": "a portrait photo of a doctor", "category": "people"},
        {"id": "farmer", "text": "an old farmer in a field", "category": "people"},
        {"id": "car", "text": "a red car on a street", "category": "objects"},
    ]}))
    args = ["probe", str(lora), "--base", str(base), "--battery", str(battery), "--seeds", "0-1", "--steps", "3",
            "--guidance", "4", "--embedder", "pixel:8", "--device", "cpu", "--bootstrap", "50", "--trigger", "ohwx",
            "--sheet", str(tmp_path / "sheet.png")]
    code, out, err = run(*args)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("probe run #1 of ") and "samples (" in lines[0]
    assert any(x.startswith("  Prompt dependence (same seed): off ") for x in lines)
    assert any(x.startswith("  Attraction (other prompt and seed): off ") for x in lines)
    assert any(x.startswith("  Seed dependence (same prompt): off ") for x in lines)
    assert any(x.startswith("  Trigger dependence: without ") for x in lines)
    assert any(x.startswith("- Not measured: fidelity (the embedder pixel-8 has no text tower).") for x in lines)
    assert "registering" in err
    assert (tmp_path / "sheet.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # recorded: run, samples (with embeddings), figures, event; the show section and the view
    code, out, _ = run("show", str(lora), "--format", "json")
    rec = json.loads(out)
    probe = rec["sections"]["probe"] if "sections" in rec else rec["probe"]
    assert probe["run_id"] == 1 and probe["n_runs"] == 1 and probe["battery"] == "small"
    assert probe["seeds"] == [0, 1] and probe["settings"]["steps"] == 3
    # 3 battery prompts + 3 trigger prompts ("ohwx, …" before each) + 2 tag prompts from ss_tag_frequency
    # ("disc, plain background" with and without the trigger)
    assert probe["n_prompts"] == 8
    texts = [p["text"] for p in probe_prompts(lora)]
    assert texts[3:] == ["ohwx, a portrait photo of a doctor", "ohwx, an old farmer in a field", "ohwx, a red car on a street",
                         "disc, plain background", "ohwx, disc, plain background"]
    names = {(m["name"], m["group"], m["arm"]) for m in probe["metrics"]}
    assert ("concentration", "all", "collapse") in names and ("concentration", "trigger-dependence", "delta") in names
    # the record names every sample by SHA-256, with its batch size: the same as probe_samples
    code, out, _ = run("query", "SELECT arm, prompt_id, seed, sha256, batch_size, batch_key, batch_position, cached "
                       "FROM probe_samples ORDER BY rowid", "--format", "json")
    assert probe["samples"] == json.loads(out) and len(probe["samples"]) == 32
    assert {x["batch_size"] for x in probe["samples"]} == {8}
    # 16 samples an arm at batch 8: two batches an arm, each sample at its place in the grid's order
    batches: dict[str, list[int]] = {}
    for x in probe["samples"]:
        batches.setdefault(x["batch_key"], []).append(x["batch_position"])
    assert len(batches) == 4 and all(sorted(p) == list(range(8)) for p in batches.values())
    assert [x["batch_position"] for x in probe["samples"]] == list(range(8)) * 4
    code, text, _ = run("show", str(lora))
    assert "Probe (what generation shows)" in text and "Prompt dependence (same seed)" in text
    assert "  Samples " in text and "32 (16 off, 16 on), each by SHA-256 in the JSON record; batch size 8" in text
    assert "run #1 (its only run of this model)" in text
    code, out, _ = run("query", "SELECT run_id, n_prompts, n_seeds, collapse IS NOT NULL AS c, prompt_ratio IS NOT NULL AS r, "
                       "attraction_gain IS NOT NULL AS g FROM probe_latest", "--format", "json")
    assert json.loads(out) == [{"run_id": 1, "n_prompts": 8, "n_seeds": 2, "c": True, "r": True, "g": True}]
    code, out, _ = run("query", "SELECT arm, count(*) AS n, min(len(embedding)) AS d FROM probe_samples GROUP BY arm ORDER BY arm", "--format", "json")
    assert json.loads(out) == [{"arm": "off", "n": 16, "d": 192}, {"arm": "on", "n": 16, "d": 192}]
    code, out, _ = run("query", "SELECT action FROM events WHERE action LIKE 'probe%'", "--format", "json")
    assert json.loads(out) == [{"action": "probe.run"}]
    # again: every sample comes from the store (both grids), the figures are identical
    code, out2, err2 = run(*args, "--format", "json")
    assert code == 0, err2
    res = json.loads(out2)
    assert res["run_id"] == 2 and all(s["cached"] for s in res["samples"])
    assert res["metrics"] == probe["metrics"] or [
        {k: m[k] for k in ("name", "group", "arm", "value", "lo", "hi")} for m in res["metrics"]
    ] == [{k: m[k] for k in ("name", "group", "arm", "value", "lo", "hi")} for m in probe["metrics"]]
    # run ids are registry-wide; the count is this model's ("Latest run #6 of 2" read as nonsense)
    code, text, _ = run("show", str(lora))
    assert "run #2 (the latest of 2 runs of this model)" in text


@needs_extra
def test_bad_adapter_is_one_clear_line(tiny_folder_and_lora: tuple[Path, Path], tmp_path: Path, db: Path) -> None:
    base, _ = tiny_folder_and_lora
    f = write_safetensors(tmp_path / "loha.safetensors", {
        "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q.hada_w1_a": np.ones((4, 4), np.float32),
        "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q.hada_w1_b": np.ones((4, 4), np.float32),
    })
    code, out, err = run("probe", str(f), "--base", str(base), "--embedder", "pixel", "--device", "cpu",
                         "--steps", "1", "--seeds", "0-1", "--battery", "objects", "--bootstrap", "0")
    assert code == 2
    last = err.strip().splitlines()[-1]
    assert last.startswith("modelreg: loha.safetensors is a LyCORIS LOHA adapter (keys like "
                           "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q.hada_w1_a")
    assert ", which diffusers " in last
    assert last.endswith("probe the merged checkpoint with --checkpoint.")


def probe_prompts(lora: Path) -> list[dict[str, Any]]:
    code, out, _ = run("query", "SELECT CAST(config AS VARCHAR) AS c FROM probe_runs ORDER BY id LIMIT 1", "--format", "json")
    prompts: list[dict[str, Any]] = json.loads(json.loads(out)[0]["c"])["prompts"]
    return prompts
