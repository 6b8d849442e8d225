"""Discovery of the conventional places where users keep models (registry/files/layouts.py, places)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from registry.files.layouts import (
    comfyui_extra_paths,
    default_config_path,
    detect_install,
    discover_places,
    fooocus_model_paths,
    hf_hub_cache_dir,
    invokeai_models_dir,
    swarmui_model_roots,
)


def _places(d, kind=None):
    return [(p.kind, p.path, p.exists) for p in d.places if kind is None or p.kind == kind]


def test_hf_cache_precedence(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert hf_hub_cache_dir({}, home) == (home / ".cache/huggingface/hub", "default")
    assert hf_hub_cache_dir({"XDG_CACHE_HOME": "/x"}, home) == (Path("/x/huggingface/hub"), "XDG_CACHE_HOME")
    assert hf_hub_cache_dir({"XDG_CACHE_HOME": "/x", "HF_HOME": "/h"}, home) == (Path("/h/hub"), "HF_HOME")
    assert hf_hub_cache_dir({"HF_HOME": "/h", "HUGGINGFACE_HUB_CACHE": "/legacy"}, home) == (
        Path("/legacy"),
        "HUGGINGFACE_HUB_CACHE",
    )
    assert hf_hub_cache_dir({"HF_HOME": "/h", "HF_HUB_CACHE": "~/c", "HUGGINGFACE_HUB_CACHE": "/l"}, home) == (
        home / "c",
        "HF_HUB_CACHE",
    )
    assert hf_hub_cache_dir({"HF_HOME": "$BASE/hf", "BASE": "/b"}, home) == (Path("/b/hf/hub"), "HF_HOME")


def test_comfyui_extra_model_paths(tmp_path: Path) -> None:
    comfy = tmp_path / "ComfyUI"
    comfy.mkdir()
    y = comfy / "extra_model_paths.yaml"
    y.write_text(
        """
a111:
    base_path: ~/stable-diffusion-webui/
    checkpoints: models/Stable-diffusion
    loras: |
        models/Lora
        models/LyCORIS
    embeddings: embeddings
    custom_nodes: some/custom_nodes
central:
    base_path: $STORE/models
    is_default: true
    vae: /abs/vae
    text_encoders: |
      text_encoders/

      clip/
relative:
    base_path: shared
    loras: loras
nobase:
    checkpoints: ../elsewhere/ckpts
