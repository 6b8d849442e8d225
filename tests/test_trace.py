"""modelreg trace: image metadata readers, generator parsers, registry matching, records and the CLI.

Fixtures follow each writer's code (read with the search tools):

* A1111 ``modules/processing.py`` ``create_infotext`` (prompt, ``Negative prompt:``, one line of
  ``Key: value`` pairs, values with commas JSON-quoted by ``modules/infotext_utils.py`` ``quote``);
  ``extensions-builtin/Lora/extra_networks_lora.py`` (``Lora hashes`` = ``"alias: shorthash, …"``, alias
  stripped of ``:`` and ``,``); ``extensions-builtin/Lora/network.py`` (``NetworkOnDisk``: the hash is the
  file's ``sshs_model_hash`` if present, else the addnet hash (SHA-256 of the tensor data); shorthash is
  its first 12 hex); ``modules/sd_hijack_clip.py`` (``TI hashes``); ``modules/images.py`` (PNG
  ``parameters`` text; JPEG/WebP EXIF UserComment via ``piexif.helper.UserComment.dump(…, encoding="unicode")``).
* ComfyUI ``nodes.py`` ``SaveImage`` (``PngInfo.add_text("prompt", json.dumps(prompt))`` and one text
  per ``extra_pnginfo`` key, i.e. ``workflow``).
* InvokeAI ``invokeai/app/invocations/metadata.py`` ``CoreMetadataInvocation`` (``model``/``loras``
  [{model: ModelIdentifierField{key, hash, name, base, type}, weight}], ``positive_prompt`` …).
* SwarmUI ``docs/Image Metadata Format.md`` (``sui_image_params``, ``sui_models`` with ``0x`` tensor hashes).
* Fooocus ``modules/meta_parser.py`` ``FooocusMetadataParser`` (``base_model``, ``base_model_hash``, ``loras``).
"""

from __future__ import annotations

import hashlib
import json
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry.trace.facts import TextEntry
from registry.trace.match import Matcher
from registry.trace.parsers import load_json, parse_generation, parse_infotext
from registry.trace.readers import MAX_TEXT_BYTES, read_metadata
from registry.trace.trace import trace_file
from tests.builders import write_safetensors
from tests.image_builders import (
    PNG_SIG,
    chunk,
    jpeg_with_user_comment,
    png_bytes,
    png_texts,
    text_chunk,
    webp_with_user_comment,
)

A1111_INFOTEXT = (
    "a photo of ohwx person, <lora:ohwxStyle:0.8>, <lyco:oldLoha:0.6:0.4>, embedding bad_hands\n"
    "Negative prompt: blurry, lowres\n"
    "Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 1234567890, "
    'Size: 832x1216, Model hash: {model_hash}, Model: juggernautXL_v9, VAE hash: 235745af8d, VAE: sdxl_vae.safetensors, '
    'Lora hashes: "ohwxStyle: {lora_hash}, oldLoha: {lyco_hash}", TI hashes: "bad_hands: {ti_hash}", '
    "Version: v1.10.1"
)


def _rid(rows: list, role: str) -> list:
    return [r for r in rows if r.role == role]


# -- readers ------------------------------------------------------------------------------------------


def test_png_text_chunks_all_three_kinds() -> None:
    data = png_bytes(
        [text_chunk("parameters", "plain latin-1 é"), text_chunk("zkey", "compressed", "zTXt"),
         text_chunk("ikey", "ünïcode ✓", "iTXt"), text_chunk("izkey", "zipped ✓", "iTXt-z")],
        after_idat=[text_chunk("late", "after the pixels")],
    )  # fmt: skip
    meta = read_metadata(data)
    assert meta.format == "png" and (meta.width, meta.height) == (4, 3)
    assert [(t.source, t.key, t.text) for t in meta.texts] == [
        ("png:tEXt", "parameters", "plain latin-1 é"),
        ("png:zTXt", "zkey", "compressed"),
        ("png:iTXt", "ikey", "ünïcode ✓"),
        ("png:iTXt", "izkey", "zipped ✓"),
        ("png:tEXt", "late", "after the pixels"),
    ]
    assert meta.findings == []


def test_png_reader_agrees_with_pillow_on_files_pillow_writes() -> None:
    """Independent answer: Pillow's PngInfo (what ComfyUI and A1111 use to write) and Pillow's reader."""
    pil = pytest.importorskip("PIL.Image")
    import io

    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("prompt", json.dumps({"3": {"class_type": "KSampler", "inputs": {"seed": 5}}}))
    info.add_text("workflow", "ünïcode workflow ✓")  # not latin-1: Pillow writes iTXt
    info.add_text("zipped", "x" * 5000, zip=True)  # zTXt
    buf = io.BytesIO()
    pil.new("RGB", (5, 7)).save(buf, format="PNG", pnginfo=info)
    ours = {t.key: t.text for t in read_metadata(buf.getvalue()).texts}
    theirs = dict(pil.open(io.BytesIO(buf.getvalue())).text)
    assert ours == theirs
    assert read_metadata(buf.getvalue()).width == 5


def test_jpeg_user_comment_as_a1111_writes_it() -> None:
    pytest.importorskip("piexif")
    pytest.importorskip("PIL")
    text = A1111_INFOTEXT.format(model_hash="a" * 10, lora_hash="b" * 12, lyco_hash="c" * 12, ti_hash="d" * 12)
    meta = read_metadata(jpeg_with_user_comment(text + " ✓"))
    assert meta.format == "jpeg" and (meta.width, meta.height) == (8, 6)
    uc = [t for t in meta.texts if t.key == "UserComment"]
    assert [t.text for t in uc] == [text + " ✓"]
    meta_ascii = read_metadata(jpeg_with_user_comment("Steps: 1, Seed: 2, Size: 8x6", encoding="ascii"))
    assert [t.text for t in meta_ascii.texts if t.key == "UserComment"] == ["Steps: 1, Seed: 2, Size: 8x6"]


