"""Discovery of the places issue 20 found missing, each checked against the tool's own source:

* A1111 ``models/VAE-approx``: AUTOMATIC1111/stable-diffusion-webui ``modules/sd_vae_approx.py``
  (``os.path.join(paths.models_path, "VAE-approx", "model.pt")``).
* ComfyUI Desktop: Comfy-Org/desktop ``src/config/comfyServerConfig.ts`` (``extra_models_config.yaml`` in
  ``app.getPath('userData')``, ``~/.config/ComfyUI`` on Linux per its README; sections ``comfyui_desktop``
  with ``base_path``) and its default install path ``<documents>/ComfyUI``.
* Comfy Desktop 2: Comfy-Org/ComfyUI-Desktop-2.0-Beta ``src/main/lib/paths.ts`` (``dataDir()`` is
  ``$XDG_DATA_HOME/comfyui-desktop-2`` on Linux; ``shared_model_paths.yaml`` there, migrated from
  ``~/.config/comfyui-desktop-2``; ``instance-model-paths/<id>.yaml``; shared data under the home folder).
* comfy-cli: Comfy-Org/comfy-cli ``comfy_cli/constants.py`` ``DEFAULT_COMFY_WORKSPACE`` (Linux
  ``~/comfy/ComfyUI``; Windows and macOS ``~/Documents/comfy/ComfyUI``).
* Stability Matrix: LykosAI/StabilityMatrix ``StabilityMatrix.Core/Services/SettingsManager.cs``
  (``TryFindLibrary``: ``Data/.sm-portable`` beside the app, else ``library.json`` ``LibraryPath`` in the
  app-data home; ``ModelsDirectory => Path.Combine(LibraryDir, "Models")``) and ``Helper/Compat.cs``
  (``AppDataHome = AppData + "StabilityMatrix"``, ``STABILITY_MATRIX_APPDATAHOME`` overrides).
"""

from __future__ import annotations

import json
from pathlib import Path

from registry.files.layouts import detect_install, discover_places, stability_matrix_library


def _found(d, kind: str) -> set[Path]:
    return {p.path for p in d.places if p.kind == kind and p.exists}


def test_a1111_vae_approx(tmp_path: Path) -> None:
    sd = tmp_path / "home" / "stable-diffusion-webui"
    (sd / "models" / "VAE-approx").mkdir(parents=True)
    (sd / "webui.py").write_text("")
    d = discover_places({}, tmp_path / "home", tmp_path / "none.yaml")
    assert sd / "models" / "VAE-approx" in _found(d, "a1111")


def test_comfyui_desktop_documents_and_its_config(tmp_path: Path) -> None:
    home = tmp_path / "home"
    base = home / "Documents" / "ComfyUI"
    (base / "models" / "loras").mkdir(parents=True)
    (base / "user").mkdir()
    store = tmp_path / "big-disk"
    (store / "checkpoints").mkdir(parents=True)
    cfg_dir = home / ".config" / "ComfyUI"
    cfg_dir.mkdir(parents=True)
    # what comfyServerConfig.ts writes (generateConfigFileContent) plus a user-added section
    (cfg_dir / "extra_models_config.yaml").write_text(
        "# ComfyUI extra_model_paths.yaml for linux\n"
        f"comfyui_desktop:\n  is_default: 'true'\n  custom_nodes: /opt/app/resources/ComfyUI/custom_nodes\n"
        f"  download_model_base: models\n  base_path: {base}\n"
        f"mine:\n  base_path: {store}\n  checkpoints: checkpoints/\n"
    )
    d = discover_places({}, home, tmp_path / "none.yaml")
    assert d.problems == []
    found = _found(d, "comfyui")
    assert base / "models" in found  # the default install folder and download_model_base
    assert store / "checkpoints" in found
    whys = {p.why for p in d.places if p.path == store / "checkpoints"}
    assert whys == {"ComfyUI Desktop extra_models_config.yaml [mine] checkpoints"}
    # custom_nodes is code, not a model folder
    assert not any("custom_nodes" in str(p.path) for p in d.places)


