"""Screenshots of the web view's main pages for the docs (docs/serve-*.png), light and dark.

Builds a small registry from tiny real LoRA files (and, when the shared corpus is there, one with the
real SD 1.5 kohya layout), records a declaration and an exhibit, serves it with ``modelreg serve``'s app
under uvicorn on a free loopback port, and photographs the pages in Debian's headless Chromium
(Playwright pointed at /usr/bin/chromium). PNGs are reduced to 256-colour palettes to stay small.

    python scripts/serve_screenshots.py [--out docs]
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.builders import CORPUS, header_json_to_file, write_safetensors  # noqa: E402
from tests.test_serve_browser import CHROMIUM, CHROMIUM_ARGS, tiny_lora  # noqa: E402

MODELS = [
    ("harbour_lights_v2", "Harbour Lights", "hrbrlights", ["harbour", "night", "boats"]),
    ("ink_portrait_v1", "Ink Portrait", "inkprt", ["portrait", "ink", "sketch"]),
    ("voxel_city_v3", "Voxel City", "vxlcty", ["city", "voxel", "isometric"]),
    ("autumn_forest", "Autumn Forest", "atmfrst", ["forest", "autumn", "leaves"]),
]


def build(root: Path) -> tuple[Path, str]:
    from click.testing import CliRunner

    from cli.main import root as cli_root

    models = root / "models" / "loras"
    for k, (name, title, trigger, tags) in enumerate(MODELS):
        freq = {trigger: 20, **{t: 12 - i for i, t in enumerate(tags)}}
        write_safetensors(models / f"{name}.safetensors", tiny_lora(4 + 4 * (k % 2), 10 + k), {
            "ss_network_dim": str(4 + 4 * (k % 2)), "ss_network_alpha": "2", "ss_output_name": name,
            "ss_base_model_version": "sd_v1", "modelspec.title": title, "modelspec.author": "Tidewater Studio",
            "ss_tag_frequency": json.dumps({f"10_{trigger} {tags[0]}": freq}),
        })  # fmt: skip
    real = CORPUS / "headers" / "sd15-kohya.json"
    if real.exists():
        header_json_to_file(real, models / "sd15_real_layout_lora.safetensors", fill="random", seed=3)
    db = root / "registry.duckdb"
    env = {"MODELREG_DB": str(db)}
    r = CliRunner().invoke(cli_root, ["scan", str(root / "models")], env=env, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    import hashlib

    sha = hashlib.sha256((models / "harbour_lights_v2.safetensors").read_bytes()).hexdigest()
    decl = root / "declaration.json"
    decl.write_text(json.dumps({
        "schemaVersion": "1.0", "model": {"sha256": sha, "name": "Harbour Lights LoRA"},
        "declarant": {"name": "Mara Okonkwo", "organization": "Tidewater Studio"}, "date": "2025-02-03",
        "training": {"method": "lora", "triggerWords": ["hrbrlights"]},
        "datasets": [{"name": "Harbour photographs", "license": "CC-BY-4.0", "itemCount": 24}],
    }))  # fmt: skip
    r = CliRunner().invoke(cli_root, ["declare", sha, str(decl)], env=env, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli_root, ["exhibit", sha, "--output", str(root / "exhibit")], env=env,
                           catch_exceptions=False)  # fmt: skip
    assert r.exit_code == 0, r.output
    return db, sha


def small_png(png: bytes) -> bytes:
    from PIL import Image

    img = Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    out = io.BytesIO()
    img.save(out, "PNG", optimize=True)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "docs")
    ap.add_argument("--pages", nargs="*", default=["list", "model", "figures", "findings"])
    args = ap.parse_args(argv)
    schemes = ("light", "dark")

    import uvicorn
    from playwright.sync_api import sync_playwright

    from registry.web.app import create_app

    # a fixed, neutral place (its paths show in the pictures), emptied before and removed after
    tmp = Path(tempfile.gettempdir()) / "modelreg-demo"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        db, sha = build(tmp)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        server = uvicorn.Server(uvicorn.Config(create_app(db), log_level="warning", lifespan="off"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        shots = [("list", "/", None), ("model", f"/model/{sha}", None), ("figures", f"/model/{sha}", "#stats"),
                 ("findings", "/findings", None)]  # fmt: skip
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                for scheme in schemes:
                    ctx = browser.new_context(viewport={"width": 1200, "height": 760}, color_scheme=scheme)
                    page = ctx.new_page()
                    for name, path, anchor in shots:
                        if name not in args.pages:
                            continue
                        page.goto(base + path)
                        if anchor:
                            page.locator(anchor).scroll_into_view_if_needed()
                            page.evaluate(f"document.querySelector('{anchor}').scrollIntoView()")
                        out = args.out / f"serve-{name}-{scheme}.png"
                        out.write_bytes(small_png(page.screenshot()))
                        print(f"{out} ({out.stat().st_size // 1024} KiB)")
                    ctx.close()
                browser.close()
        finally:
            server.should_exit = True
            thread.join(timeout=10)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