def test_webp_user_comment_as_a1111_writes_it() -> None:
    pytest.importorskip("piexif")
    pytest.importorskip("PIL")
    meta = read_metadata(webp_with_user_comment("hello, Steps: 3, Seed: 4, Size: 8x6"))
    assert meta.format == "webp"
    assert [t.text for t in meta.texts if t.key == "UserComment"] == ["hello, Steps: 3, Seed: 4, Size: 8x6"]


def _jpeg_with_app1(payload: bytes) -> bytes:
    return b"\xff\xd8" + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + b"\xff\xda\x00\x02" + b"\0" * 16 + b"\xff\xd9"


def _tiff_user_comment(body: bytes, bo: str = "<") -> bytes:
    """IFD0 with an Exif IFD pointer, Exif IFD with UserComment (type 7), in byte order ``bo``."""
    mark = b"II" if bo == "<" else b"MM"
    ifd0_off = 8
    exif_off = ifd0_off + 2 + 12 + 4
    val_off = exif_off + 2 + 12 + 4
    t = mark + struct.pack(bo + "HI", 42, ifd0_off)
    t += struct.pack(bo + "H", 1) + struct.pack(bo + "HHII", 0x8769, 4, 1, exif_off) + struct.pack(bo + "I", 0)
    t += struct.pack(bo + "H", 1) + struct.pack(bo + "HHII", 0x9286, 7, len(body), val_off) + struct.pack(bo + "I", 0)
    return t + body


def test_user_comment_utf16_little_endian_and_byte_order_detection() -> None:
    for bo in ("<", ">"):
        for enc in ("utf-16-le", "utf-16-be"):
            body = b"UNICODE\0" + "Steps: 20, Seed: 1, Size: 512x512".encode(enc)
            meta = read_metadata(_jpeg_with_app1(b"Exif\0\0" + _tiff_user_comment(body, bo)))
            assert [t.text for t in meta.texts] == ["Steps: 20, Seed: 1, Size: 512x512"], (bo, enc)


def test_xmp_user_comment() -> None:
    xmp = (
        b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF><rdf:Description>"
        b"<exif:UserComment><rdf:Alt><rdf:li xml:lang=\"x-default\">a cat &amp; dog\nSteps: 5, Seed: 6, Size: 64x64"
        b"</rdf:li></rdf:Alt></exif:UserComment></rdf:Description></rdf:RDF></x:xmpmeta>"
    )
    meta = read_metadata(_jpeg_with_app1(xmp))
    assert [(t.source, t.key, t.text) for t in meta.texts] == [
        ("xmp", "exif:UserComment", "a cat & dog\nSteps: 5, Seed: 6, Size: 64x64")
    ]


def test_c2pa_presence_and_claim_generator_in_png() -> None:
    claim = b"\xa2" + b"\x6fclaim_generator" + b"\x6bmaker/1.0.0" + b"\x65title" + b"\x61x"
    jumbf = struct.pack(">I", 8 + 17 + len(claim)) + b"jumb" + b"c2pa\0" * 3 + b"\0\0" + claim
    meta = read_metadata(png_bytes([chunk(b"caBX", jumbf)]))
    assert meta.c2pa is not None and meta.c2pa.where == "png:caBX" and meta.c2pa.claim_generator == "maker/1.0.0"


def test_c2pa_presence_in_jpeg_app11_and_webp() -> None:
    box = b"\0\0\0\x40jumb\0\0\0\x18jumdc2pa\0\x11\0\x10\x80\0\0\xaa\0\x38\x9b\x71c2pa\0" + b"\x74claim_generator_info\x81\xa1\x64name\x66tool/2"
    app11 = b"JP" + b"\0\x01" + b"\0\0\0\x01" + box
    jpg = b"\xff\xd8\xff\xeb" + struct.pack(">H", len(app11) + 2) + app11 + b"\xff\xda\0\x02\xff\xd9"
    meta = read_metadata(jpg)
    assert meta.c2pa is not None and (meta.c2pa.where, meta.c2pa.claim_generator) == ("jpeg:APP11", "tool/2")
    body = b"WEBP" + b"C2PA" + struct.pack("<I", len(box)) + box + (b"\0" if len(box) % 2 else b"")
    meta = read_metadata(b"RIFF" + struct.pack("<I", len(body)) + body)
    assert meta.c2pa is not None and meta.c2pa.where == "webp:C2PA" and meta.c2pa.size == len(box)
    assert read_metadata(png_texts({"a": "b"})).c2pa is None


def test_folders_keep_only_images_and_explicit_non_images_say_so(tmp_path: Path) -> None:
    from registry.trace.trace import iter_images

    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "sub" / "x.dat").write_bytes(png_texts({"parameters": "x"}))  # an image by its bytes
    (tmp_path / "d" / "y.png").write_bytes(b"not a png at all")
    (tmp_path / "d" / "empty.png").write_bytes(b"")
    assert [Path(p).name for p, _ in iter_images([tmp_path / "d"])] == ["x.dat"]
    t = trace_file(tmp_path / "d" / "y.png")
    assert t.meta.format == "unknown" and [f.rule_id for f in t.findings] == ["trace.not-an-image"]
    assert [f.rule_id for f in trace_file(tmp_path / "d" / "empty.png").findings] == ["trace.not-an-image"]
    gone = trace_file(tmp_path / "missing.png")
    assert gone.sha256 is None and [f.rule_id for f in gone.findings] == ["trace.unreadable"]


# -- hostile images -----------------------------------------------------------------------------------


def test_ztxt_bomb_is_stopped_at_the_limit() -> None:
    bomb = zlib.compress(b"\0" * (MAX_TEXT_BYTES * 4), 9)
    data = png_bytes([chunk(b"zTXt", b"parameters\0\0" + bomb), text_chunk("after", "still read")])
    t0 = time.perf_counter()
    meta = read_metadata(data)
    assert time.perf_counter() - t0 < 5
    assert [f.rule_id for f in meta.findings] == ["trace.decompression-bomb"]
    assert [t.key for t in meta.texts] == ["after"]


