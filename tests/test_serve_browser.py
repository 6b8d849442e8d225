"""The web view (``modelreg serve``) in a real browser: Debian's headless Chromium driven by Playwright.

The app runs under uvicorn on a free loopback port, over a small registry scanned from tiny real
safetensors files. Some of them carry attacker-controlled strings in every place a model file or its
neighbours can put one (file and folder names, ``ss_*``/``modelspec.*`` metadata, tag folders, a Civitai
sidecar, a training-data declaration): ``<script>``, HTML with event handlers, attribute break-outs and
``javascript:`` URLs. Each payload would set ``window.__pwned`` to a value naming its field; the tests
check in the browser that none ran, that no Content-Security-Policy violation was reported (a blocked
injected script means the escaping failed and only the CSP saved the page), that the page has no
injected elements or handlers, and that the payload text is shown as text.

Also: the click path search -> model -> figure -> exhibit downloads (record.json, PDF, zip, checked by
content), keyboard navigation and focus visibility, labels and accessible names, and screenshots of the
main pages in light and dark (asserted not blank by pixel statistics).

Needs the ``serve`` extra, the ``playwright`` package (dev extra) and ``/usr/bin/chromium`` (Debian's
``chromium`` package; ``.ci/run`` installs it). Playwright's own browser downloads are never used.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import socket
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

CHROMIUM = os.environ.get("MODELREG_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    if not Path(CHROMIUM).is_file():
        return "Debian's chromium is not installed (apt-get install chromium)"
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        return "the serve extra is not installed (pip install -e '.[serve]')"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=_missing() or "")


from tests.evidence.test_exhibit import PDF  # noqa: E402 - whether weasyprint and Pango can make the PDF


# ---------------------------------------------------------------------------------------------- payloads
def payloads(field_name: str) -> dict[str, str]:
    """The four kinds of payload for one field; each would set ``window.__pwned`` to ``field:kind``."""
    flag = lambda kind: f"window.__pwned='{field_name}:{kind}'"  # noqa: E731
    return {
        "script": f"<script>{flag('script')}</script>",
        "html": f"<img src=x onerror=\"{flag('html')}\"><b>bold</b>",
        "attribute": f"\" autofocus onfocus=\"{flag('attribute')}\" onmouseover=\"{flag('attribute')}\" x=\"",
        "javascript": f"javascript:{flag('javascript')}",
    }


def tiny_lora(rank: int, seed: int) -> dict[str, np.ndarray]:
    """A kohya-named SD 1.5 LoRA of three modules (real factors, so the spectra figures have data)."""
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for block, dim in (("down_blocks_0", 32), ("mid_block", 48), ("up_blocks_1", 32)):
        base = f"lora_unet_{block}_attentions_0_proj_in"
        out[f"{base}.lora_down.weight"] = rng.standard_normal((rank, dim)).astype(np.float16)
        out[f"{base}.lora_up.weight"] = (rng.standard_normal((dim, rank)) * 0.1).astype(np.float16)
        out[f"{base}.alpha"] = np.array(rank / 2, dtype=np.float16)
    return out


@dataclass
class Registry:
    db: Path
    root: Path
    #: sha256 by short name: "plain", "meta", "names", "sidecar", "declared"
    sha: dict[str, str] = field(default_factory=dict)
    #: payload strings that were stored, by where they went ("ss_output_name:html" …)
    stored: dict[str, str] = field(default_factory=dict)
    exhibit_record_sha256: str = ""
    exhibit_dir: Path | None = None


def build_registry(root: Path) -> Registry:
    from click.testing import CliRunner

    from cli.main import root as cli_root
    from tests.builders import write_safetensors

    models = root / "models"
    reg = Registry(db=root / "registry.duckdb", root=root)
    files: dict[str, Path] = {}

    # 1. a plain, well-described LoRA (the happy path: search, figures, exhibit)
    files["plain"] = write_safetensors(
        models / "harbour_lights_v2.safetensors", tiny_lora(4, 1),
        {"ss_network_dim": "4", "ss_network_alpha": "2", "ss_output_name": "harbour_lights_v2",
         "ss_base_model_version": "sd_v1", "modelspec.title": "Harbour Lights",
         "ss_tag_frequency": json.dumps({"10_hrbrlights harbour": {"hrbrlights": 12, "harbour": 11, "night": 5}})},
    )  # fmt: skip

    # 2. every metadata value a page shows carries payloads
    meta: dict[str, str] = {"ss_network_dim": "4", "ss_network_alpha": "2", "ss_base_model_version": "sd_v1"}
    for key in ("ss_output_name", "modelspec.title", "modelspec.author", "modelspec.description",
                "modelspec.trigger_phrase", "modelspec.license", "modelspec.implementation", "ss_training_comment",
                "ss_sd_model_name"):  # fmt: skip
        p = payloads(key)
        meta[key] = " ".join(p.values())
        reg.stored.update({f"{key}:{k}": v for k, v in p.items()})
    tag_p = payloads("tags")
    meta["ss_tag_frequency"] = json.dumps({f"10_{tag_p['html']} woman": {tag_p["script"]: 9, tag_p["javascript"]: 3,
                                                                         tag_p["attribute"]: 2}})
    reg.stored.update({f"tags:{k}": v for k, v in tag_p.items()})
    files["meta"] = write_safetensors(models / "meta_payloads.safetensors", tiny_lora(8, 2), meta)

    # 3. payloads in the file and folder names (no '/' in a name, but a folder name can end in '<' and the
    # next begin with 'script>', so the path carries a whole </script>)
    name_dir = models / "<script>window.__pwned='dir:script'<" / "script>"
    name = "\" onfocus=\"window.__pwned='name:attribute'\" <img src=x onerror=window.__pwned='name:html'>.safetensors"
    files["names"] = write_safetensors(name_dir / name, tiny_lora(4, 3), {"ss_network_dim": "4"})
    files["javascript"] = write_safetensors(models / "javascript:window.__pwned='name:javascript'.safetensors",
                                            tiny_lora(4, 4), {"ss_network_dim": "4"})

    # 4. a Civitai sidecar whose every string is a payload
    sc_p = payloads("sidecar")
    files["sidecar"] = write_safetensors(models / "sidecar_lora.safetensors", tiny_lora(4, 5), {"ss_network_dim": "4"})
    (models / "sidecar_lora.civitai.info").write_text(json.dumps({
        "name": sc_p["html"], "baseModel": sc_p["attribute"], "trainedWords": [sc_p["script"], sc_p["javascript"]],
        "description": sc_p["script"], "model": {"name": sc_p["script"], "type": "LORA"},
        "files": [{"name": "sidecar_lora.safetensors", "hashes": {"SHA256": "00" * 32}}],
    }))  # fmt: skip
    reg.stored.update({f"sidecar:{k}": v for k, v in sc_p.items()})

    # `audit` scans the folder and checks the sidecar against the file (its claims land in the registry)
    env = {"MODELREG_DB": str(reg.db)}
    r = CliRunner().invoke(cli_root, ["audit", str(models)], env=env, catch_exceptions=False)
    assert r.exit_code in (0, 1), r.output
    for key, path in files.items():
        reg.sha[key] = hashlib.sha256(path.read_bytes()).hexdigest()

    # 5. a declaration with payloads (validated and recorded by the real `declare`)
    dec_p = payloads("declaration")
    declaration = {
        "schemaVersion": "1.0",
        "model": {"sha256": reg.sha["meta"], "name": dec_p["html"], "url": dec_p["javascript"]},
        "declarant": {"name": dec_p["script"], "organization": dec_p["attribute"]},
        "date": "2025-03-14",
        "training": {"method": "lora", "triggerWords": [dec_p["script"]]},
        "datasets": [{"name": dec_p["html"], "description": dec_p["attribute"], "license": "CC-BY-4.0",
                      "itemCount": 24, "sources": [{"url": dec_p["javascript"], "description": dec_p["script"]}]}],
    }
    reg.stored.update({f"declaration:{k}": v for k, v in dec_p.items()})
    dec_file = root / "declaration.json"
    dec_file.write_text(json.dumps(declaration))
    r = CliRunner().invoke(cli_root, ["declare", reg.sha["meta"], str(dec_file)], env=env, catch_exceptions=False)
    assert r.exit_code == 0, r.output

    # 6. an exhibit of the plain model (record.json, report.pdf, the folder), through the real command
    reg.exhibit_dir = root / "exhibit-plain"
    args = ["exhibit", reg.sha["plain"], "--output", str(reg.exhibit_dir)] + ([] if PDF else ["--no-pdf"])
    r = CliRunner().invoke(cli_root, args, env=env, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    reg.exhibit_record_sha256 = hashlib.sha256((reg.exhibit_dir / "record.json").read_bytes()).hexdigest()
    return reg


# ---------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    return build_registry(tmp_path_factory.mktemp("serve-browser"))


@pytest.fixture(scope="module")
def base_url(registry: Registry) -> Iterator[str]:
    import uvicorn

    from registry.web.app import create_app

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(registry.db), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


WATCH = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', e => {
  window.__csp.push({directive: e.violatedDirective, blocked: e.blockedURI, sample: e.sample});
});
"""


