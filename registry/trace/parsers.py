"""Each generator's metadata format turned into :class:`GenerationFacts`.

Formats, as their writers produce them (the tests cite each writer's file):

* **A1111 / Forge infotext** (``parameters`` PNG text, or EXIF UserComment in JPEG/WebP): the prompt,
  an optional ``Negative prompt:`` line, and a last line of ``Key: value`` pairs, values with commas
  JSON-quoted. ``Model hash`` is the checkpoint's AutoV2 (older versions: AutoV1), ``Lora hashes`` is
  ``"alias: hash, …"`` where hash is the LoRA's ``sshs_model_hash`` if it has one, else its AutoV3, cut to
  12 hex; ``TI hashes`` the embeddings' SHA-256 cut to 12; Civitai's extension adds ``Hashes: {json}``
  (``model``, ``lora:NAME``, ``embed:NAME``, ``vae``). ``<lora:name:weight>`` and ``<lyco:…>`` in the
  prompt name the networks and their weights. Forge writes the same, with ``Version: f…``.
* **ComfyUI**: ``prompt`` (the API graph that ran: node id → ``class_type`` + ``inputs``, links as
  ``[node_id, slot]``) and ``workflow`` (the editor graph: ``nodes`` with ``widgets_values`` and ``mode``,
  ``links``, ``groups``, group-node and subgraph definitions in ``extra``/``definitions``).
* **InvokeAI**: ``invokeai_metadata`` JSON (``model`` {name, key, hash, base}, ``loras`` [{model, weight}],
  ``vae``, ``positive_prompt``, ``seed`` …).
* **Fooocus**: ``parameters`` JSON with ``fooocus_scheme`` = ``fooocus`` (``base_model``,
  ``base_model_hash``, ``loras`` [[name, weight, hash]] …), or A1111 infotext when the scheme is ``a1111``.
* **NovelAI**: ``Software`` = ``NovelAI``, ``Source`` (model name and NovelAI's own hash), ``Comment`` JSON.
* **SwarmUI**: ``parameters`` JSON with ``sui_image_params`` and, optionally, ``sui_models``
  [{name, param, hash: "0x" + SHA-256 of the tensor data}].

Everything here is data: JSON is parsed with a size and nesting guard, nothing is evaluated.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from registry.findings import Finding, finding
from registry.trace.facts import (
    R_BAD_JSON,
    R_JSON_TOO_DEEP,
    R_LIMIT,
    GenerationFacts,
    HashClaim,
    ModelRef,
    TextEntry,
)

MAX_JSON_BYTES = 8 << 20
MAX_JSON_DEPTH = 64
MAX_REFS = 500
MAX_NODES = 20_000
MODEL_EXTS = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft", ".pkl")


def load_json(text: str, where: str, findings: list[Finding]) -> Any:
    """JSON with a size and nesting-depth guard; None (and a finding) when it does not parse or nests too deep.

    The decoder itself refuses nesting past the interpreter's recursion limit (RecursionError, caught);
    what it returns is then measured iteratively and refused past ``MAX_JSON_DEPTH``, so no later walk of
    the value can recurse deeply. Both steps are linear in the text."""
    if len(text) > MAX_JSON_BYTES:
        findings.append(finding(R_JSON_TOO_DEEP.id, f"{where}: {len(text)} bytes of JSON, over {MAX_JSON_BYTES}; not parsed"))
        return None
    try:
        value = json.loads(text)
    except RecursionError:
        findings.append(finding(R_JSON_TOO_DEEP.id, f"{where}: JSON nested too deep to parse; not parsed"))
        return None
    except ValueError as e:
        findings.append(finding(R_BAD_JSON.id, f"{where}: not JSON ({str(e)[:120]})", where=where))
        return None
    if json_depth(value) > MAX_JSON_DEPTH:
        findings.append(finding(R_JSON_TOO_DEEP.id, f"{where}: JSON nested deeper than {MAX_JSON_DEPTH}; not used"))
        return None
    return value


def json_depth(value: Any) -> int:
    """Nesting depth of a decoded JSON value (a scalar is 0), level by level, without recursion."""
    depth = 0
    level = [value] if isinstance(value, dict | list) else []
    while level:
        depth += 1
        items: list[Any] = []
        for v in level:
            items.extend(v.values() if isinstance(v, dict) else v)
        level = [x for x in items if isinstance(x, dict | list)]
    return depth


def parse_hash(value: Any, source: str) -> HashClaim | None:
    """A hash claim from ``sha256:…``, ``blake3:…``, ``0x…`` (tensor hash) or bare hex."""
    if not isinstance(value, str):
        return None
    s = value.strip().lower()
    algo = None
    if ":" in s:
        a, _, s = s.partition(":")
        algo = {"sha256": "sha256", "blake3": "blake3", "autov2": "sha256", "autov3": "tensor"}.get(a.strip())
        s = s.strip()
        if algo is None:
            return None
    elif s.startswith("0x"):
        algo, s = "tensor", s[2:]
    if not re.fullmatch(r"[0-9a-f]{6,64}", s):
        return None
    return HashClaim(s, source, algo)


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if f == f and abs(f) != float("inf") else None


def _int(v: Any) -> int | None:
    f = _num(v)
    return int(f) if f is not None and f.is_integer() else None


def _text(v: Any, n: int = 100_000) -> str | None:
    return v[:n] if isinstance(v, str) else None


def _seed(v: Any) -> str | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str) and v.strip().lstrip("-").isdigit():
        return v.strip()
    return None


# -- A1111 / Forge infotext ---------------------------------------------------------------------------

#: ``Key: value``: a key, then a JSON-quoted string or text up to the next comma (as A1111's infotext writes)
_KEY = re.compile(r"\s*(\w[\w \-/]*+):\s*")
_QUOTED = re.compile(r'"(?:\\.|[^\\"])*+"')


def param_pairs(line: str) -> list[tuple[str, str]]:
    """The ``Key: value`` pairs of an infotext parameter line, in linear time: a key is only tried where a
    pair can start (line start or after a comma), so a long run without a colon cannot make it quadratic."""
    out: list[tuple[str, str]] = []
    pos, n = 0, len(line)
    while pos < n and len(out) < 1000:
        m = _KEY.match(line, pos)
        if m is None:
            nxt = line.find(",", pos)
            if nxt < 0:
                break
            pos = nxt + 1
            continue
        key, vpos = m.group(1), m.end()
        q = _QUOTED.match(line, vpos) if line.startswith('"', vpos) else None
        if q is not None:
            value, end = q.group(0), q.end()
        else:
            end = line.find(",", vpos)
            end = n if end < 0 else end
            value = line[vpos:end]
        out.append((key, value))
        nxt = line.find(",", end)
        if nxt < 0:
            break
        pos = nxt + 1
    return out
_NETWORK_TAG = re.compile(r"<(lora|lyco):([^:>]+)((?::[^:>]*)*)>", re.I)
_NAME_HASH = re.compile(r"^(.*?)\s*\[([0-9a-fA-F]{8,64})\]$")


def _unquote(v: str) -> str:
    if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
        try:
            out = json.loads(v)
            return out if isinstance(out, str) else v
        except ValueError:
            return v
    return v


def parse_infotext(text: str, findings: list[Finding]) -> GenerationFacts | None:
    """A1111/Forge generation parameters; None when the text has no parameter line."""
    text = text[:1_000_000]
    *lines, last = text.strip().split("\n")
    # Civitai's extension often writes Hashes as bare JSON (commas unquoted): take it out whole first
    hashes_json = None
    i = last.find("Hashes: {")
    if i >= 0 and (i == 0 or last[i - 1] in " ,"):
        try:
            obj, end = json.JSONDecoder().raw_decode(last[i + 8 : i + 8 + 65536])
            if isinstance(obj, dict):
                hashes_json = json.dumps(obj)
                last = last[:i] + last[i + 8 + end :].lstrip(", ")
        except (ValueError, RecursionError):
            pass
    pairs = param_pairs(last)
    if len(pairs) < 3:
        return None
    prompt_lines: list[str] = []
    neg_lines: list[str] = []
    in_neg = False
    for line in lines:
        if line.startswith("Negative prompt:"):
            in_neg = True
            line = line[len("Negative prompt:") :].strip()
        (neg_lines if in_neg else prompt_lines).append(line)
    params: dict[str, str] = {}
    for k, v in pairs[:500]:
        params[k.strip()] = _unquote(v.strip())
    if hashes_json is not None:
        params["Hashes"] = hashes_json
    version = params.get("Version")
    gen = "Forge" if version and re.match(r"^f\d", version) else "A1111"
    f = GenerationFacts(generator=gen, generator_version=version)
    f.prompt = "\n".join(prompt_lines).strip() or None
    f.negative_prompt = "\n".join(neg_lines).strip() or None
    f.sampler = params.get("Sampler")
    f.scheduler = params.get("Schedule type")
    f.seed = _seed(params.get("Seed"))
    f.steps = _int(params.get("Steps"))
    f.cfg_scale = _num(params.get("CFG scale"))
    m = re.match(r"^(\d+)x(\d+)$", params.get("Size", ""))
    if m:
        f.width, f.height = int(m.group(1)), int(m.group(2))
    refs = _Refs()
    ckpt = refs.get("checkpoint", params.get("Model"), "infotext Model")
    if params.get("Model hash"):
        refs.claim(ckpt, params["Model hash"], "Model hash")
    if params.get("VAE") or params.get("VAE hash"):
        vae = refs.get("vae", params.get("VAE"), "infotext VAE")
        if params.get("VAE hash"):
            refs.claim(vae, params["VAE hash"], "VAE hash")
    if params.get("Refiner"):
        m2 = _NAME_HASH.match(params["Refiner"])
        r = refs.get("refiner", m2.group(1) if m2 else params["Refiner"], "infotext Refiner")
        if m2:
            refs.claim(r, m2.group(2), "Refiner")
    for role, key in (("lora", "Lora hashes"), ("embedding", "TI hashes")):
        for item in params.get(key, "").split(","):
            name, sep, h = item.rpartition(":")
            if sep and name.strip():
                refs.claim(refs.get(role, name.strip(), f"infotext {key}"), h.strip(), key)
    # Civitai's extension: Hashes: {"model": …, "lora:NAME": …, "embed:NAME": …, "vae": …}
    if params.get("Hashes"):
        hj = load_json(params["Hashes"], "infotext Hashes", findings)
        if isinstance(hj, Mapping):
            for k, v in list(hj.items())[:MAX_REFS]:
                if not isinstance(k, str):
                    continue
                if k == "model":
                    refs.claim(ckpt, v, "Hashes.model")
                elif k == "vae":
                    refs.claim(refs.get("vae", params.get("VAE"), "infotext VAE"), v, "Hashes.vae")
                elif ":" in k:
                    kind, _, name = k.partition(":")
                    hrole = {"lora": "lora", "lyco": "lycoris", "embed": "embedding", "hypernet": "hypernetwork"}.get(kind)
                    if hrole:
                        refs.claim(refs.get(hrole, name, "infotext Hashes"), v, f"Hashes.{k}")
    for tag, name, rest in _NETWORK_TAG.findall(f.prompt or "")[:MAX_REFS]:
        role = "lycoris" if tag.lower() == "lyco" else "lora"
        ref = refs.get(role, name.strip(), "prompt <" + tag.lower() + ">", also=("lora", "lycoris"))
        positional = [p for p in rest.split(":")[1:] if "=" not in p]
        if positional and ref.weight is None:
            ref.weight = _num(positional[0])
        elif ref.weight is None:
            ref.weight = 1.0
    f.refs = refs.list(findings)
    f.params = {k: v for k, v in params.items() if k not in ("Lora hashes", "TI hashes", "Hashes")}
    return f


class _Refs:
    """References keyed by role and normalised name, so that one model named in several places is one ref."""

    def __init__(self) -> None:
        self.by_key: dict[tuple[str, str], ModelRef] = {}
        self.order: list[ModelRef] = []

    @staticmethod
    def norm(name: str | None) -> str:
        # A1111 strips ':' and ',' from aliases in "Lora hashes"
        return re.sub(r"[:,]", "", (name or "")).strip().lower()

    def get(self, role: str, name: str | None, source: str, also: tuple[str, ...] = ()) -> ModelRef:
        key = self.norm(name)
        for r in (role, *also):
            got = self.by_key.get((r, key))
            if got is not None:
                return got
        ref = ModelRef(role=role, name=name.strip() if isinstance(name, str) and name.strip() else None, source=source)
        self.by_key[(role, key)] = ref
        self.order.append(ref)
        return ref

    def claim(self, ref: ModelRef, value: Any, source: str) -> None:
        h = parse_hash(value, source)
        if h is not None and all(x.value != h.value for x in ref.hashes):
            ref.hashes.append(h)

    def list(self, findings: list[Finding]) -> list[ModelRef]:
        refs = [r for r in self.order if r.name or r.hashes]
        if len(refs) > MAX_REFS:
            findings.append(finding(R_LIMIT.id, f"{len(refs)} model references; kept the first {MAX_REFS}"))
        return refs[:MAX_REFS]


# -- ComfyUI ------------------------------------------------------------------------------------------

#: loader class → (role, name input, weight input)
_COMFY_LOADERS: dict[str, tuple[str, str, str | None]] = {
    "CheckpointLoaderSimple": ("checkpoint", "ckpt_name", None),
    "CheckpointLoader": ("checkpoint", "ckpt_name", None),
    "ImageOnlyCheckpointLoader": ("checkpoint", "ckpt_name", None),
    "unCLIPCheckpointLoader": ("checkpoint", "ckpt_name", None),
    "UNETLoader": ("unet", "unet_name", None),
    "UnetLoaderGGUF": ("unet", "unet_name", None),
    "LoraLoader": ("lora", "lora_name", "strength_model"),
    "LoraLoaderModelOnly": ("lora", "lora_name", "strength_model"),
    "VAELoader": ("vae", "vae_name", None),
    "ControlNetLoader": ("controlnet", "control_net_name", None),
    "CLIPLoader": ("text_encoder", "clip_name", None),
    "UpscaleModelLoader": ("upscaler", "model_name", None),
}
#: the same loaders' widget order in the editor graph (workflow ``widgets_values``)
_COMFY_WIDGETS: dict[str, tuple[str, int, int | None]] = {
    "CheckpointLoaderSimple": ("checkpoint", 0, None),
    "UNETLoader": ("unet", 0, None),
    "LoraLoader": ("lora", 0, 1),
    "LoraLoaderModelOnly": ("lora", 0, 1),
    "VAELoader": ("vae", 0, None),
    "ControlNetLoader": ("controlnet", 0, None),
}
_LOADERISH = re.compile(r"load|lora|lyco|checkpoint|ckpt|unet|model", re.I)
_SAMPLERS = ("KSampler", "KSamplerAdvanced", "SamplerCustom")
_STACK_NAME = re.compile(r"^lora_name_(\d+)$|^lora_(\d+)_name$")


def _role_from_key(key: str) -> str:
    k = key.lower()
    for word, role in (("lora", "lora"), ("lyco", "lycoris"), ("ckpt", "checkpoint"), ("checkpoint", "checkpoint"),
                       ("unet", "unet"), ("vae", "vae"), ("control", "controlnet"), ("embed", "embedding")):  # fmt: skip
        if word in k:
            return role
    return "model"


def _is_model_file(v: Any) -> bool:
    return isinstance(v, str) and len(v) < 1024 and v.lower().endswith(MODEL_EXTS)


def parse_comfy_prompt(graph: Mapping[str, Any], findings: list[Finding]) -> GenerationFacts:
    f = GenerationFacts(generator="ComfyUI")
    nodes = {str(k): v for k, v in list(graph.items())[:MAX_NODES] if isinstance(v, Mapping)}
    if len(graph) > MAX_NODES:
        findings.append(finding(R_LIMIT.id, f"ComfyUI prompt with {len(graph)} nodes; read the first {MAX_NODES}"))

    def literal(v: Any, depth: int = 0) -> Any:
        """An input's value, following links ``[node_id, slot]`` to primitive/string nodes (bounded)."""
        if isinstance(v, list) and len(v) == 2 and isinstance(v[1], int) and depth < 8:
            src = nodes.get(str(v[0]))
            if src is None:
                return None
            ins = src.get("inputs")
            if not isinstance(ins, Mapping):
                return None
            for k in ("value", "string", "text", "ckpt_name", "lora_name", "seed", "noise_seed", "int", "float"):
                if k in ins:
                    return literal(ins[k], depth + 1)
            return None
        return v

    refs: list[ModelRef] = []
    for nid, node in nodes.items():
        ctype = node.get("class_type")
        ins = node.get("inputs")
        if not isinstance(ctype, str) or not isinstance(ins, Mapping):
            continue
        src = f"comfyui:{nid}:{ctype}"
        used: set[str] = set()
        if ctype in _COMFY_LOADERS:
            role, name_key, weight_key = _COMFY_LOADERS[ctype]
            name = literal(ins.get(name_key))
            if isinstance(name, str):
                ref = ModelRef(role=role, name=name, source=src)
                if weight_key:
                    ref.weight = _num(literal(ins.get(weight_key)))
                    if "strength_clip" in ins:
                        ref.extra["strength_clip"] = _num(literal(ins.get("strength_clip")))
                refs.append(ref)
                used.add(name_key)
        # LoRA stacks: lora_name_N (+ lora_wt_N / model_str_N / model_weight_N, switch_N On/Off), and
        # dict inputs {"on", "lora", "strength"} (rgthree's Power Lora Loader)
        for key, raw in ins.items():
            if not isinstance(key, str) or key in used:
                continue
            v = literal(raw)
            m = _STACK_NAME.match(key)
            if m and isinstance(v, str):
                if v in ("None", "none", ""):
                    continue
                i = m.group(1) or m.group(2)
                switch = literal(ins.get(f"switch_{i}"))
                w = None
                for wk in (f"lora_wt_{i}", f"model_str_{i}", f"model_weight_{i}", f"strength_{i}", f"lora_{i}_strength"):
                    if wk in ins:
                        w = _num(literal(ins[wk]))
                        break
                refs.append(ModelRef(role="lora", name=v, weight=w, source=f"{src}.{key}", active=switch != "Off"))
            elif isinstance(v, Mapping) and isinstance(v.get("lora"), str):
                if v["lora"] in ("None", ""):
                    continue
                refs.append(ModelRef(role="lora", name=v["lora"], weight=_num(v.get("strength")),
                                     source=f"{src}.{key}", active=v.get("on", True) is not False))  # fmt: skip
            elif _is_model_file(raw) and ctype not in _COMFY_LOADERS and _LOADERISH.search(ctype):
                # a custom loader's literal file input (links are followed only for known name inputs)
                refs.append(ModelRef(role=_role_from_key(key), name=raw, source=f"{src}.{key}"))
            elif key.endswith("_hash") or key in ("hash", "model_hash", "ckpt_hash"):
                h = parse_hash(v, f"{src}.{key}")
                if h is not None and refs and refs[-1].source.startswith(src):
                    refs[-1].hashes.append(h)
        if ctype in _SAMPLERS and f.seed is None:
            f.seed = _seed(literal(ins.get("seed", ins.get("noise_seed"))))
            f.steps = _int(literal(ins.get("steps")))
            f.cfg_scale = _num(literal(ins.get("cfg")))
            f.sampler = _text(literal(ins.get("sampler_name")))
            f.scheduler = _text(literal(ins.get("scheduler")))
            for key, attr in (("positive", "prompt"), ("negative", "negative_prompt")):
                link = ins.get(key)
                if isinstance(link, list) and link:
                    enc = nodes.get(str(link[0]))
                    if enc is not None and isinstance(enc.get("inputs"), Mapping):
                        t = literal(enc["inputs"].get("text", enc["inputs"].get("text_g")))
                        if isinstance(t, str):
                            setattr(f, attr, t[:100_000])
        if ctype == "EmptyLatentImage" and f.width is None:
            f.width, f.height = _int(literal(ins.get("width"))), _int(literal(ins.get("height")))
    f.refs = refs[:MAX_REFS]
    return f