def test_itxt_bomb_and_corrupt_zlib() -> None:
    bomb = zlib.compress(b"a" * (MAX_TEXT_BYTES + 10), 9)
    data = png_bytes([chunk(b"iTXt", b"k\0\1\0\0\0" + bomb), chunk(b"zTXt", b"k2\0\0" + b"not zlib")])
    meta = read_metadata(data)
    assert [f.rule_id for f in meta.findings] == ["trace.decompression-bomb", "trace.malformed"]
    assert meta.texts == []


def test_huge_chunk_is_skipped_and_reading_continues(tmp_path: Path) -> None:
    big = b"parameters\0" + b"x" * (MAX_TEXT_BYTES + 1)
    p = tmp_path / "huge.png"
    p.write_bytes(png_bytes([chunk(b"tEXt", big), text_chunk("prompt", "{}")]))
    t = trace_file(p)
    assert "trace.chunk-too-large" in [f.rule_id for f in t.findings]
    assert [x.key for x in t.meta.texts] == ["prompt"]


def test_chunk_length_past_the_end_and_truncated_file() -> None:
    data = PNG_SIG + chunk(b"IHDR", b"\0" * 13) + struct.pack(">I", 1 << 30) + b"tEXt" + b"abc"
    meta = read_metadata(data)
    assert [f.rule_id for f in meta.findings] == ["trace.malformed"]
    assert read_metadata(PNG_SIG + b"\0\0").findings == []  # nothing to read, nothing claimed


def test_bad_utf8_is_replaced_with_a_finding() -> None:
    meta = read_metadata(png_bytes([chunk(b"iTXt", b"parameters\0\0\0\0\0" + b"ok \xff\xfe bad")]))
    assert [t.text for t in meta.texts] == ["ok \ufffd\ufffd bad"]
    assert [f.rule_id for f in meta.findings] == ["trace.bad-utf8"]


def test_malformed_exif_offsets() -> None:
    bad = b"Exif\0\0II" + struct.pack("<HI", 42, 10_000)
    assert [f.rule_id for f in read_metadata(_jpeg_with_app1(bad)).findings] == ["trace.malformed"]
    # UserComment value pointing far outside the segment
    tiff = b"II" + struct.pack("<HI", 42, 8) + struct.pack("<H", 1) + struct.pack("<HHII", 0x8769, 4, 1, 26) + b"\0" * 4
    tiff += struct.pack("<H", 1) + struct.pack("<HHII", 0x9286, 7, 5000, 999_999) + b"\0" * 4
    meta = read_metadata(_jpeg_with_app1(b"Exif\0\0" + tiff))
    assert [f.rule_id for f in meta.findings] == ["trace.malformed"] and meta.texts == []
    # an IFD that points at itself is read once
    loop = b"II" + struct.pack("<HI", 42, 8) + struct.pack("<H", 1) + struct.pack("<HHII", 0x8769, 4, 1, 8) + b"\0" * 4
    assert read_metadata(_jpeg_with_app1(b"Exif\0\0" + loop)).texts == []


def test_deeply_nested_json_is_not_parsed() -> None:
    findings: list = []
    assert load_json("[" * 200_000 + "]" * 200_000, "x", findings) is None
    assert [f.rule_id for f in findings] == ["trace.json-too-deep"]
    # brackets inside strings do not count; nesting past 64 that the decoder accepts is refused after it
    assert load_json(json.dumps({"a": "[" * 1000}), "x", findings) == {"a": "[" * 1000}
    findings.clear()
    assert load_json("[" * 100 + "]" * 100, "x", findings) is None
    assert [f.rule_id for f in findings] == ["trace.json-too-deep"]
    facts = parse_generation([TextEntry("png:tEXt", "prompt", '{"1":' * 5000 + "1" + "}" * 5000)], findings)
    assert facts == []


def test_pathological_texts_take_linear_time() -> None:
    """Inputs that make naive regular expressions quadratic: a 1 MB parameter line without a colon,
    an XMP packet naming a field 100,000 times with no closing tag, JSON of escaped quotes and of many
    shallow brackets. Each must finish quickly (the bound is generous for a shared machine)."""
    from registry.trace.parsers import json_depth
    from registry.trace.readers import _xmp_value

    cases = [
        lambda: parse_infotext("p\nSteps: 1, Seed: 2, " + "a" * 300_000, []),
        lambda: parse_infotext("p\n" + "a b " * 75_000 + ": x, Steps: 1, Seed: 2", []),
        lambda: _xmp_value("<exif:UserComment " * 30_000, "exif:UserComment"),
        lambda: _xmp_value('exif:UserComment="' * 30_000, "exif:UserComment"),
        lambda: load_json('"' + '\\"' * 500_000, "x", []),
        lambda: load_json("[" + "[1]," * 100_000 + "[1]]", "x", []),
    ]
    # quadratic behaviour at these sizes would take minutes to hours; linear takes milliseconds
    for i, case in enumerate(cases):
        t0 = time.perf_counter()
        case()
        assert time.perf_counter() - t0 < 20, i
    assert json_depth({"a": [1, {"b": [[]]}]}) == 5 and json_depth(3) == 0


def test_metadata_is_never_executed_or_evaluated() -> None:
    """Python reprs and template syntax stay text (json only; no eval, no pickle)."""
    findings: list = []
    facts = parse_generation([TextEntry("png:tEXt", "prompt", "__import__('os').system('touch /tmp/pwned')")], findings)
    assert facts == [] and [f.rule_id for f in findings] == ["trace.bad-json"]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400), st.integers(min_value=0, max_value=300))
def test_readers_never_raise_on_mutated_images(noise: bytes, cut: int) -> None:
    base = png_texts({"parameters": "a\nSteps: 1, Seed: 2, Size: 3x4", "prompt": "{}"}, "zTXt")
    for data in (base[:cut] + noise, PNG_SIG + noise, b"\xff\xd8\xff" + noise, b"RIFF\0\0\0\0WEBP" + noise,
                 base[:cut] + noise + base[cut:]):  # fmt: skip
        meta = read_metadata(data)
        parse_generation(meta.texts, meta.findings)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_infotext_parser_is_total(text: str) -> None:
    parse_infotext(text, [])
    parse_infotext(text + "\nSteps: 1, Seed: 2, Lora hashes: \"" + text + "\"", [])