class Watched:
    """A page with everything that would betray a payload recorded: console errors, page errors, CSP
    violations, dialogs, and requests that leave the server."""

    def __init__(self, page: Any, base: str) -> None:
        self.page = page
        self.base = base
        self.console: list[str] = []
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.foreign: list[str] = []
        self.failed: list[str] = []
        page.on("console", lambda m: self.console.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        page.on("request", lambda r: None if r.url.startswith((base, "data:", "about:")) else self.foreign.append(r.url))
        page.on("response", lambda r: self.failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        page.add_init_script(WATCH)

    def goto(self, path: str) -> Any:
        resp = self.page.goto(self.base + path)
        assert resp is not None and resp.status == 200, f"{path}: {resp.status if resp else 'no response'}"
        return resp

    def assert_clean(self, where: str) -> None:
        pwned = self.page.evaluate("window.__pwned")
        csp = self.page.evaluate("window.__csp")
        assert pwned is None, f"{where}: a payload ran ({pwned})"
        assert csp == [], f"{where}: CSP violations (an injected script or style was blocked): {csp}"
        assert self.errors == [], f"{where}: page errors {self.errors}"
        assert self.failed == [], f"{where}: failed requests {self.failed}"
        assert self.console == [], f"{where}: console errors {self.console}"
        assert self.dialogs == [], f"{where}: dialogs {self.dialogs}"
        assert self.foreign == [], f"{where}: requests to other origins {self.foreign}"
        injected = self.page.evaluate(INJECTED)
        assert injected == [], f"{where}: injected elements or attributes {injected}"


#: elements and attributes no page of the app has, and a payload would add
INJECTED = """
(() => {
  const bad = [];
  for (const el of document.querySelectorAll('*')) {
    for (const a of el.attributes) {
      const v = a.value.replace(/[\\s\\u0000-\\u001f]+/g, '').toLowerCase();
      if (a.name.startsWith('on')) bad.push(`${el.tagName}[${a.name}]`);
      if (['href', 'src', 'action', 'formaction', 'xlink:href'].includes(a.name) && v.startsWith('javascript:'))
        bad.push(`${el.tagName}[${a.name}=${a.value}]`);
      if (a.name === 'autofocus') bad.push(`${el.tagName}[autofocus]`);
    }
    if (el.tagName === 'SCRIPT' && !el.src) bad.push('inline SCRIPT: ' + el.textContent.slice(0, 60));
    if (['IFRAME', 'OBJECT', 'EMBED'].includes(el.tagName)) bad.push(el.tagName);
    if (el.tagName === 'IMG' && el.getAttribute('src') === 'x') bad.push('IMG src=x');
  }
  return bad;
})()
"""


@pytest.fixture
def watched(browser: Any, base_url: str) -> Iterator[Watched]:
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
    try:
        yield Watched(context.new_page(), base_url)
    finally:
        context.close()


# ---------------------------------------------------------------------------------------------- the click path
def test_search_model_figure_exhibit_downloads(watched: Watched, registry: Registry) -> None:
    page = watched.page
    watched.goto("/")
    # search from the header's search box, by a trigger word of the plain model
    box = page.get_by_role("searchbox", name="Search models")
    box.fill("hrbrlights")
    box.press("Enter")
    page.wait_for_url("**/?q=hrbrlights")
    rows = page.locator("table.models tbody tr")
    assert rows.count() == 1
    assert "1 model" in page.get_by_role("status").inner_text()
    # the shareable URL gives the same result when opened afresh
    json_twin = page.request.get(watched.base + "/?q=hrbrlights&format=json").json()
    assert [r["sha256"] for r in json_twin["rows"]] == [registry.sha["plain"]]

    # -> the model page
    rows.first.get_by_role("link", name="harbour_lights_v2.safetensors").click()
    page.wait_for_url(f"**/model/{registry.sha['plain']}")
    assert page.get_by_role("heading", level=1).inner_text() == "harbour_lights_v2.safetensors"
    assert registry.sha["plain"] in page.locator("table.hashes").inner_text()

    # -> the figures: the table of contents leads to the statistics section, whose SVGs are drawn
    stats_link = page.locator("nav.toc a[href='#stats']")
    stats_link.click()
    page.wait_for_url("**#stats")
    figures = page.locator("#stats figure svg")
    assert figures.count() == 2  # spectra and the per-block profile
    for i in range(2):
        svg = figures.nth(i)
        assert svg.is_visible()
        assert svg.get_attribute("role") == "img" and svg.get_attribute("aria-label")
        box_ = svg.bounding_box()
        assert box_ is not None and box_["width"] > 300 and box_["height"] > 50
    # spectra: one line per module (3), one point per singular value (rank 4), as the legend says
    spectra = figures.nth(0)
    assert page.locator("#stats figure").nth(0).locator("ol.legend li").count() == 3
    lines = spectra.locator("polyline")
    assert lines.count() == 3
    assert all(len(lines.nth(k).get_attribute("points").split()) == 4 for k in range(3))
    # profile: a bar per block, and at least one of them drawn with a width
    widths = [float(w) for w in figures.nth(1).locator("rect[height='12']").evaluate_all("rs => rs.map(r => r.getAttribute('width'))")]
    assert len(widths) >= 1 and max(widths) > 0

    # -> the exhibit downloads, each checked by content
    exhibits = page.locator("#exhibits")
    rec = registry.exhibit_record_sha256
    with page.expect_download() as d:
        exhibits.get_by_role("link", name="record.json").click()
    got = Path(d.value.path()).read_bytes()
    assert hashlib.sha256(got).hexdigest() == rec
    assert json.loads(got)["model"]["sha256"] == registry.sha["plain"]
    assert d.value.suggested_filename == f"exhibit-{rec[:16]}-record.json"

    assert registry.exhibit_dir is not None
    if PDF:  # (without Pango the exhibit has no report.pdf)
        with page.expect_download() as d:
            exhibits.get_by_role("link", name="PDF").click()
        pdf = Path(d.value.path()).read_bytes()
        assert pdf == (registry.exhibit_dir / "report.pdf").read_bytes()
        assert pdf.startswith(b"%PDF-")

    with page.expect_download() as d:
        exhibits.get_by_role("link", name="folder (zip)").click()
    with zipfile.ZipFile(io.BytesIO(Path(d.value.path()).read_bytes())) as z:
        names = {n.split("/", 1)[1]: n for n in z.namelist()}
        want = sorted(p.relative_to(registry.exhibit_dir).as_posix() for p in registry.exhibit_dir.rglob("*") if p.is_file())
        assert sorted(names) == want
        assert hashlib.sha256(z.read(names["record.json"])).hexdigest() == rec
    watched.assert_clean("search -> model -> figure -> exhibit")


# ---------------------------------------------------------------------------------------------- payloads
def _poke(watched: Watched, tabs: int = 30) -> None:
    """Do what a user does that would fire an injected handler: tab through, hover and click payload text."""
    page = watched.page
    page.locator("body").focus()
    for _ in range(tabs):
        page.keyboard.press("Tab")
    for det in page.locator("details").all()[:40]:
        det.evaluate("d => d.open = true")
    marks = page.get_by_text("__pwned", exact=False)
    for k in range(min(marks.count(), 15)):
        m = marks.nth(k)
        if m.is_visible():
            m.hover()


def _text(watched: Watched) -> str:
    return str(watched.page.evaluate("document.body.textContent"))


def test_payloads_in_model_files_never_run(watched: Watched, registry: Registry) -> None:
    page = watched.page
    # the list, searched for the payloads themselves: every payload model is listed, its names as text
    watched.goto("/?q=__pwned")
    listed = page.locator("table.models tbody tr")
    assert listed.count() == 3  # meta (metadata), names and javascript (file and folder names)
    _poke(watched)
    watched.assert_clean("list ?q=__pwned")
    text = _text(watched)
    assert "<img src=x onerror=window.__pwned='name:html'>.safetensors" in text
    assert "javascript:window.__pwned='name:javascript'.safetensors" in text

    for key in ("meta", "names", "javascript", "sidecar"):
        watched.goto(f"/model/{registry.sha[key]}")
        _poke(watched)
        watched.assert_clean(f"model page {key}")
    # every stored payload is shown as text somewhere on the model pages (escaped, not dropped)
    shown = ""
    for key in ("meta", "names", "javascript", "sidecar"):
        watched.goto(f"/model/{registry.sha[key]}")
        shown += _text(watched)
    # (as typed, or in the JSON or Python-quoted form a record section or finding message quotes it in)
    missing = [where for where, p in registry.stored.items()
               if not any(form in shown for form in (p, json.dumps(p)[1:-1], repr(p)[1:-1]))]  # fmt: skip
    assert missing == [], f"payloads not shown as text: {missing}"

    for path in ("/findings", "/log", f"/diff?a={registry.sha['meta']}&b={registry.sha['names']}",
                 f"/log?ref={registry.sha['meta']}&verify=1"):  # fmt: skip
        watched.goto(path)
        _poke(watched)
        watched.assert_clean(path)


@pytest.mark.parametrize("kind", ["script", "html", "attribute", "javascript"])
def test_payloads_in_urls_never_run(watched: Watched, registry: Registry, kind: str) -> None:
    """Every query parameter a page echoes (search box, filters, refs in error messages) is escaped."""
    from urllib.parse import quote

    p = payloads(f"url-{kind}")[kind]
    q = quote(p, safe="")
    for path, status in ((f"/?q={q}", 200), (f"/?q=x&name={q}&arch={q}&trigger={q}&sort=name", 200),
                         (f"/?min_severity={q}", 400), (f"/model/{q}", 404), (f"/diff?a={q}&b={q}", 404),
                         (f"/log?ref={q}", 404), (f"/findings?rule={q}", 200), (f"/login?next={q}", 200)):  # fmt: skip
        resp = watched.page.goto(watched.base + path)
        assert resp is not None and resp.status == status, (path, resp.status if resp else None)
        watched.failed.clear()  # the 400/404 answers themselves are expected
        watched.console.clear()
        _poke(watched, tabs=10)
        watched.assert_clean(path)


# ---------------------------------------------------------------------------------------------- accessibility
FOCUS = """
(() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const s = getComputedStyle(el);
  const outline = s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2;
  const r = el.getBoundingClientRect();
  return {tag: el.tagName, id: el.id, type: el.getAttribute('type'), href: el.getAttribute('href'),
          text: (el.innerText || el.value || '').trim().slice(0, 60), focusVisible: el.matches(':focus-visible'),
          outline, visible: r.width > 0 && r.height > 0 && r.right > 0 && r.bottom > 0};
})()
"""


def _tab_stops(page: Any, n: int) -> list[dict[str, Any]]:
    stops = []
    for _ in range(n):
        page.keyboard.press("Tab")
        stops.append(page.evaluate(FOCUS))
    return stops


def test_keyboard_reaches_search_and_links_with_visible_focus(watched: Watched, registry: Registry) -> None:
    page = watched.page
    watched.goto("/")
    stops = _tab_stops(page, 14)  # from the top of a freshly loaded page
    assert all(s is not None for s in stops)
    # the first stop is the skip link, shown when focused; then the main navigation, then the search box
    assert stops[0]["text"] == "Skip to content" and stops[0]["visible"]
    kinds = [(s["tag"], s["id"] or s["href"]) for s in stops]
    assert ("A", "/findings") in kinds and ("INPUT", "top-q") in kinds
    assert kinds.index(("A", "/")) < kinds.index(("INPUT", "top-q"))
    # focus is always visible: every stop is on screen, matches :focus-visible and draws an outline
    for s in stops:
        assert s["visible"] and s["focusVisible"] and s["outline"], s
    # model links in the table are reachable too, in reading order after the search form
    stops = _tab_stops(page, 40)  # (continuing from where the first 14 stopped)
    model_links = [s for s in stops if s is not None and (s["href"] or "").startswith("/model/")]
    assert len(model_links) >= 3
    # the skip link moves focus to the main content
    watched.goto("/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"

    # keyboard only: search, open the first result, follow the table of contents to the figures
    watched.goto("/")
    page.locator("body").focus()
    for _ in range(20):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "top-q":
            break
    page.keyboard.type("harbour_lights")
    page.keyboard.press("Enter")
    page.wait_for_url("**/?q=harbour_lights")
    for _ in range(60):
        page.keyboard.press("Tab")
        if (page.evaluate("document.activeElement.getAttribute('href')") or "").startswith("/model/"):
            break
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/model/{registry.sha['plain']}")
    for _ in range(60):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.getAttribute('href')") == "#stats":
            break
    page.keyboard.press("Enter")
    page.wait_for_url("**#stats")
    assert page.locator("#stats figure svg").first.is_visible()
    watched.assert_clean("keyboard")


#: roles whose nodes need an accessible name (WAI-ARIA: name required from author or contents; pages
#: have several navigation landmarks, which names tell apart)
NAMED_ROLES = {"link", "button", "textbox", "searchbox", "combobox", "checkbox", "radio", "spinbutton", "img",
               "listbox", "slider", "switch", "tab", "menuitem", "navigation"}


def _unnamed(page: Any) -> list[str]:
    """Nodes of Chromium's own accessibility tree whose role needs a name and that have none."""
    cdp = page.context.new_cdp_session(page)
    try:
        nodes = cdp.send("Accessibility.getFullAXTree")["nodes"]
    finally:
        cdp.detach()
    bad = []
    for n in nodes:
        if n.get("ignored"):
            continue
        role = (n.get("role") or {}).get("value")
        name = ((n.get("name") or {}).get("value") or "").strip()
        if role in NAMED_ROLES and not name:
            bad.append(f"{role} #{n.get('backendDOMNodeId')}")
    return bad


STRUCTURE = """
(() => {
  const out = {};
  out.lang = document.documentElement.lang;
  out.title = document.title;
  out.h1 = document.querySelectorAll('h1').length;
  out.main = document.querySelectorAll('main').length;
  const levels = [...document.querySelectorAll('h1,h2,h3,h4,h5,h6')].map(h => +h.tagName[1]);
  out.skipped = levels.some((l, i) => i > 0 && l > levels[i - 1] + 1);
  out.unlabelled = [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
    .filter(el => !(el.labels && [...el.labels].some(l => l.textContent.trim())) && !el.getAttribute('aria-label'))
    .map(el => el.name || el.id);
  out.imgNoAlt = [...document.querySelectorAll('img')].filter(i => !i.hasAttribute('alt')).length;
  out.thNoScope = [...document.querySelectorAll('thead th')].filter(t => !t.getAttribute('scope')).length;
  return out;
})()
"""


def _pages(registry: Registry) -> list[str]:
    return ["/", f"/model/{registry.sha['plain']}", f"/model/{registry.sha['meta']}", "/findings", "/log",
            f"/diff?a={registry.sha['plain']}&b={registry.sha['sidecar']}", "/diff", "/log?verify=1"]  # fmt: skip


def test_labels_and_accessible_names(watched: Watched, registry: Registry) -> None:
    page = watched.page
    for path in _pages(registry):
        watched.goto(path)
        for det in page.locator("details").all():
            det.evaluate("d => d.open = true")  # the filter form too
        s = page.evaluate(STRUCTURE)
        assert s["lang"] == "en" and s["title"].endswith("modelreg"), (path, s)
        assert s["h1"] == 1 and s["main"] == 1 and not s["skipped"], (path, s)
        assert s["unlabelled"] == [] and s["imgNoAlt"] == 0 and s["thNoScope"] == 0, (path, s)
        assert _unnamed(page) == [], path
        watched.assert_clean(path)
    # the names a screen reader announces for the main controls
    watched.goto("/")
    page.locator("details.filters").first.evaluate("d => d.open = true")
    assert page.get_by_role("searchbox", name="Search models").is_visible()
    assert page.get_by_role("combobox", name="Kind").is_visible()
    assert page.get_by_role("combobox", name="Findings at or above").is_visible()
    assert page.get_by_role("checkbox", name="NaN/Inf weights only").is_visible()
    watched.goto(f"/model/{registry.sha['plain']}")
    assert page.get_by_role("button", name="Copy SHA-256").count() >= 1
    assert page.get_by_role("navigation", name="Sections").is_visible()


# ---------------------------------------------------------------------------------------------- screenshots
def _pixels(png: bytes) -> Any:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float64)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_screenshots_are_not_blank(browser: Any, base_url: str, registry: Registry, scheme: str) -> None:
    pytest.importorskip("PIL")
    context = browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme=scheme)
    try:
        page = context.new_page()
        for path in _pages(registry):
            page.goto(base_url + path)
            px = _pixels(page.screenshot())
            lum = px @ np.array([0.2126, 0.7152, 0.0722])
            colours = len(np.unique(px.reshape(-1, 3), axis=0))
            # not blank: a spread of luminance, many colours (text antialiasing, links, severities)
            assert lum.std() > 8 and colours > 50, (path, scheme, lum.std(), colours)
            # the page background follows the system setting (mean luminance of the top-left corner)
            corner = lum[-40:, -40:].mean()
            if scheme == "dark":
                assert corner < 60, (path, corner)
            else:
                assert corner > 200, (path, corner)
    finally:
        context.close()