def comfy_workflow_refs(wf: Mapping[str, Any], findings: list[Finding]) -> list[ModelRef]:
    """Loader nodes of the editor graph, including those inside group nodes and subgraphs; a node muted
    (mode 2) or bypassed (mode 4) did not run and is marked inactive."""
    out: list[ModelRef] = []
    lists: list[tuple[str, Any]] = [("workflow", wf.get("nodes"))]
    extra = wf.get("extra")
    if isinstance(extra, Mapping) and isinstance(extra.get("groupNodes"), Mapping):
        for gname, g in list(extra["groupNodes"].items())[:1000]:
            if isinstance(g, Mapping):
                lists.append((f"group node {gname}", g.get("nodes")))
    defs = wf.get("definitions")
    if isinstance(defs, Mapping) and isinstance(defs.get("subgraphs"), list):
        for sg in defs["subgraphs"][:1000]:
            if isinstance(sg, Mapping):
                lists.append((f"subgraph {sg.get('name') or sg.get('id')}", sg.get("nodes")))
    seen = 0
    for where, nodes in lists:
        if not isinstance(nodes, list):
            continue
        for node in nodes:
            seen += 1
            if seen > MAX_NODES:
                findings.append(finding(R_LIMIT.id, f"ComfyUI workflow with more than {MAX_NODES} nodes; stopped"))
                return out
            if not isinstance(node, Mapping):
                continue
            ntype = node.get("type")
            widgets = node.get("widgets_values")
            if not isinstance(ntype, str) or not isinstance(widgets, list):
                continue
            active = node.get("mode", 0) not in (2, 4)
            src = f"{where}:{node.get('id')}:{ntype}"
            if ntype in _COMFY_WIDGETS:
                role, ni, wi = _COMFY_WIDGETS[ntype]
                if ni < len(widgets) and isinstance(widgets[ni], str):
                    w = _num(widgets[wi]) if wi is not None and wi < len(widgets) else None
                    out.append(ModelRef(role=role, name=widgets[ni], weight=w, source=src, active=active))
                continue
            for v in widgets[:200]:
                if _is_model_file(v):
                    out.append(ModelRef(role=_role_from_key(ntype), name=v, source=src, active=active))
                elif isinstance(v, Mapping) and isinstance(v.get("lora"), str) and v["lora"] not in ("None", ""):
                    out.append(ModelRef(role="lora", name=v["lora"], weight=_num(v.get("strength")), source=src,
                                        active=active and v.get("on", True) is not False))  # fmt: skip
    return out[:MAX_REFS]