def test_comfyui_desktop_xdg_config_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    xdg = tmp_path / "xdg"
    (xdg / "ComfyUI").mkdir(parents=True)
    store = tmp_path / "m"
    (store / "vae").mkdir(parents=True)
    (xdg / "ComfyUI" / "extra_models_config.yaml").write_text(f"comfyui_desktop:\n  base_path: {store}\n  vae: vae/\n")
    d = discover_places({"XDG_CONFIG_HOME": str(xdg)}, home, tmp_path / "none.yaml")
    assert store / "vae" in _found(d, "comfyui")


def test_comfy_desktop_2_shared_and_instance_model_paths(tmp_path: Path) -> None:
    home = tmp_path / "home"
    data = home / ".local" / "share" / "comfyui-desktop-2"
    (data / "instance-model-paths").mkdir(parents=True)
    shared = home / "ComfyUI-Shared" / "models"
    (shared / "loras").mkdir(parents=True)
    (data / "shared_model_paths.yaml").write_text(f"shared:\n  base_path: {shared}\n  is_default: true\n  loras: loras\n")
    inst = tmp_path / "inst-models"
    (inst / "vae").mkdir(parents=True)
    (data / "instance-model-paths" / "abc.yaml").write_text(f"inst:\n  base_path: {inst}\n  vae: vae\n")
    # a broken legacy file is a problem, not a crash
    legacy = home / ".config" / "comfyui-desktop-2"
    legacy.mkdir(parents=True)
    (legacy / "shared_model_paths.yaml").write_text("- not a mapping\n")
    d = discover_places({}, home, tmp_path / "none.yaml")
    found = _found(d, "comfyui")
    assert {shared / "loras", inst / "vae", shared} <= found
    assert [p for p, _ in d.problems] == [str(legacy / "shared_model_paths.yaml")]


def test_comfy_cli_default_workspaces(tmp_path: Path) -> None:
    home = tmp_path / "home"
    for ws in (home / "comfy" / "ComfyUI", home / "Documents" / "comfy" / "ComfyUI"):
        (ws / "comfy").mkdir(parents=True)
        (ws / "models").mkdir()
    d = discover_places({}, home, tmp_path / "none.yaml")
    found = _found(d, "comfyui")
    assert {home / "comfy" / "ComfyUI" / "models", home / "Documents" / "comfy" / "ComfyUI" / "models"} <= found


def test_stability_matrix_library_json_and_portable(tmp_path: Path) -> None:
    home = tmp_path / "home"
    lib = tmp_path / "SMLibrary"
    (lib / "Models" / "StableDiffusion").mkdir(parents=True)
    appdata = home / ".config" / "StabilityMatrix"
    appdata.mkdir(parents=True)
    (appdata / "library.json").write_text(json.dumps({"LibraryPath": str(lib)}, indent=2))
    # a portable install in the home folder
    portable = home / "StabilityMatrix"
    (portable / "Data" / "Models" / "Lora").mkdir(parents=True)
    (portable / "Data" / ".sm-portable").write_text("")
    assert detect_install(portable) == "stability-matrix"
    d = discover_places({}, home, tmp_path / "none.yaml")
    assert _found(d, "stability-matrix") == {lib / "Models", portable / "Data" / "Models"}
    # STABILITY_MATRIX_APPDATAHOME overrides the app-data home (Compat.cs)
    other = tmp_path / "smhome"
    other.mkdir()
    (other / "library.json").write_text('{"LibraryPath": "rel-lib"}')
    assert stability_matrix_library({"STABILITY_MATRIX_APPDATAHOME": str(other)}, home) == (
        other / "library.json",
        other / "rel-lib",
    )
    (other / "library.json").write_text("{nope")
    d = discover_places({"STABILITY_MATRIX_APPDATAHOME": str(other)}, home, tmp_path / "none.yaml")
    assert [p for p, _ in d.problems] == [str(other / "library.json")]