# -- parsers ------------------------------------------------------------------------------------------


def test_a1111_infotext_facts() -> None:
    text = A1111_INFOTEXT.format(model_hash="1234567890", lora_hash="abcdefabcdef", lyco_hash="0123456789ab",
                                 ti_hash="fedcba987654")  # fmt: skip
    hashes = {"model": "1234567890", "lora:ohwxStyle": "aaaaaaaaaa", "embed:bad_hands": "bbbbbbbbbb"}
    # as create_infotext quotes it (infotext_utils.quote: json.dumps of a value with ',' or ':'), and bare
    bare = text.replace(", Version", f", Hashes: {json.dumps(hashes)}, Version")
    quoted = text.replace(", Version", f", Hashes: {json.dumps(json.dumps(hashes))}, Version")
    (f,) = parse_generation([TextEntry("png:tEXt", "parameters", quoted)], [])
    (g,) = parse_generation([TextEntry("png:tEXt", "parameters", bare)], [])
    assert f.to_dict() == g.to_dict()
    assert (f.generator, f.generator_version, f.steps, f.seed, f.sampler, f.scheduler) == (
        "A1111", "v1.10.1", 28, "1234567890", "DPM++ 2M", "Karras")
    assert (f.width, f.height, f.cfg_scale) == (832, 1216, 6.5)
    assert f.prompt == "a photo of ohwx person, <lora:ohwxStyle:0.8>, <lyco:oldLoha:0.6:0.4>, embedding bad_hands"
    assert f.negative_prompt == "blurry, lowres"
    got = [(r.role, r.name, r.weight, [h.value for h in r.hashes]) for r in f.refs]
    assert got == [
        ("checkpoint", "juggernautXL_v9", None, ["1234567890"]),
        ("vae", "sdxl_vae.safetensors", None, ["235745af8d"]),
        ("lora", "ohwxStyle", 0.8, ["abcdefabcdef", "aaaaaaaaaa"]),
        ("lora", "oldLoha", 0.6, ["0123456789ab"]),
        ("embedding", "bad_hands", None, ["fedcba987654", "bbbbbbbbbb"]),
    ]


def test_forge_version_and_lora_without_hash() -> None:
    f = parse_infotext("x <lora:noHash:1.2>\nSteps: 20, Sampler: Euler, Seed: 7, Size: 64x64, Version: f2.0.1v1.10.1", [])
    assert f is not None and f.generator == "Forge"
    assert [(r.role, r.name, r.weight, r.hashes) for r in f.refs] == [("lora", "noHash", 1.2, [])]


COMFY_PROMPT = {
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "SDXL/juggernautXL_v9.safetensors"}},
    "10": {"class_type": "LoraLoader", "inputs": {"lora_name": "styles/ohwxStyle.safetensors", "strength_model": 0.8,
                                                  "strength_clip": 0.5, "model": ["4", 0], "clip": ["4", 1]}},
    "11": {"class_type": "LoraLoaderModelOnly", "inputs": {"lora_name": ["20", 0], "strength_model": 0.3, "model": ["10", 0]}},
    "20": {"class_type": "PrimitiveString", "inputs": {"value": "linked_lora.safetensors"}},
    "12": {"class_type": "CR LoRA Stack", "inputs": {"switch_1": "On", "lora_name_1": "stackA.safetensors", "model_weight_1": 0.7,
                                                     "switch_2": "Off", "lora_name_2": "stackB.safetensors", "model_weight_2": 1.0,
                                                     "switch_3": "On", "lora_name_3": "None", "model_weight_3": 1.0}},
    "13": {"class_type": "Power Lora Loader (rgthree)", "inputs": {"lora_1": {"on": True, "lora": "power1.safetensors", "strength": 0.9},
                                                                   "lora_2": {"on": False, "lora": "power2.safetensors", "strength": 1}}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a castle", "clip": ["10", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "ugly", "clip": ["10", 1]}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 1024, "height": 768, "batch_size": 1}},
    "3": {"class_type": "KSampler", "inputs": {"seed": 18446744073709551615, "steps": 30, "cfg": 5.5, "sampler_name": "dpmpp_2m",
                                               "scheduler": "karras", "denoise": 1.0, "model": ["11", 0], "positive": ["6", 0],
                                               "negative": ["7", 0], "latent_image": ["5", 0]}},
}  # fmt: skip
COMFY_WORKFLOW = {
    "last_node_id": 30,
    "nodes": [
        {"id": 4, "type": "CheckpointLoaderSimple", "mode": 0, "widgets_values": ["SDXL/juggernautXL_v9.safetensors"]},
        {"id": 10, "type": "LoraLoader", "mode": 0, "widgets_values": ["styles/ohwxStyle.safetensors", 0.8, 0.5]},
        {"id": 30, "type": "LoraLoader", "mode": 4, "widgets_values": ["bypassed.safetensors", 1.0, 1.0]},
        {"id": 31, "type": "workflow>LoraGroup", "mode": 2, "widgets_values": ["muted_in_group.safetensors", 0.5, 0.5]},
    ],
    "links": [[1, 4, 0, 10, 0, "MODEL"]],
    "groups": [{"title": "Loaders", "bounding": [0, 0, 100, 100]}],
    "extra": {"groupNodes": {"LoraGroup": {"nodes": [{"type": "LoraLoader", "index": 0, "widgets_values": ["grouped.safetensors", 0.4, 0.4]}]}}},
}  # fmt: skip