# -- InvokeAI -----------------------------------------------------------------------------------------


def _invoke_model(m: Any, role: str, source: str) -> ModelRef | None:
    if not isinstance(m, Mapping):
        return None
    name = m.get("name") or m.get("model_name")
    ref = ModelRef(role=role, name=name if isinstance(name, str) else None, source=source)
    h = parse_hash(m.get("hash"), f"{source}.hash")
    if h is not None:
        ref.hashes.append(h)
    if isinstance(m.get("base") or m.get("base_model"), str):
        ref.extra["base"] = m.get("base") or m.get("base_model")
    if isinstance(m.get("key"), str):
        ref.extra["key"] = m["key"]
    return ref if (ref.name or ref.hashes) else None


def parse_invokeai(md: Mapping[str, Any]) -> GenerationFacts:
    f = GenerationFacts(generator="InvokeAI", generator_version=_text(md.get("app_version")))
    f.prompt = _text(md.get("positive_prompt"))
    f.negative_prompt = _text(md.get("negative_prompt"))
    f.seed = _seed(md.get("seed"))
    f.steps = _int(md.get("steps"))
    f.cfg_scale = _num(md.get("cfg_scale"))
    f.scheduler = _text(md.get("scheduler"))
    f.width, f.height = _int(md.get("width")), _int(md.get("height"))
    refs: list[ModelRef] = []
    for key, role in (("model", "checkpoint"), ("vae", "vae"), ("refiner_model", "refiner")):
        r = _invoke_model(md.get(key), role, f"invokeai.{key}")
        if r:
            refs.append(r)
    loras = md.get("loras")
    if isinstance(loras, list):
        for i, item in enumerate(loras[:MAX_REFS]):
            if not isinstance(item, Mapping):
                continue
            r = _invoke_model(item.get("model") or item.get("lora"), "lora", f"invokeai.loras[{i}]")
            if r:
                r.weight = _num(item.get("weight"))
                refs.append(r)
    f.refs = refs
    f.params = {k: md[k] for k in ("generation_mode", "rand_device", "clip_skip") if k in md}
    return f