empty:
""",
        encoding="utf-8",
    )
    home = tmp_path / "home"
    got = comfyui_extra_paths(y, {"STORE": "/store"}, home)
    sd = home / "stable-diffusion-webui"
    assert got == [
        ("a111", "checkpoints", sd / "models/Stable-diffusion"),
        ("a111", "loras", sd / "models/Lora"),
        ("a111", "loras", sd / "models/LyCORIS"),
        ("a111", "embeddings", sd / "embeddings"),
        ("central", "vae", Path("/abs/vae")),
        ("central", "text_encoders", Path("/store/models/text_encoders")),
        ("central", "text_encoders", Path("/store/models/clip")),
        ("relative", "loras", comfy / "shared/loras"),
        ("nobase", "checkpoints", tmp_path / "elsewhere/ckpts"),
    ]


def test_comfyui_extra_model_paths_bad_yaml(tmp_path: Path) -> None:
    y = tmp_path / "extra_model_paths.yaml"
    y.write_text("- just\n- a list\n", encoding="utf-8")
    with pytest.raises(ValueError, match="expected a mapping of sections"):
        comfyui_extra_paths(y, {}, tmp_path)
    y.write_text("a: [unclosed\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not valid YAML"):
        comfyui_extra_paths(y, {}, tmp_path)


def test_fooocus_config(tmp_path: Path) -> None:
    root = tmp_path / "Fooocus"
    root.mkdir()
    cfg = root / "config.txt"
    cfg.write_text(
        json.dumps(
            {
                "path_checkpoints": ["/data/ckpt", "models/checkpoints"],
                "path_loras": "/data/loras",
                "path_outputs": "/data/outputs",
                "path_wildcards": "wildcards",
                "default_model": "juggernautXL.safetensors",
            }
        ),
        encoding="utf-8",
    )
    assert fooocus_model_paths(cfg) == [
        ("path_checkpoints", Path("/data/ckpt")),
        ("path_checkpoints", root / "models/checkpoints"),
        ("path_loras", Path("/data/loras")),
    ]


def test_invokeai_and_swarmui_settings(tmp_path: Path) -> None:
    inv = tmp_path / "invokeai"
    inv.mkdir()
    assert invokeai_models_dir(inv) == (inv / "models", "default")
    (inv / "invokeai.yaml").write_text("schema_version: 4.0.2\nmodels_dir: /big/models\n", encoding="utf-8")
    assert invokeai_models_dir(inv) == (Path("/big/models"), "invokeai.yaml models_dir")

    sw = tmp_path / "SwarmUI"
    (sw / "Data").mkdir(parents=True)
    assert swarmui_model_roots(sw) == [(sw / "Models", "default")]
    (sw / "Data" / "Settings.fds").write_text(
        "Paths:\n\tModelRoot: /m1;rel/m2\n\tSDModelFolder: Stable-Diffusion\n", encoding="utf-8"
    )
    assert swarmui_model_roots(sw) == [(Path("/m1"), "Settings.fds ModelRoot"), (sw / "rel/m2", "Settings.fds ModelRoot")]


def test_detect_install(tmp_path: Path) -> None:
    a = tmp_path / "a"
    (a / "models" / "Stable-diffusion").mkdir(parents=True)
    assert detect_install(a) == "a1111"
    (a / "modules_forge").mkdir()
    assert detect_install(a) == "forge"
    c = tmp_path / "c"
    (c / "comfy").mkdir(parents=True)
    assert detect_install(c) == "comfyui"
    assert detect_install(tmp_path / "missing") is None
    e = tmp_path / "e"
    e.mkdir()
    assert detect_install(e) is None


def test_discover_places_full_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    hub = tmp_path / "hfhome" / "hub"
    hub.mkdir(parents=True)
    # A1111 with a pickled hash cache that discovery must never touch
    sd = home / "stable-diffusion-webui"
    (sd / "models" / "Lora").mkdir(parents=True)
    (sd / "webui.py").write_text("# webui\n")
    (sd / "cache" / "hashes").mkdir(parents=True)
    (sd / "cache" / "hashes" / "cache.db").write_bytes(b"\x80\x04not a db, and never opened")
    # ComfyUI pointing at an external store
    comfy = home / "ComfyUI"
    (comfy / "models" / "loras").mkdir(parents=True)
    store = tmp_path / "store"
    (store / "loras").mkdir(parents=True)
    (comfy / "extra_model_paths.yaml").write_text(f"s:\n  base_path: {store}\n  loras: loras\n  vae: vae\n")
    # modelreg config with roots and an install
    cfg = tmp_path / "cfg" / "config.yaml"
    cfg.parent.mkdir()
    extra = tmp_path / "extra-root"
    extra.mkdir()
    fooocus = tmp_path / "elsewhere" / "Fooocus"
    (fooocus / "models" / "checkpoints").mkdir(parents=True)
    (fooocus / "entry_with_update.py").write_text("")
    cfg.write_text(f"roots:\n  - {extra}\n  - missing-rel\ninstalls:\n  - {fooocus}\n")

    d = discover_places({"HF_HOME": str(hub.parent)}, home, cfg)
    assert d.problems == []
    assert _places(d, "hf-cache") == [("hf-cache", hub, True)]
    a1111 = _places(d, "a1111")
    assert ("a1111", sd / "models/Lora", True) in a1111
    assert ("a1111", sd / "models/Stable-diffusion", False) in a1111
    # no place is inside the cache folder: the pickled cache is never a candidate
    assert all("cache" not in p.path.relative_to(sd).parts for p in d.places if p.root == sd)
    comfy_places = _places(d, "comfyui")
    assert ("comfyui", comfy / "models", True) in comfy_places
    assert ("comfyui", store / "loras", True) in comfy_places
    assert ("comfyui", store / "vae", False) in comfy_places
    assert ("config", extra, True) in _places(d, "config")
    assert ("config", cfg.parent / "missing-rel", False) in _places(d, "config")
    assert ("fooocus", fooocus / "models", True) in _places(d, "fooocus")
    # absent installs are still reported as searched
    assert ("swarmui", home / "SwarmUI" / "Models", False) in _places(d, "swarmui")
    assert ("invokeai", home / "invokeai" / "models", False) in _places(d, "invokeai")
    existing = {p.path for p in d.existing}
    assert existing == {hub, sd / "models/Lora", comfy / "models", store / "loras", extra, fooocus / "models"}
    assert set(d.model_roots()) == existing


def test_discover_places_broken_config_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    home = tmp_path / "home"
    comfy = home / "ComfyUI"
    (comfy / "comfy").mkdir(parents=True)
    (comfy / "extra_model_paths.yaml").write_text("- nope\n")
    cfg = tmp_path / "config.yaml"
    cfg.write_text("roots: /not/a/list\n")
    d = discover_places({}, home, cfg)
    assert [p for p, _ in d.problems] == [str(comfy / "extra_model_paths.yaml"), str(cfg)]
    assert "'roots:' must be a list of paths" in d.problems[1][1]
    assert ("comfyui", comfy / "models", False) in _places(d, "comfyui")


def test_invokeai_root_env_and_model_roots_dedup(tmp_path: Path) -> None:
    inv = tmp_path / "inv"
    (inv / "models").mkdir(parents=True)
    (inv / "invokeai.yaml").write_text("models_dir: models\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"roots: [{inv}, {inv / 'models'}]\n")
    d = discover_places({"INVOKEAI_ROOT": str(inv)}, tmp_path / "home", cfg)
    assert ("invokeai", inv / "models", True) in _places(d, "invokeai")
    # the config root contains the InvokeAI models folder: walked once, from the outer folder
    assert d.model_roots() == [inv]


def test_default_config_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert default_config_path({"MODELREG_CONFIG": "/x/c.yaml"}) == Path("/x/c.yaml")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert default_config_path({}) == tmp_path / "modelreg" / "config.yaml"