def test_comfyui_prompt_graph_with_links_stacks_and_bypassed_nodes() -> None:
    texts = [TextEntry("png:tEXt", "prompt", json.dumps(COMFY_PROMPT)), TextEntry("png:tEXt", "workflow", json.dumps(COMFY_WORKFLOW))]
    (f,) = parse_generation(texts, [])
    assert f.generator == "ComfyUI"
    assert (f.seed, f.steps, f.cfg_scale, f.sampler, f.scheduler) == ("18446744073709551615", 30, 5.5, "dpmpp_2m", "karras")
    assert (f.prompt, f.negative_prompt, f.width, f.height) == ("a castle", "ugly", 1024, 768)
    got = sorted((r.role, r.name, r.weight, r.active) for r in f.refs)
    assert got == sorted([
        ("checkpoint", "SDXL/juggernautXL_v9.safetensors", None, True),
        ("lora", "styles/ohwxStyle.safetensors", 0.8, True),
        ("lora", "linked_lora.safetensors", 0.3, True),
        ("lora", "stackA.safetensors", 0.7, True),
        ("lora", "stackB.safetensors", 1.0, False),
        ("lora", "power1.safetensors", 0.9, True),
        ("lora", "power2.safetensors", 1.0, False),
        ("lora", "bypassed.safetensors", 1.0, False),
        ("lora", "muted_in_group.safetensors", None, False),
    ])  # fmt: skip
    ohwx = next(r for r in f.refs if r.name == "styles/ohwxStyle.safetensors")
    assert ohwx.extra == {"strength_clip": 0.5}


def test_comfyui_workflow_only_reads_group_nodes() -> None:
    (f,) = parse_generation([TextEntry("png:tEXt", "workflow", json.dumps(COMFY_WORKFLOW))], [])
    names = {(r.name, r.active) for r in f.refs}
    assert ("grouped.safetensors", True) in names and ("bypassed.safetensors", False) in names
    assert "widget values" in f.params["note"]


INVOKE = {
    "generation_mode": "sdxl_txt2img", "positive_prompt": "a fox", "negative_prompt": "", "width": 1024, "height": 1024,
    "seed": 42, "cfg_scale": 7.0, "steps": 30, "scheduler": "euler", "app_version": "5.6.0",
    "model": {"key": "k1", "hash": "blake3:{b3}", "name": "Juggernaut XL", "base": "sdxl", "type": "main"},
    "loras": [{"model": {"key": "k2", "hash": "sha256:{sha}", "name": "ohwx", "base": "sdxl", "type": "lora"}, "weight": 0.75}],
}  # fmt: skip


def test_invokeai_metadata() -> None:
    md = json.loads(json.dumps(INVOKE).replace("{b3}", "1" * 64).replace("{sha}", "2" * 64))
    (f,) = parse_generation([TextEntry("png:tEXt", "invokeai_metadata", json.dumps(md))], [])
    assert (f.generator, f.generator_version, f.prompt, f.seed, f.steps) == ("InvokeAI", "5.6.0", "a fox", "42", 30)
    assert [(r.role, r.name, r.weight, [(h.algo, h.value) for h in r.hashes]) for r in f.refs] == [
        ("checkpoint", "Juggernaut XL", None, [("blake3", "1" * 64)]),
        ("lora", "ohwx", 0.75, [("sha256", "2" * 64)]),
    ]


def test_swarmui_fooocus_novelai() -> None:
    swarm = {"sui_image_params": {"prompt": "p", "model": "OfficialStableDiffusion/sd_xl_base_1.0", "seed": 1, "steps": 20,
                                  "loras": ["myLora"], "loraweights": ["0.6"], "swarm_version": "0.9.5"},
             "sui_models": [{"name": "OfficialStableDiffusion/sd_xl_base_1.0.safetensors", "param": "model", "hash": "0x" + "3" * 64},
                            {"name": "myLora.safetensors", "param": "used_loras", "hash": None}]}  # fmt: skip
    (f,) = parse_generation([TextEntry("png:tEXt", "parameters", json.dumps(swarm))], [])
    assert f.generator == "SwarmUI"
    assert [(r.role, r.name, r.weight, [(h.algo, h.value) for h in r.hashes]) for r in f.refs] == [
        ("checkpoint", "OfficialStableDiffusion/sd_xl_base_1.0", None, [("tensor", "3" * 64)]),
        ("lora", "myLora", 0.6, []),
    ]
    fooocus = {"base_model": "juggernautXL_v8Rundiffusion", "base_model_hash": "aeb7e9e689", "loras": [["sd_xl_offset_example-lora_1.0", 0.1, "4852686128"]],
               "prompt": "a dog", "seed": "314159", "steps": 30, "resolution": "(1152, 896)", "version": "Fooocus v2.5.5"}  # fmt: skip
    (f,) = parse_generation([TextEntry("png:tEXt", "parameters", json.dumps(fooocus)), TextEntry("png:tEXt", "fooocus_scheme", "fooocus")], [])
    assert (f.generator, f.width, f.height, f.seed) == ("Fooocus", 1152, 896, "314159")
    assert [(r.role, r.name, r.weight, [h.value for h in r.hashes]) for r in f.refs] == [
        ("checkpoint", "juggernautXL_v8Rundiffusion", None, ["aeb7e9e689"]),
        ("lora", "sd_xl_offset_example-lora_1.0", 0.1, ["4852686128"]),
    ]
    nai = [TextEntry("png:tEXt", "Software", "NovelAI"), TextEntry("png:tEXt", "Source", "NovelAI Diffusion V3 7BCCAA2C"),
           TextEntry("png:tEXt", "Comment", json.dumps({"prompt": "1girl", "steps": 28, "seed": 9, "scale": 5, "uc": "bad", "width": 832, "height": 1216}))]  # fmt: skip
    (f,) = parse_generation(nai, [])
    assert (f.generator, f.prompt, f.steps, f.width) == ("NovelAI", "1girl", 28, 832)
    assert [(r.name, [(h.algo, h.value) for h in r.hashes]) for r in f.refs] == [("NovelAI Diffusion V3", [("opaque", "7bccaa2c")])]


# -- matching against a registry ----------------------------------------------------------------------