# -- Fooocus, NovelAI, SwarmUI --------------------------------------------------------------------------


def parse_fooocus(d: Mapping[str, Any]) -> GenerationFacts:
    f = GenerationFacts(generator="Fooocus", generator_version=_text(d.get("version")))
    f.prompt = _text(d.get("prompt"))
    f.negative_prompt = _text(d.get("negative_prompt"))
    f.seed = _seed(d.get("seed"))
    f.steps = _int(d.get("steps"))
    f.cfg_scale = _num(d.get("guidance_scale"))
    f.sampler = _text(d.get("sampler"))
    f.scheduler = _text(d.get("scheduler"))
    m = re.match(r"^\(?\s*(\d+)\s*,\s*(\d+)\s*\)?$", str(d.get("resolution", "")))
    if m:
        f.width, f.height = int(m.group(1)), int(m.group(2))
    refs = _Refs()
    for name_key, hash_key, role in (("base_model", "base_model_hash", "checkpoint"),
                                     ("refiner_model", "refiner_model_hash", "refiner")):  # fmt: skip
        name = d.get(name_key)
        if isinstance(name, str) and name not in ("None", ""):
            refs.claim(refs.get(role, name, f"fooocus.{name_key}"), d.get(hash_key), hash_key)
    loras = d.get("loras")
    if isinstance(loras, list):
        for item in loras[:MAX_REFS]:
            if isinstance(item, list) and item and isinstance(item[0], str):
                ref = refs.get("lora", item[0], "fooocus.loras")
                ref.weight = _num(item[1]) if len(item) > 1 else None
                if len(item) > 2:
                    refs.claim(ref, item[2], "fooocus.loras hash")
    f.refs = refs.list([])
    return f


