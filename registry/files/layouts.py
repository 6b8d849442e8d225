"""Folder layouts: where users keep model files, and how model folders are organised.

This module only reads small configuration files (YAML, JSON, ``key: value`` text) and lists directories;
it never opens a model file and never loads A1111's pickled hash caches (``cache/*/cache.db``).

Sections:

* **Places** (issue 7): :func:`discover_places` lists the conventional places where users keep models
  (the Hugging Face cache, A1111/Forge, ComfyUI including ``extra_model_paths.yaml``, InvokeAI, Fooocus,
  SwarmUI, and roots from modelreg's own config file) and says which were searched and which exist.
* **Model folders** (issue 3): :func:`identify_folder` says what a folder of model files is: a diffusers
  pipeline (``model_index.json``), a single diffusers/transformers component (``config.json``) or a PEFT
  adapter (``adapter_config.json``), identified from its weights' shapes (bounded header reads) and its
  configs; a config that contradicts the shapes is a finding.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from registry.errors import SafetensorsError
from registry.findings import Finding, Severity, finding, rule
from registry.identify import CONTEXT_WIDTH_ARCH, Evidence, Identity, identify, normalize_arch_claim

# =====================================================================================================
# Places: where users keep models (issue 7)
# =====================================================================================================

#: kinds of place, in the order they are reported
PLACE_KINDS = (
    "hf-cache", "a1111", "forge", "comfyui", "invokeai", "fooocus", "swarmui", "stability-matrix", "config"
)  # fmt: skip

#: A1111 / Forge model folders, relative to the install root (REFERENCE section 9)
A1111_MODEL_DIRS = (
    "models/Stable-diffusion",
    "models/Lora",
    "models/LyCORIS",
    "models/VAE",
    # the small latent-preview decoder (modules/sd_vae_approx.py: models_path/"VAE-approx"/"model.pt",
    # a torch pickle that A1111 loads without weights_only)
    "models/VAE-approx",
    "models/hypernetworks",
    "embeddings",
)
#: A1111 hash caches: ``cache.json`` is JSON; ``cache/*/cache.db`` holds pickled values (never loaded)
A1111_CACHE_FILES = ("cache.json", "cache")

#: SwarmUI model folders under its model root (default ``<install>/Models``)
SWARMUI_MODEL_DIRS = ("Stable-Diffusion", "Lora", "VAE", "Embeddings", "diffusion_models", "clip", "unet")

#: extra_model_paths.yaml keys that are not model folders
_COMFY_NON_MODEL_KEYS = {"base_path", "is_default", "custom_nodes"}
#: Fooocus config.txt ``path_*`` keys that are not model folders
_FOOOCUS_NON_MODEL_KEYS = {"path_outputs", "path_wildcards"}

#: default install folders looked for under the home directory, by kind
_HOME_INSTALLS: dict[str, tuple[str, ...]] = {
    "a1111": ("stable-diffusion-webui", "sd-webui", "automatic1111"),
    "forge": ("stable-diffusion-webui-forge", "sd-webui-forge", "webui_forge"),
    # ~/ComfyUI; ComfyUI Desktop's default base path ~/Documents/ComfyUI (Comfy-Org/desktop: the default
    # install path is <documents>/ComfyUI); comfy-cli's default workspace ~/comfy/ComfyUI on Linux and
    # ~/Documents/comfy/ComfyUI on Windows and macOS (comfy_cli/constants.py DEFAULT_COMFY_WORKSPACE)
    "comfyui": ("ComfyUI", "comfyui", "Documents/ComfyUI", "comfy/ComfyUI", "Documents/comfy/ComfyUI"),
    "invokeai": ("invokeai",),
    "fooocus": ("Fooocus", "fooocus"),
    "swarmui": ("SwarmUI", "swarmui", "StableSwarmUI"),
    # a portable Stability Matrix keeps its library in <app folder>/Data (marker Data/.sm-portable)
    "stability-matrix": ("StabilityMatrix",),
}


@dataclass(frozen=True)
class Place:
    """One conventional place that may hold models.

    ``why`` says how the place was found (``HF_HUB_CACHE``, ``default``, ``extra_model_paths.yaml``, …);
    ``exists`` is whether it is a directory now. ``kind`` is one of :data:`PLACE_KINDS`.
    """

    kind: str
    path: Path
    why: str
    exists: bool
    #: the install root (for UI folders) the place belongs to, if any
    root: Path | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "path": str(self.path),
            "why": self.why,
            "exists": self.exists,
            "root": str(self.root) if self.root is not None else None,
        }


@dataclass
class Discovery:
    """What :func:`discover_places` searched, and problems met on the way (never raised)."""

    places: list[Place] = field(default_factory=list)
    #: problems reading configuration files: (path, message)
    problems: list[tuple[str, str]] = field(default_factory=list)

    @property
    def searched(self) -> list[Place]:
        return list(self.places)

    @property
    def existing(self) -> list[Place]:
        return [p for p in self.places if p.exists]

    def model_roots(self) -> list[Path]:
        """Existing places, minus those inside another existing place (so nothing is walked twice)."""
        paths = sorted({p.path for p in self.existing}, key=lambda p: (len(p.parts), str(p)))
        kept: list[Path] = []
        for p in paths:
            if not any(_is_within(p, k) for k in kept):
                kept.append(p)
        return kept


def _is_within(p: Path, parent: Path) -> bool:
    try:
        p.relative_to(parent)
    except ValueError:
        return False
    return True


def _expand(text: str, env: Mapping[str, str], home: Path) -> str:
    """``~`` and ``$VAR`` / ``${VAR}`` / ``%VAR%`` expansion against ``env`` (not the process env)."""
    def sub(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        return env.get(name, m.group(0))

    out = re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)|%([A-Za-z_][A-Za-z0-9_]*)%", sub, text)
    if out == "~" or out.startswith("~/"):
        out = str(home) + out[1:]
    return out


def _isdir(p: Path) -> bool:
    try:
        return p.is_dir()
    except OSError:
        return False


# -- Hugging Face cache --------------------------------------------------------------------------------
def hf_hub_cache_dir(env: Mapping[str, str] | None = None, home: Path | None = None) -> tuple[Path, str]:
    """The Hugging Face hub cache and the variable that chose it, with huggingface_hub's precedence:
    ``HF_HUB_CACHE``, then legacy ``HUGGINGFACE_HUB_CACHE``, then ``$HF_HOME/hub``, then
    ``$XDG_CACHE_HOME/huggingface/hub``, then ``~/.cache/huggingface/hub``."""
    env = os.environ if env is None else env
    home = Path.home() if home is None else home
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if env.get(var):
            return Path(_expand(env[var], env, home)), var
    if env.get("HF_HOME"):
        return Path(_expand(env["HF_HOME"], env, home)) / "hub", "HF_HOME"
    if env.get("XDG_CACHE_HOME"):
        return Path(_expand(env["XDG_CACHE_HOME"], env, home)) / "huggingface" / "hub", "XDG_CACHE_HOME"
    return home / ".cache" / "huggingface" / "hub", "default"


# -- ComfyUI -------------------------------------------------------------------------------------------
def comfyui_extra_paths(
    yaml_path: Path, env: Mapping[str, str] | None = None, home: Path | None = None
) -> list[tuple[str, str, Path]]:
    """Model folders named by a ComfyUI ``extra_model_paths.yaml``: ``(section, folder_key, path)``.

    Each top-level section may have ``base_path`` (``~`` and variables expanded; a relative one is taken
    relative to the YAML file's folder) and folder keys whose value is one path or several, one per line
    (a YAML block scalar). A relative folder path is joined to ``base_path``, or to the YAML file's folder
    when there is none. Raises ``ValueError`` with a clear message when the file is not such a mapping.
    """
    env = os.environ if env is None else env
    home = Path.home() if home is None else home
    try:
        doc = yaml.safe_load(yaml_path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ValueError(f"{yaml_path}: not valid YAML: {e}") from None
    if doc is None:
        return []
    if not isinstance(doc, dict):
        raise ValueError(f"{yaml_path}: expected a mapping of sections, found {type(doc).__name__}")
    here = yaml_path.parent
    out: list[tuple[str, str, Path]] = []
    for section, conf in doc.items():
        if not isinstance(conf, dict):
            continue
        base: Path | None = None
        if conf.get("base_path"):
            base = Path(_expand(str(conf["base_path"]), env, home))
            if not base.is_absolute():
                base = here / base
        for key, value in conf.items():
            if key in _COMFY_NON_MODEL_KEYS or value is None or isinstance(value, bool | dict | list):
                continue
            for line in str(value).split("\n"):
                line = line.strip()
                if not line:
                    continue
                p = Path(_expand(line, env, home))
                if not p.is_absolute():
                    p = (base if base is not None else here) / p
                out.append((str(section), str(key), Path(os.path.normpath(p))))
    return out


# -- Fooocus -------------------------------------------------------------------------------------------
def fooocus_model_paths(config_txt: Path) -> list[tuple[str, Path]]:
    """Model folders named in Fooocus's ``config.txt`` (JSON): every ``path_*`` key except outputs and
    wildcards; values are a path or a list of paths; relative paths are relative to the install root."""
    try:
        doc = json.loads(config_txt.read_text(encoding="utf-8"))
    except ValueError as e:
        raise ValueError(f"{config_txt}: not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{config_txt}: expected a JSON object")
    root = config_txt.parent
    out: list[tuple[str, Path]] = []
    for key, value in doc.items():
        if not key.startswith("path_") or key in _FOOOCUS_NON_MODEL_KEYS:
            continue
        values = value if isinstance(value, list) else [value]
        for v in values:
            if isinstance(v, str) and v.strip():
                p = Path(os.path.expanduser(v.strip()))
                out.append((key, Path(os.path.normpath(p if p.is_absolute() else root / p))))
    return out


# -- InvokeAI ------------------------------------------------------------------------------------------
def invokeai_models_dir(root: Path) -> tuple[Path, str]:
    """InvokeAI's models folder: ``models_dir`` from ``invokeai.yaml`` if set, else ``<root>/models``."""
    cfg = root / "invokeai.yaml"
    if cfg.is_file():
        try:
            doc = yaml.safe_load(cfg.read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            raise ValueError(f"{cfg}: not valid YAML: {e}") from None
        if isinstance(doc, dict):
            value = doc.get("models_dir")
            if value is None and isinstance(doc.get("InvokeAI"), dict):  # 3.x nested layout
                paths = doc["InvokeAI"].get("Paths") or {}
                value = paths.get("models_dir") if isinstance(paths, dict) else None
            if isinstance(value, str) and value.strip():
                p = Path(os.path.expanduser(value.strip()))
                return (p if p.is_absolute() else root / p), "invokeai.yaml models_dir"
    return root / "models", "default"


# -- SwarmUI -------------------------------------------------------------------------------------------
def swarmui_model_roots(root: Path) -> list[tuple[Path, str]]:
    """SwarmUI's model roots: ``ModelRoot`` in ``Data/Settings.fds`` (indented ``key: value`` lines; several
    roots are separated by ``;``), else ``<root>/Models``."""
    settings = root / "Data" / "Settings.fds"
    if settings.is_file():
        for line in settings.read_text(encoding="utf-8", errors="replace").splitlines():
            stripped = line.strip()
            if stripped.startswith("ModelRoot:"):
                value = stripped[len("ModelRoot:") :].strip()
                parts = [v.strip() for v in value.split(";") if v.strip()]
                out = []
                for v in parts:
                    p = Path(os.path.expanduser(v))
                    out.append((p if p.is_absolute() else root / p, "Settings.fds ModelRoot"))
                if out:
                    return out
    return [(root / "Models", "default")]


# -- modelreg's own config -----------------------------------------------------------------------------
def default_config_path(env: Mapping[str, str] | None = None) -> Path:
    """``$MODELREG_CONFIG``, else ``<user config dir>/modelreg/config.yaml`` (platformdirs)."""
    env = os.environ if env is None else env
    if env.get("MODELREG_CONFIG"):
        return Path(env["MODELREG_CONFIG"])
    from platformdirs import user_config_dir

    return Path(user_config_dir("modelreg", appauthor=False)) / "config.yaml"


def read_config(path: Path) -> dict[str, Any]:
    """modelreg's config file (YAML mapping). Keys used here: ``roots`` (model folders to audit) and
    ``installs`` (UI install folders whose kind is recognised by :func:`detect_install`)."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML: {e}") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: expected a mapping with keys such as 'roots:'")
    for key in ("roots", "installs"):
        value = doc.get(key)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise ValueError(f"{path}: '{key}:' must be a list of paths")
    return doc


def detect_install(root: Path) -> str | None:
    """Recognise a UI install folder by its marker files; returns a kind or None."""
    if not _isdir(root):
        return None
    if (root / "webui.py").is_file() or _isdir(root / "models" / "Stable-diffusion"):
        return "forge" if _isdir(root / "modules_forge") else "a1111"
    if (root / "comfy").is_dir() or (root / "extra_model_paths.yaml").is_file() or (
        root / "extra_model_paths.yaml.example"
    ).is_file():
        return "comfyui"
    if (root / "invokeai.yaml").is_file() or (root / "databases" / "invokeai.db").is_file():
        return "invokeai"
    if (root / "config.txt").is_file() and (root / "entry_with_update.py").is_file():
        return "fooocus"
    if (root / "Data" / ".sm-portable").is_file():
        return "stability-matrix"
    if (root / "Data" / "Settings.fds").is_file() or (
        (root / "launch-linux.sh").is_file() and _isdir(root / "Models")
    ):
        return "swarmui"
    if (root / "entry_with_update.py").is_file():
        return "fooocus"
    return None


# -- per-install places --------------------------------------------------------------------------------
def install_places(kind: str, root: Path, why: str, discovery: Discovery, env: Mapping[str, str], home: Path) -> None:
    """Add the model folders of one UI install (of ``kind``) to ``discovery``."""

    def add(path: Path, reason: str) -> None:
        discovery.places.append(Place(kind, path, reason, _isdir(path), root))

    if kind in ("a1111", "forge"):
        for rel in A1111_MODEL_DIRS:
            add(root / rel, why)
    elif kind == "comfyui":
        add(root / "models", why)
        extra = root / "extra_model_paths.yaml"
        if extra.is_file():
            try:
                for section, key, p in comfyui_extra_paths(extra, env, home):
                    add(p, f"extra_model_paths.yaml [{section}] {key}")
            except (OSError, ValueError) as e:
                discovery.problems.append((str(extra), str(e)))
    elif kind == "invokeai":
        try:
            models, reason = invokeai_models_dir(root)
        except (OSError, ValueError) as e:
            discovery.problems.append((str(root / "invokeai.yaml"), str(e)))
            models, reason = root / "models", "default"
        add(models, f"{why}; {reason}")
    elif kind == "fooocus":
        cfg = root / "config.txt"
        paths: list[tuple[str, Path]] = []
        if cfg.is_file():
            try:
                paths = fooocus_model_paths(cfg)
            except (OSError, ValueError) as e:
                discovery.problems.append((str(cfg), str(e)))
        if paths:
            for key, p in paths:
                add(p, f"config.txt {key}")
        else:
            add(root / "models", why)
    elif kind == "swarmui":
        try:
            roots = swarmui_model_roots(root)
        except OSError as e:
            discovery.problems.append((str(root / "Data" / "Settings.fds"), str(e)))
            roots = [(root / "Models", "default")]
        for mroot, reason in roots:
            add(mroot, f"{why}; {reason}")
    elif kind == "stability-matrix":
        # the install folder of a portable Stability Matrix: its library is Data/, models in Data/Models
        add(root / "Data" / "Models", f"{why}; portable library (Data/.sm-portable)")


def _install_candidates(env: Mapping[str, str], home: Path) -> Iterable[tuple[str, Path, str]]:
    if env.get("INVOKEAI_ROOT"):
        yield "invokeai", Path(_expand(env["INVOKEAI_ROOT"], env, home)), "INVOKEAI_ROOT"
    for kind, names in _HOME_INSTALLS.items():
        for name in names:
            yield kind, home / name, "default"


# -- ComfyUI Desktop -----------------------------------------------------------------------------------
def comfyui_desktop_configs(env: Mapping[str, str], home: Path) -> list[tuple[Path, str]]:
    """Model-path files written by the ComfyUI Desktop apps: ``(yaml path, why)``, present or not.

    * ComfyUI Desktop (Comfy-Org/desktop, ``src/config/comfyServerConfig.ts``): ``extra_models_config.yaml``
      in Electron's userData folder for the app name ``ComfyUI`` (``~/.config/ComfyUI`` on Linux, honouring
      ``XDG_CONFIG_HOME``; ``~/Library/Application Support/ComfyUI`` on macOS; ``%APPDATA%\\ComfyUI`` on
      Windows). Its ``comfyui_desktop`` section names the ``base_path`` and model folders.
    * Comfy Desktop 2 (Comfy-Org/ComfyUI-Desktop-2.0-Beta, ``src/main/lib/paths.ts`` and the model-paths
      module): ``shared_model_paths.yaml`` and ``instance-model-paths/<id>.yaml`` in its data folder,
      ``$XDG_DATA_HOME/comfyui-desktop-2`` (default ``~/.local/share/comfyui-desktop-2``) on Linux, earlier
      ``~/.config/comfyui-desktop-2``; Electron's userData folder elsewhere.
    """
    xdg_config = Path(_expand(env["XDG_CONFIG_HOME"], env, home)) if env.get("XDG_CONFIG_HOME") else home / ".config"
    xdg_data = Path(_expand(env["XDG_DATA_HOME"], env, home)) if env.get("XDG_DATA_HOME") else home / ".local" / "share"
    v1_dirs = [xdg_config / "ComfyUI", home / "Library" / "Application Support" / "ComfyUI"]
    v2_dirs = [xdg_data / "comfyui-desktop-2", xdg_config / "comfyui-desktop-2",
               home / "Library" / "Application Support" / "comfyui-desktop-2"]  # fmt: skip
    if env.get("APPDATA"):
        appdata = Path(_expand(env["APPDATA"], env, home))
        v1_dirs.append(appdata / "ComfyUI")
        v2_dirs += [appdata / "Comfy Desktop", appdata / "comfyui-desktop-2"]
    out: list[tuple[Path, str]] = [(d / "extra_models_config.yaml", "ComfyUI Desktop") for d in v1_dirs]
    for d in v2_dirs:
        out.append((d / "shared_model_paths.yaml", "Comfy Desktop 2"))
        inst = d / "instance-model-paths"
        if _isdir(inst):
            with contextlib.suppress(OSError):
                out += [(p, "Comfy Desktop 2 instance") for p in sorted(inst.glob("*.yaml"))]
    return out


# -- Stability Matrix ----------------------------------------------------------------------------------
def stability_matrix_library(env: Mapping[str, str], home: Path) -> tuple[Path, Path | None]:
    """``(library.json path, library folder or None)`` of an installed Stability Matrix.

    Stability Matrix (LykosAI/StabilityMatrix, ``StabilityMatrix.Core/Services/SettingsManager.cs``
    ``TryFindLibrary``) reads ``library.json`` (``{"LibraryPath": …}``) from its app-data home,
    ``$STABILITY_MATRIX_APPDATAHOME``, else ``<ApplicationData>/StabilityMatrix`` (``Helper/Compat.cs``; on
    Linux .NET's ApplicationData is ``$XDG_CONFIG_HOME`` or ``~/.config``); its shared models live in
    ``<library>/Models`` (``ModelsDirectory``). Raises ``ValueError`` when library.json does not parse."""
    if env.get("STABILITY_MATRIX_APPDATAHOME"):
        appdata_home = Path(_expand(env["STABILITY_MATRIX_APPDATAHOME"], env, home))
    elif env.get("APPDATA"):
        appdata_home = Path(_expand(env["APPDATA"], env, home)) / "StabilityMatrix"
    else:
        base = Path(_expand(env["XDG_CONFIG_HOME"], env, home)) if env.get("XDG_CONFIG_HOME") else home / ".config"
        appdata_home = base / "StabilityMatrix"
    lib_json = appdata_home / "library.json"
    if not lib_json.is_file():
        return lib_json, None
    try:
        doc = json.loads(lib_json.read_text(encoding="utf-8-sig"))
    except ValueError as e:
        raise ValueError(f"{lib_json}: not valid JSON: {e}") from None
    value = doc.get("LibraryPath") if isinstance(doc, dict) else None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{lib_json}: no 'LibraryPath' string")
    p = Path(_expand(value.strip(), env, home))
    return lib_json, (p if p.is_absolute() else appdata_home / p)


def discover_places(
    env: Mapping[str, str] | None = None,
    home: Path | None = None,
    config_path: Path | None = None,
) -> Discovery:
    """Every conventional place where models may be kept, each marked as existing or not.

    Looks at the Hugging Face cache, UI installs under the home directory (A1111, Forge, ComfyUI with its
    ``extra_model_paths.yaml``, InvokeAI at ``$INVOKEAI_ROOT`` or ``~/invokeai``, Fooocus with its
    ``config.txt``, SwarmUI with its ``Data/Settings.fds``), and the ``roots:`` and ``installs:`` of
    modelreg's config file. Reads configuration files only; a broken one is recorded in ``problems``.
    """
    env = os.environ if env is None else env
    home = Path.home() if home is None else home
    d = Discovery()

    hub, var = hf_hub_cache_dir(env, home)
    d.places.append(Place("hf-cache", hub, var, _isdir(hub)))

    seen_installs: set[Path] = set()
    for kind, root, why in _install_candidates(env, home):
        if root in seen_installs:
            continue
        # an install folder that is not there is still "searched": report its main model folder
        if not _isdir(root):
            main = {"a1111": "models/Stable-diffusion", "forge": "models/Stable-diffusion", "swarmui": "Models"}
            d.places.append(Place(kind, root / main.get(kind, "models"), why, False, root))
            continue
        seen_installs.add(root)
        install_places(detect_install(root) or kind, root, why, d, env, home)

    # ComfyUI Desktop apps keep their model paths in YAML files of their own (same format as
    # extra_model_paths.yaml); Comfy Desktop 2's default shared library is ~/ComfyUI-Shared/models
    for yaml_path, app in comfyui_desktop_configs(env, home):
        if not yaml_path.is_file():
            continue
        try:
            for section, key, p in comfyui_extra_paths(yaml_path, env, home):
                d.places.append(Place("comfyui", p, f"{app} {yaml_path.name} [{section}] {key}", _isdir(p), yaml_path.parent))
        except (OSError, ValueError) as e:
            d.problems.append((str(yaml_path), str(e)))
    shared = home / "ComfyUI-Shared" / "models"
    d.places.append(Place("comfyui", shared, "Comfy Desktop 2 default shared models", _isdir(shared)))

    try:
        lib_json, library = stability_matrix_library(env, home)
    except (OSError, ValueError) as e:
        d.problems.append((str(e).split(": ", 1)[0], str(e)))
        lib_json, library = Path(), None
    if library is not None:
        models = library / "Models"
        d.places.append(Place("stability-matrix", models, f"{lib_json} LibraryPath", _isdir(models), library))

    cfg = config_path if config_path is not None else default_config_path(env)
    if cfg.is_file():
        try:
            doc = read_config(cfg)
        except (OSError, ValueError) as e:
            d.problems.append((str(cfg), str(e)))
            doc = {}
        for value in doc.get("roots") or []:
            p = Path(_expand(value, env, home))
            if not p.is_absolute():
                p = cfg.parent / p
            d.places.append(Place("config", p, f"{cfg.name} roots", _isdir(p)))
        for value in doc.get("installs") or []:
            root = Path(_expand(value, env, home))
            if not root.is_absolute():
                root = cfg.parent / root
            if root in seen_installs:
                continue
            seen_installs.add(root)
            detected = detect_install(root)
            if detected is None:
                d.places.append(Place("config", root, f"{cfg.name} installs (kind not recognised)", _isdir(root)))
            else:
                install_places(detected, root, f"{cfg.name} installs", d, env, home)
    return d

# =====================================================================================================
# Model folders: diffusers pipelines and components, PEFT adapters (issue 3)
# =====================================================================================================

R_LAYOUT_BAD_CONFIG = rule(
    "layout.bad-config",
    Severity.LOW,
    "A folder's JSON config (model_index.json, config.json, adapter_config.json) does not parse",
)
R_LAYOUT_MISMATCH = rule(
    "layout.config-arch-mismatch",
    Severity.MEDIUM,
    "A folder's config names an architecture that its weights' shapes contradict",
)
R_LAYOUT_MISSING = rule(
    "layout.missing-weights",
    Severity.LOW,
    "A folder's config names a component whose weights are missing",
)

_MAX_CONFIG = 4 << 20

#: diffusers pipeline class → (arch, variant); "a|b" where one class serves several families (SD1 and SD2
#: repos both name StableDiffusionPipeline; the SDXL refiner's repo names StableDiffusionXLImg2ImgPipeline)
PIPELINE_ARCH: dict[str, tuple[str, str | None]] = {
    "StableDiffusionPipeline": ("sd1|sd2", None),
    "StableDiffusionImg2ImgPipeline": ("sd1|sd2", None),
    "StableDiffusionInpaintPipeline": ("sd1|sd2", "inpaint"),
    "StableDiffusionXLPipeline": ("sdxl-base", None),
    "StableDiffusionXLImg2ImgPipeline": ("sdxl-base|sdxl-refiner", None),
    "StableDiffusionXLInpaintPipeline": ("sdxl-base", "inpaint"),
    "StableDiffusion3Pipeline": ("sd3", None),
    "FluxPipeline": ("flux1", None),
    "FluxFillPipeline": ("flux1", "fill"),
    "FluxKontextPipeline": ("flux1", "dev"),
    "Flux2Pipeline": ("other:flux2", None),
    "ChromaPipeline": ("other:chroma", None),
    "WanPipeline": ("other:wan", None),
    "WanImageToVideoPipeline": ("other:wan", "i2v"),
    "QwenImagePipeline": ("other:qwen-image", None),
    "QwenImageEditPipeline": ("other:qwen-image", "edit"),
    "QwenImageEditPlusPipeline": ("other:qwen-image", "edit"),
    "LTXPipeline": ("other:ltx", None),
    "LTXConditionPipeline": ("other:ltx", None),
    "HunyuanVideoPipeline": ("other:hunyuan-video", None),
    "HunyuanDiTPipeline": ("other:hunyuan-dit", None),
    "HiDreamImagePipeline": ("other:hidream", None),
    "Lumina2Pipeline": ("other:lumina2", None),
    "ZImagePipeline": ("other:z-image", None),
    "AuraFlowPipeline": ("other:auraflow", None),
    "PixArtAlphaPipeline": ("other:pixart", None),
    "PixArtSigmaPipeline": ("other:pixart", None),
    "SanaPipeline": ("other:sana", None),
    "KolorsPipeline": ("other:kolors", None),
    "StableCascadeDecoderPipeline": ("other:stable-cascade", None),
    "StableCascadePriorPipeline": ("other:stable-cascade", None),
    "StableVideoDiffusionPipeline": ("other:svd", None),
    "MochiPipeline": ("other:mochi", None),
}

#: diffusers / transformers component class → kind
COMPONENT_KIND: dict[str, str] = {
    "UNet2DConditionModel": "checkpoint",
    "AutoencoderKL": "vae",
    "AutoencoderTiny": "vae",
    "AutoencoderKLWan": "vae",
    "AutoencoderKLQwenImage": "vae",
    "AutoencoderKLLTXVideo": "vae",
    "ControlNetModel": "controlnet",
    "FluxControlNetModel": "controlnet",
    "SD3ControlNetModel": "controlnet",
    "T2IAdapter": "t2i_adapter",
    "CLIPTextModel": "text_encoder",
    "CLIPTextModelWithProjection": "text_encoder",
    "T5EncoderModel": "text_encoder",
    "UMT5EncoderModel": "text_encoder",
    "Qwen2_5_VLForConditionalGeneration": "text_encoder",
}

_DENOISERS = ("unet", "transformer", "prior", "decoder")
_WEIGHT_NAMES = ("diffusion_pytorch_model", "model", "adapter_model", "pytorch_model")


@dataclass(frozen=True)
class FolderIdentity:
    """What a folder is: its layout, the identity of the model it holds, and its weight files."""

    layout: str  # "diffusers-pipeline", "diffusers-component", "peft-adapter"
    path: str
    identity: Identity
    #: weight files relative to the folder (what a scan of the folder would register)
    files: tuple[str, ...] = ()
    #: the parsed config that named the layout (model_index.json / config.json / adapter_config.json)
    config: Mapping[str, Any] = field(default_factory=dict)
    findings: tuple[Finding, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "layout": self.layout,
            "path": self.path,
            "identity": self.identity.to_dict(),
            "files": list(self.files),
            "config": dict(self.config),
            "findings": [f.as_dict() for f in self.findings],
        }


def _read_json(path: Path, findings: list[Finding]) -> dict[str, Any] | None:
    try:
        if path.stat().st_size > _MAX_CONFIG:
            findings.append(finding(R_LAYOUT_BAD_CONFIG.id, f"{path.name} is larger than {_MAX_CONFIG:,} bytes", file=str(path)))
            return None
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        findings.append(finding(R_LAYOUT_BAD_CONFIG.id, f"{path.name} does not parse: {e}", file=str(path)))
        return None
    if not isinstance(doc, dict):
        findings.append(finding(R_LAYOUT_BAD_CONFIG.id, f"{path.name} is not a JSON object", file=str(path)))
        return None
    return doc


def _weight_files(folder: Path) -> list[Path]:
    out: list[Path] = []
    for p in sorted(folder.iterdir()) if folder.is_dir() else []:
        if p.is_file() and p.suffix in (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf"):
            out.append(p)
    return out


def _shapes(files: list[Path]) -> tuple[list[tuple[str, tuple[int, ...]]], dict[str, str] | None, list[str]]:
    """Tensor names and shapes of every safetensors file (a sharded component is one model)."""
    from registry.files.safetensors import read_header

    pairs: list[tuple[str, tuple[int, ...]]] = []
    metadata: dict[str, str] | None = None
    problems: list[str] = []
    for f in files:
        if f.suffix != ".safetensors":
            continue
        try:
            h = read_header(f)
        except (SafetensorsError, OSError) as e:
            problems.append(f"{f.name}: {e}")
            continue
        pairs += [(t.name, t.shape) for t in h.tensors]
        if h.metadata and metadata is None:
            metadata = dict(h.metadata)
    return pairs, metadata, problems


def _repo_name(s: str) -> str:
    """``org/name`` (a Hub repo id) → ``name``; paths → their last part."""
    return s.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


def identify_diffusers_component(folder: str | Path) -> FolderIdentity | None:
    """A single diffusers/transformers component folder: ``config.json`` with a ``_class_name`` or
    ``architectures`` and its weights. None when the folder is not one."""
    folder = Path(folder)
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        return None
    findings: list[Finding] = []
    cfg = _read_json(cfg_path, findings)
    if cfg is None:
        return None
    cls = cfg.get("_class_name")
    if not isinstance(cls, str):
        archs = cfg.get("architectures")
        cls = archs[0] if isinstance(archs, list) and archs and isinstance(archs[0], str) else None
    if cls is None:
        return None
    files = _weight_files(folder)
    pairs, metadata, problems = _shapes(files)
    ident, fs = identify(pairs, metadata)
    findings += fs
    ev: list[Evidence] = [Evidence(f"config.json _class_name {cls}")]
    ev += [Evidence(f"unreadable weights: {p}") for p in problems]
    kind = COMPONENT_KIND.get(cls)
    if not pairs:
        arch, variant = _arch_from_component_config(cls, cfg)
        ident = Identity(kind=kind or "unknown", arch=arch or "unknown", arch_variant=variant,
                         confidence="medium" if arch else "none", kind_confidence="medium" if kind else "none",
                         source="config" if arch else "none", key_style="diffusers")  # fmt: skip
        if files:
            ev.append(Evidence("weights are not safetensors; identified from config.json only"))
        else:
            findings.append(finding(R_LAYOUT_MISSING.id, f"{folder.name}: config.json without weight files", folder=str(folder)))
    else:
        arch, _ = _arch_from_component_config(cls, cfg)
        findings += _config_vs_shapes(ident, arch, f"{cfg_path.name} ({cls})")
    ident = replace(ident, evidence=tuple(ev) + ident.evidence)
    return FolderIdentity("diffusers-component", str(folder), ident, tuple(f.name for f in files), cfg, tuple(findings))


def _arch_from_component_config(cls: str, cfg: Mapping[str, Any]) -> tuple[str | None, str | None]:
    if cls == "UNet2DConditionModel" or cls == "ControlNetModel":
        ctx = cfg.get("cross_attention_dim")
        arch = CONTEXT_WIDTH_ARCH.get(ctx) if isinstance(ctx, int) else None
        if cfg.get("encoder_hid_dim") == 4096 and ctx == 2048:
            return "other:kolors", None  # SDXL-shaped UNet behind a ChatGLM projection
        if arch == "sdxl-base" and isinstance(cfg.get("block_out_channels"), list) and 384 in cfg["block_out_channels"]:
            arch = "sdxl-refiner"
        variant = "inpaint" if cfg.get("in_channels") == 9 else None
        return arch, variant
    if cls in ("FluxTransformer2DModel", "FluxControlNetModel"):
        g = cfg.get("guidance_embeds")
        return "flux1", ("dev" if g is True else "schnell" if g is False else None)
    if cls in ("SD3Transformer2DModel", "SD3ControlNetModel"):
        return "sd3", None
    simple = {
        "WanTransformer3DModel": "other:wan",
        "QwenImageTransformer2DModel": "other:qwen-image",
        "LTXVideoTransformer3DModel": "other:ltx",
        "HunyuanVideoTransformer3DModel": "other:hunyuan-video",
        "Flux2Transformer2DModel": "other:flux2",
        "ChromaTransformer2DModel": "other:chroma",
        "HiDreamImageTransformer2DModel": "other:hidream",
        "Lumina2Transformer2DModel": "other:lumina2",
        "ZImageTransformer2DModel": "other:z-image",
        "AuraFlowTransformer2DModel": "other:auraflow",
        "PixArtTransformer2DModel": "other:pixart",
        "SanaTransformer2DModel": "other:sana",
        "AutoencoderKLWan": "other:wan",
        "AutoencoderKLQwenImage": "other:qwen-image",
        "AutoencoderKLLTXVideo": "other:ltx",
    }
    return simple.get(cls), None


def _config_vs_shapes(ident: Identity, claimed: str | None, where: str) -> list[Finding]:
    if claimed is None or ident.arch == "unknown" or ident.source != "shapes":
        return []
    if ident.arch in claimed.split("|"):
        return []
    return [
        finding(
            R_LAYOUT_MISMATCH.id,
            f"{where} names {claimed.replace('|', ' or ')}, but the weights' shapes say {ident.arch}",
            claimed_arch=claimed,
            shape_arch=ident.arch,
        )
    ]


def identify_diffusers_pipeline(folder: str | Path) -> FolderIdentity | None:
    """A diffusers pipeline folder (``model_index.json`` + one subfolder per component). The denoiser's
    weights decide the architecture when present; the pipeline class otherwise."""
    folder = Path(folder)
    idx = folder / "model_index.json"
    if not idx.is_file():
        return None
    findings: list[Finding] = []
    cfg = _read_json(idx, findings)
    if cfg is None:
        ident = Identity(kind="unknown", evidence=(Evidence("model_index.json does not parse"),))
        return FolderIdentity("diffusers-pipeline", str(folder), ident, (), {}, tuple(findings))
    cls = cfg.get("_class_name") if isinstance(cfg.get("_class_name"), str) else None
    components = [k for k, v in cfg.items() if not k.startswith("_") and isinstance(v, list) and len(v) == 2 and v[0] is not None]
    files: list[str] = []
    ev: list[Evidence] = [Evidence(f"model_index.json: {cls or 'no _class_name'} with components {', '.join(components)}")]
    denoiser_ident: Identity | None = None
    for comp in components:
        sub = folder / comp
        wf = _weight_files(sub)
        files += [f"{comp}/{f.name}" for f in wf]
        ccls = str(cfg[comp][1])
        if not wf and (ccls in COMPONENT_KIND or ccls.endswith("Model") or ccls.startswith("Autoencoder")):
            findings.append(
                finding(R_LAYOUT_MISSING.id, f"component {comp} ({ccls}) has no weight files", component=comp, cls=ccls)
            )
        if comp in _DENOISERS and denoiser_ident is None and wf:
            pairs, metadata, problems = _shapes(wf)
            ev += [Evidence(f"unreadable weights: {p}") for p in problems]
            if pairs:
                denoiser_ident, fs = identify(pairs, metadata)
                findings += fs
    arch_cls, variant_cls = PIPELINE_ARCH.get(cls or "", (None, None))
    comps = tuple(
        ("te" + c[len("text_encoder_"):] if c.startswith("text_encoder_") else "te1") if c.startswith("text_encoder") else c
        for c in components
        if c in _DENOISERS or c.startswith("text_encoder") or c == "vae"
    )
    if denoiser_ident is not None and denoiser_ident.arch != "unknown":
        ident = replace(
            denoiser_ident,
            kind="checkpoint",
            key_style="diffusers-pipeline",
            components=comps,
            evidence=tuple(ev) + denoiser_ident.evidence,
            arch_variant=denoiser_ident.arch_variant or variant_cls,
        )
        findings += _config_vs_shapes(denoiser_ident, arch_cls, f"model_index.json ({cls})")
    else:
        # no readable denoiser weights: the unet/transformer config, then the pipeline class
        arch, variant, source = arch_cls, variant_cls, "config"
        for comp in _DENOISERS:
            ccfg_path = folder / comp / "config.json"
            if ccfg_path.is_file():
                ccfg = _read_json(ccfg_path, findings)
                dcls = ccfg.get("_class_name") if ccfg else None
                if ccfg and isinstance(dcls, str):
                    a2, v2 = _arch_from_component_config(dcls, ccfg)
                    if a2:
                        ev.append(Evidence(f"{comp}/config.json: {dcls} → {a2}" + (f" ({v2})" if v2 else "")))
                        arch, variant = a2, v2 or variant
                break
        if arch is None and cls:
            a3, v3, _ = normalize_arch_claim(_repo_name(str(cfg.get("_name_or_path", ""))) or None)
            arch, variant = a3, v3
            source = "metadata" if a3 else "none"
        cands: tuple[str, ...] = ()
        if arch is not None and "|" in arch:  # the class alone does not decide between its families
            cands, arch = tuple(arch.split("|")), None
        if cls and arch_cls is not None:
            ev.append(Evidence(f"pipeline class {cls} → {arch_cls.replace('|', ' or ')}"))
        ident = Identity(
            kind="checkpoint",
            key_style="diffusers-pipeline",
            arch=arch or "unknown",
            arch_variant=variant,
            components=comps,
            confidence="medium" if arch else "none",
            kind_confidence="high",
            source=source if arch else "none",
            evidence=tuple(ev),
            arch_candidates=cands,
        )
    return FolderIdentity("diffusers-pipeline", str(folder), ident, tuple(files), cfg, tuple(findings))


_PEFT_TYPES = {
    "LORA": ("lora", "peft-lora"),
    "LOHA": ("lycoris", "loha"),
    "LOKR": ("lycoris", "lokr"),
    "IA3": ("lycoris", "ia3"),
    "OFT": ("lycoris", "oft"),
    "BOFT": ("lycoris", "boft"),
}


def identify_peft_adapter(folder: str | Path) -> FolderIdentity | None:
    """A PEFT adapter folder (``adapter_config.json`` + ``adapter_model.safetensors``)."""
    folder = Path(folder)
    cfg_path = folder / "adapter_config.json"
    if not cfg_path.is_file():
        return None
    findings: list[Finding] = []
    cfg = _read_json(cfg_path, findings) or {}
    files = [f for f in _weight_files(folder) if f.name.startswith("adapter_model")] or _weight_files(folder)
    pairs, metadata, problems = _shapes(files)
    peft_type = str(cfg.get("peft_type") or "").upper()
    kind, adapter_type = _PEFT_TYPES.get(peft_type, ("lora", None))
    if peft_type == "LORA" and cfg.get("use_dora") is True:
        kind, adapter_type = "lycoris", "dora"
    ev = [Evidence(f"adapter_config.json: peft_type {peft_type or '?'}, r={cfg.get('r')}, lora_alpha={cfg.get('lora_alpha')}")]
    ev += [Evidence(f"unreadable weights: {p}") for p in problems]
    base = cfg.get("base_model_name_or_path")
    base_arch, base_variant, _ = normalize_arch_claim(_repo_name(base)) if isinstance(base, str) and base else (None, None, None)
    claims: tuple[Mapping[str, Any], ...] = ()
    if isinstance(base, str) and base:
        ev.append(Evidence(f"base_model_name_or_path {base!r}"))
        claims = ({"key": "adapter_config.base_model_name_or_path", "value": base, "arch": base_arch,
                   "variant": base_variant, "kind": None},)  # fmt: skip
    if pairs:
        ident, fs = identify(pairs, metadata)
        findings += fs
        if ident.arch == "unknown" and base_arch:
            ident = replace(ident, arch=base_arch, arch_variant=base_variant, confidence="low", source="metadata")
        elif ident.source == "shapes" and base_arch and base_arch != ident.arch and not base_arch.startswith("other:"):
            findings.append(
                finding(
                    R_LAYOUT_MISMATCH.id,
                    f"adapter_config.json names base {base!r} ({base_arch}), but the adapter's shapes say {ident.arch}",
                    claimed_arch=base_arch,
                    shape_arch=ident.arch,
                )
            )
        ident = replace(ident, kind=kind if ident.kind in ("lora", "lycoris", "unknown") else ident.kind,
                        adapter_type=adapter_type or ident.adapter_type, evidence=tuple(ev) + ident.evidence,
                        claims=tuple(ident.claims) + claims)  # fmt: skip
    else:
        if not files:
            findings.append(finding(R_LAYOUT_MISSING.id, "adapter_config.json without adapter weights", folder=str(folder)))
        ident = Identity(kind=kind, adapter_type=adapter_type, key_style="peft", arch=base_arch or "unknown",
                         arch_variant=base_variant, confidence="low" if base_arch else "none", kind_confidence="medium",
                         source="metadata" if base_arch else "none", evidence=tuple(ev), claims=claims)  # fmt: skip
    return FolderIdentity("peft-adapter", str(folder), ident, tuple(f.name for f in files), cfg, tuple(findings))


def identify_folder(folder: str | Path) -> FolderIdentity | None:
    """The first layout that fits: diffusers pipeline, PEFT adapter, diffusers component; else None."""
    for fn in (identify_diffusers_pipeline, identify_peft_adapter, identify_diffusers_component):
        r = fn(folder)
        if r is not None:
            return r
    return None