def _lora(path: Path, seed: int, metadata: dict[str, str] | None = None) -> Path:
    rng = np.random.default_rng(seed)
    return write_safetensors(path, {
        "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": rng.standard_normal((4, 32)).astype(np.float32),
        "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight": rng.standard_normal((32, 4)).astype(np.float32),
        "lora_unet_down_blocks_0_attentions_0_proj_in.alpha": np.array(4.0, dtype=np.float32),
    }, metadata)  # fmt: skip


def _autov3(path: Path) -> str:
    """The SHA-256 of the tensor data, computed here independently: bytes after the 8-byte length and header."""
    b = path.read_bytes()
    n = int.from_bytes(b[:8], "little")
    return hashlib.sha256(b[8 + n :]).hexdigest()


@pytest.fixture
def registry(tmp_path: Path, db: Path) -> dict[str, Path]:
    from registry.scan import scan

    models = tmp_path / "models"
    files = {
        "plain": _lora(models / "ohwxStyle.safetensors", 1),
        # OneTrainer-style: embedded sshs_model_hash that the bytes do not bear out (A1111 writes it anyway)
        "claimed": _lora(models / "trainerOut.safetensors", 2, {"sshs_model_hash": "9" * 64, "ss_output_name": "myCharacter"}),
        "ckpt": _lora(models / "juggernautXL_v9.safetensors", 3),
        "twin_a": _lora(models / "a" / "twin.safetensors", 4),
        "twin_b": _lora(models / "b" / "twin.safetensors", 5),
    }
    scan([models], db)
    return files


def _png(tmp_path: Path, name: str, texts: dict[str, str]) -> Path:
    p = tmp_path / "images" / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(png_texts(texts))
    return p


def _matcher(db: Path) -> Matcher:
    from registry.store.db import connect

    with connect(db, read_only=True) as con:
        return Matcher.from_registry(con)


def test_match_kinds_by_every_hash_form(tmp_path: Path, db: Path, registry: dict[str, Path]) -> None:
    plain, claimed, ckpt = registry["plain"], registry["claimed"], registry["ckpt"]
    ckpt_sha = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    text = A1111_INFOTEXT.format(model_hash=ckpt_sha[:10], lora_hash=_autov3(plain)[:12], lyco_hash="9" * 12,
                                 ti_hash="0" * 12)  # fmt: skip
    img = _png(tmp_path, "a1111.png", {"parameters": text})
    t = trace_file(img, _matcher(db))
    got = {(m.ref.role, m.ref.name): (m.status, m.match_kind, m.model_sha256) for m in t.matches}
    claimed_sha = hashlib.sha256(claimed.read_bytes()).hexdigest()
    assert got[("checkpoint", "juggernautXL_v9")] == ("matched", "AutoV2 (SHA-256 prefix of 10)", ckpt_sha)
    assert got[("lora", "ohwxStyle")] == ("matched", "AutoV3 prefix of 12", hashlib.sha256(plain.read_bytes()).hexdigest())
    # the image carries the LoRA's embedded sshs_model_hash, not its computed AutoV3: matched through the claim
    assert got[("lora", "oldLoha")] == ("matched", "the file's embedded sshs hash claim (prefix of 12)", claimed_sha)
    (note,) = [m.note for m in t.matches if m.ref.name == "oldLoha"]
    assert note is not None and "checked against its bytes: mismatch" in note
    assert [m.note for m in t.matches if m.ref.name == "ohwxStyle"] == [None]
    assert got[("embedding", "bad_hands")][0] == "not-found"
    assert got[("vae", "sdxl_vae.safetensors")][0] == "not-found"


def test_conflict_weak_ambiguous_and_full_hashes(tmp_path: Path, db: Path, registry: dict[str, Path]) -> None:
    m = _matcher(db)
    ckpt_sha = hashlib.sha256(registry["ckpt"].read_bytes()).hexdigest()
    plain_sha = hashlib.sha256(registry["plain"].read_bytes()).hexdigest()
    # the hash says the checkpoint; the name says ohwxStyle
    conflict = parse_infotext(f"x\nSteps: 1, Seed: 2, Model hash: {ckpt_sha[:10]}, Model: ohwxStyle", [])
    assert conflict is not None
    (r,) = [m.match(ref) for ref in conflict.refs]
    assert (r.status, r.model_sha256, r.candidates) == ("conflict", ckpt_sha, [plain_sha])
    assert "ohwxStyle" in (r.note or "")
    # ComfyUI names files without hashes: name only
    (f,) = parse_generation([TextEntry("png:tEXt", "prompt", json.dumps({
        "1": {"class_type": "LoraLoader", "inputs": {"lora_name": "sub/ohwxStyle.safetensors", "strength_model": 1}},
        "2": {"class_type": "LoraLoader", "inputs": {"lora_name": "twin.safetensors", "strength_model": 1}},
        "3": {"class_type": "LoraLoader", "inputs": {"lora_name": "myCharacter", "strength_model": 1}},
    }))], [])  # fmt: skip
    res = {ref.name: m.match(ref) for ref in f.refs}
    assert (res["sub/ohwxStyle.safetensors"].status, res["sub/ohwxStyle.safetensors"].match_kind) == ("weak", "name only: weak")
    assert res["twin.safetensors"].status == "ambiguous" and len(res["twin.safetensors"].candidates) == 2
    claimed_sha = hashlib.sha256(registry["claimed"].read_bytes()).hexdigest()
    assert (res["myCharacter"].status, res["myCharacter"].model_sha256) == ("weak", claimed_sha)
    assert "ss_output_name" in (res["myCharacter"].note or "")
    # full SHA-256 / AutoV3 / BLAKE3 / 0x tensor hash, and a hash of an unregistered file next to a known name
    import blake3

    for value, kind in ((f"sha256:{plain_sha}", "SHA-256"), (f"0x{_autov3(registry['plain'])}", "AutoV3 (SHA-256 of the tensor data)"),
                        (f"blake3:{blake3.blake3(registry['plain'].read_bytes()).hexdigest()}", "BLAKE3")):  # fmt: skip
        md = {"model": {"name": "whatever", "hash": value}}
        (inv,) = parse_generation([TextEntry("png:tEXt", "invokeai_metadata", json.dumps(md))], [])
        got = m.match(inv.refs[0])
        assert (got.status, got.match_kind, got.model_sha256) == ("matched", kind, plain_sha)
    # two files with equal tensor data and different headers share an AutoV3: ambiguous, and the note says why
    from registry.scan import scan

    same = tmp_path / "more"
    _lora(same / "copyA.safetensors", 77, {"ss_output_name": "a", "ss_comment": "x" * 40})
    _lora(same / "copyB.safetensors", 77, {"ss_output_name": "b", "ss_comment": "y" * 40})
    scan([same], db)
    m2 = _matcher(db)
    (inv,) = parse_generation([TextEntry("png:tEXt", "parameters", f"x\nSteps: 1, Seed: 2, Lora hashes: \"c: {_autov3(same / 'copyA.safetensors')[:12]}\"")], [])
    amb = m2.match(inv.refs[0])
    assert amb.status == "ambiguous" and len(amb.candidates) == 2 and "equal AutoV3" in (amb.note or "")
    other = parse_infotext(f"x\nSteps: 1, Seed: 2, Model hash: {'e' * 10}, Model: ohwxStyle", [])
    assert other is not None
    r = m.match(other.refs[0])
    assert r.status == "not-found" and r.candidates == [plain_sha] and "another version" in (r.note or "")