def parse_novelai(texts: Mapping[str, str], findings: list[Finding]) -> GenerationFacts:
    f = GenerationFacts(generator="NovelAI")
    src = texts.get("Source", "")
    m = re.match(r"^(.*?)\s+([0-9A-Fa-f]{8})$", src.strip())
    if src:
        # NovelAI's own short model hash: not a hash of any file a registry can hold
        ref = ModelRef(role="checkpoint", name=(m.group(1) if m else src).strip(), source="novelai Source")
        if m:
            ref.hashes.append(HashClaim(m.group(2).lower(), "novelai Source", "opaque"))
        f.refs = [ref]
    c = load_json(texts.get("Comment", ""), "NovelAI Comment", findings) if texts.get("Comment") else None
    if isinstance(c, Mapping):
        f.prompt = _text(c.get("prompt")) or _text(texts.get("Description"))
        f.negative_prompt = _text(c.get("uc"))
        f.seed = _seed(c.get("seed"))
        f.steps = _int(c.get("steps"))
        f.cfg_scale = _num(c.get("scale"))
        f.sampler = _text(c.get("sampler"))
        f.width, f.height = _int(c.get("width")), _int(c.get("height"))
    else:
        f.prompt = _text(texts.get("Description"))
    return f


def parse_swarmui(d: Mapping[str, Any]) -> GenerationFacts:
    p = d.get("sui_image_params")
    p = p if isinstance(p, Mapping) else {}
    f = GenerationFacts(generator="SwarmUI", generator_version=_text(p.get("swarm_version")))
    f.prompt = _text(p.get("prompt"))
    f.negative_prompt = _text(p.get("negativeprompt"))
    f.seed = _seed(p.get("seed"))
    f.steps = _int(p.get("steps"))
    f.cfg_scale = _num(p.get("cfgscale"))
    f.sampler = _text(p.get("sampler"))
    f.scheduler = _text(p.get("scheduler"))
    f.width, f.height = _int(p.get("width")), _int(p.get("height"))
    refs = _Refs()
    if isinstance(p.get("model"), str):
        refs.get("checkpoint", p["model"], "sui_image_params.model")
    loras = p.get("loras")
    weights = p.get("loraweights")
    names = loras.split(",") if isinstance(loras, str) else loras if isinstance(loras, list) else []
    ws = weights.split(",") if isinstance(weights, str) else weights if isinstance(weights, list) else []
    for i, n in enumerate(names[:MAX_REFS]):
        if isinstance(n, str) and n.strip():
            ref = refs.get("lora", n.strip(), "sui_image_params.loras")
            ref.weight = _num(ws[i]) if i < len(ws) else None
    models = d.get("sui_models")
    if isinstance(models, list):
        for m in models[:MAX_REFS]:
            if not isinstance(m, Mapping) or not isinstance(m.get("name"), str):
                continue
            param = m.get("param")
            role = "checkpoint" if param == "model" else "lora" if "lora" in str(param) else _role_from_key(str(param))
            # sui_models names carry the .safetensors suffix that sui_image_params leaves out
            stem = re.sub(r"\.(safetensors|ckpt|pt|sft|gguf)$", "", m["name"])
            refs.claim(refs.get(role, stem, "sui_models"), m.get("hash"), "sui_models.hash")
    f.refs = refs.list([])
    return f


# -- dispatch -----------------------------------------------------------------------------------------


def parse_generation(texts: Iterable[TextEntry], findings: list[Finding]) -> list[GenerationFacts]:
    """Every generator's facts found among the image's metadata texts."""
    by_key: dict[str, str] = {}
    for t in texts:
        by_key.setdefault(t.key, t.text)
        if t.key == "UserComment" or t.source.endswith(":UserComment"):
            by_key.setdefault("parameters", t.text)
        # ComfyUI's SaveAnimatedWEBP: EXIF Model "prompt:{json}", Make "workflow:{json}"
        if t.key in ("Model", "Make", "ImageDescription") and re.match(r"^(prompt|workflow):\s*[{\[]", t.text):
            k, _, v = t.text.partition(":")
            by_key.setdefault(k, v)
    out: list[GenerationFacts] = []
    if "invokeai_metadata" in by_key:
        md = load_json(by_key["invokeai_metadata"], "invokeai_metadata", findings)
        if isinstance(md, Mapping):
            out.append(parse_invokeai(md))
    if "prompt" in by_key or "workflow" in by_key:
        graph = load_json(by_key["prompt"], "ComfyUI prompt", findings) if "prompt" in by_key else None
        wf = load_json(by_key["workflow"], "ComfyUI workflow", findings) if "workflow" in by_key else None
        if isinstance(graph, Mapping) and any(isinstance(v, Mapping) and "class_type" in v for v in list(graph.values())[:50]):
            facts = parse_comfy_prompt(graph, findings)
            if isinstance(wf, Mapping):
                ran = {(r.role, r.name) for r in facts.refs}
                for r in comfy_workflow_refs(wf, findings):
                    if not r.active and (r.role, r.name) not in ran:
                        facts.refs.append(r)  # in the editor graph but did not run: reported, never linked
            out.append(facts)
        elif isinstance(wf, Mapping):
            facts = GenerationFacts(generator="ComfyUI")
            facts.refs = comfy_workflow_refs(wf, findings)
            facts.params["note"] = "from the editor workflow only (no prompt graph): widget values, not what ran"
            out.append(facts)
    if by_key.get("Software", "").startswith("NovelAI") or ("Comment" in by_key and "Source" in by_key):
        out.append(parse_novelai(by_key, findings))
    params = by_key.get("parameters")
    if params is not None and not any(f.generator == "InvokeAI" for f in out):
        s = params.lstrip()
        if s.startswith("{"):
            d = load_json(s, "parameters", findings)
            if isinstance(d, Mapping):
                if "sui_image_params" in d:
                    out.append(parse_swarmui(d))
                elif "base_model" in d or by_key.get("fooocus_scheme") == "fooocus":
                    out.append(parse_fooocus(d))
        else:
            f = parse_infotext(params, findings)
            if f is not None:
                if by_key.get("fooocus_scheme") or (f.generator_version or "").startswith("Fooocus"):
                    f.generator = "Fooocus"
                out.append(f)
    return out