# -- records and the CLI ------------------------------------------------------------------------------


def test_trace_cli_records_show_ls_and_retrace(tmp_path: Path, db: Path, registry: dict[str, Path]) -> None:
    from cli.main import root

    plain_sha = hashlib.sha256(registry["plain"].read_bytes()).hexdigest()
    text = A1111_INFOTEXT.format(model_hash="f" * 10, lora_hash=_autov3(registry["plain"])[:12], lyco_hash="9" * 12, ti_hash="0" * 12)
    img = _png(tmp_path, "one.png", {"parameters": text})
    _png(tmp_path, "plain.png", {"Software": "paint"})
    (tmp_path / "images" / "notes.txt").write_text("not an image")
    runner = CliRunner()
    res = runner.invoke(root, ["trace", str(tmp_path / "images"), "--format", "jsonl"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in res.stdout.splitlines()]
    img_sha = hashlib.sha256(img.read_bytes()).hexdigest()
    by = {(r["image_sha256"], r["name"]): r for r in rows}
    assert by[(img_sha, "ohwxStyle")]["status"] == "matched" and by[(img_sha, "ohwxStyle")]["model_sha256"] == plain_sha
    assert by[(img_sha, "ohwxStyle")]["weight"] == 0.8
    assert [r["status"] for r in rows if r["image"].endswith("plain.png")] == ["no-metadata"]
    assert not any(r["image"].endswith("notes.txt") for r in rows)
    # show lists the image under the model; ls --used-in lists the models of the image
    res = runner.invoke(root, ["show", plain_sha[:16], "--format", "json"])
    rec = json.loads(res.stdout)
    imgs = rec["images"]["images"]
    assert [(d["image_sha256"], d["role"], d["ref_name"], d["status"], d["match_kind"]) for d in imgs] == [
        (img_sha, "lora", "ohwxStyle", "matched", "AutoV3 prefix of 12")
    ]
    res = runner.invoke(root, ["ls", "--used-in", str(img), "--format", "json"])
    assert res.exit_code == 0, res.output
    listed = {r["sha256"] for r in json.loads(res.stdout)}
    claimed_sha = hashlib.sha256(registry["claimed"].read_bytes()).hexdigest()
    assert listed == {plain_sha, claimed_sha}
    assert runner.invoke(root, ["ls", "--used-in", img_sha[:10], "--format", "csv"]).stdout.count("\n") == 3
    # a re-trace replaces rather than duplicates
    assert runner.invoke(root, ["trace", str(img), "--format", "csv"]).exit_code == 0
    from registry.store.db import connect

    with connect(db, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM images WHERE sha256 = ?", [img_sha]).fetchone() == (1,)
        assert con.execute("SELECT count(*) FROM image_models WHERE image_sha256 = ?", [img_sha]).fetchone() == (2,)
        assert con.execute("SELECT count(*) FROM events WHERE action = 'image.trace' AND subject = ?", [img_sha]).fetchone() == (2,)
    res = runner.invoke(root, ["ls", "--used-in", str(tmp_path / "images" / "notes.txt")])
    assert res.exit_code != 0 and "has not been traced" in res.stderr


def test_trace_no_record_and_table(tmp_path: Path, db: Path) -> None:
    from cli.main import root

    img = _png(tmp_path, "c.png", {"prompt": json.dumps(COMFY_PROMPT)})
    res = CliRunner().invoke(root, ["trace", "--no-record", str(img)])
    assert res.exit_code == 2 and "no registry at" in res.output  # --no-record only reads: it creates none
    from registry.store.db import connect

    with connect(db):  # an empty registry
        pass
    res = CliRunner().invoke(root, ["trace", "--no-record", str(img)])
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0].split()[:4] == ["IMAGE", "IMAGE_SHA256", "GENERATOR", "ROLE"]
    assert sum("not-found" in x for x in lines) == 5 and sum("inactive" in x for x in lines) == 2
    from registry.store.db import connect

    with connect(db, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM images").fetchone() == (0,)


def test_exhibit_record_carries_the_images_section(tmp_path: Path, db: Path, registry: dict[str, Path]) -> None:
    """The canonical record an exhibit writes (record.json) includes the images attributed to the model,
    and stays valid against the record schema."""
    from registry.evidence.canonical import build_record, schema_errors
    from registry.store.db import connect
    from registry.trace.store import record_traces

    plain_sha = hashlib.sha256(registry["plain"].read_bytes()).hexdigest()
    img = _png(tmp_path, "e.png", {"parameters": f"x <lora:ohwxStyle:0.5>\nSteps: 1, Seed: 2, Lora hashes: \"ohwxStyle: {_autov3(registry['plain'])[:12]}\""})
    t = trace_file(img, _matcher(db))
    with connect(db) as con:
        assert record_traces(con, [t]) == 1
    with connect(db, read_only=True) as con:
        rec = build_record(con, plain_sha)
    sec = rec["sections"]["images"]
    assert sec["n_images"] == 1 and sec["by_status"] == {"matched": 1, "conflict": 0, "weak": 0}
    assert [(d["image_sha256"], d["weight"], d["match_kind"]) for d in sec["images"]] == [
        (t.sha256, 0.5, "AutoV3 prefix of 12")
    ]
    assert schema_errors(rec) == []
    from registry.evidence.canonical import discover_sections
    from registry.evidence.report import render_html

    html = render_html(rec, None, discover_sections())
    assert "Images attributed to this model" in html and t.sha256[:12] in html and "AutoV3 prefix of 12" in html


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32)), min_size=1, max_size=20,
                unique_by=lambda t: t[0]),  # fmt: skip
       st.integers(min_value=8, max_value=64), st.data())
def test_matcher_finds_every_prefix_of_every_column(pairs: list, n: int, data: st.DataObject) -> None:
    """Every prefix (8..64 hex) of a model's SHA-256 or AutoV3 finds that model, with the kind naming the
    column and the prefix length; a prefix never finds a model whose value does not start with it."""
    from registry.trace.facts import HashClaim

    m = Matcher()
    models = [(hashlib.sha256(a).hexdigest(), hashlib.sha256(b).hexdigest()) for a, b in pairs]
    for sha, v3 in models:
        m.add_hash(sha, "sha256", sha)
        m.add_hash(sha, "autov3", v3)
    sha, v3 = data.draw(st.sampled_from(models))
    got = m.by_hash(HashClaim(v3[:n], "test"))
    assert got[sha] == ("AutoV3 (SHA-256 of the tensor data)" if n == 64 else f"AutoV3 prefix of {n}")
    for other, kind in got.items():
        o_sha, o_v3 = next(x for x in models if x[0] == other)
        assert (kind.startswith("AutoV3") and o_v3.startswith(v3[:n])) or (not kind.startswith("AutoV3") and o_sha.startswith(v3[:n]))
    want = "SHA-256" if n == 64 else "AutoV2 (SHA-256 prefix of 10)" if n == 10 else f"SHA-256 prefix of {n}"
    assert m.by_hash(HashClaim(sha[:n], "test", "sha256")) == {sha: want}


def test_c2pa_manifest_read_and_validated_with_c2pa_python(tmp_path: Path, db: Path) -> None:
    """A real C2PA manifest (signed by c2pa-python's Builder) read back: claim generator, signer, actions,
    validation; then the image's metadata edited after signing makes it Invalid, with a finding."""
    pytest.importorskip("c2pa")
    pytest.importorskip("cryptography")
    from tests.image_builders import c2pa_signed_png

    data = c2pa_signed_png({"parameters": "a fox\nSteps: 20, Seed: 1234, Size: 4x3"})
    p = tmp_path / "signed.png"
    p.write_bytes(data)
    t = trace_file(p)
    c = t.meta.c2pa
    assert c is not None and c.where == "png:caBX" and c.reader is not None and c.reader.startswith("c2pa-python")
    assert (c.claim_generator, c.title, c.validation_state) == ("modelreg-test 1.0", "generated.png", "Valid")
    assert c.signer is not None and (c.signer["issuer"], c.signer["common_name"]) == ("modelreg test", "test signer")
    assert c.actions == [{"action": "c2pa.created", "softwareAgent": None,
                          "digitalSourceType": "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"}]  # fmt: skip
    assert "signingCredential.untrusted" in c.validation_codes  # our throwaway CA is on no trust list
    assert [f.seed for f in t.facts] == ["1234"] and t.findings == []
    # without the library: presence and the claim generator from the claim's CBOR
    assert read_metadata(data).c2pa.claim_generator == "modelreg-test"  # type: ignore[union-attr]
    # edit the generation parameters after signing (same length, CRC fixed): the hash binding fails
    i = data.index(b"Seed: 1234")
    start = data.rindex(b"tEXt", 0, i) - 4
    n = struct.unpack(">I", data[start : start + 4])[0]
    body = data[start + 8 : start + 8 + n].replace(b"Seed: 1234", b"Seed: 9999")
    edited = data[:start] + chunk(b"tEXt", body) + data[start + 12 + n :]
    q = tmp_path / "edited.png"
    q.write_bytes(edited)
    t2 = trace_file(q)
    assert t2.meta.c2pa is not None and t2.meta.c2pa.validation_state == "Invalid"
    assert [f.rule_id for f in t2.findings] == ["trace.c2pa-invalid"] and [f.seed for f in t2.facts] == ["9999"]
    # the CLI: a c2pa column per row, and --detail for the whole reading (--no-record reads a registry:
    # an empty one here)
    from cli.main import root
    from registry.store.db import connect

    with connect(db):
        pass

    res = CliRunner().invoke(root, ["trace", "--no-record", "--format", "csv", str(p), str(q)])
    assert res.exit_code == 0, res.output
    assert [r.split(",")[-1] for r in res.stdout.splitlines()[1:]] == ["Valid: modelreg-test 1.0", "Invalid: modelreg-test 1.0"]
    assert "trace.c2pa-invalid" in res.stderr
    res = CliRunner().invoke(root, ["trace", "--no-record", "--detail", "--format", "jsonl", str(p)])
    (doc,) = [json.loads(x) for x in res.stdout.splitlines()]
    assert doc["c2pa"]["signer"]["issuer"] == "modelreg test" and doc["facts"][0]["generator"] == "A1111"
    assert CliRunner().invoke(root, ["trace", "--no-record", "--detail", str(p)]).exit_code == 2
