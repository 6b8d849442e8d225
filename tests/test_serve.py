"""`modelreg serve`: every route through Starlette's TestClient against a registry built by the real CLI
(scan, audit with sidecars, declare, exhibit): JSON twins equal to `show`/`ls`/`diff`/`log` JSON, attacker
strings escaped everywhere, no path traversal, token and host refusal, CSRF, a busy registry."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
import textwrap
import time
import zipfile
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("starlette")
pytest.importorskip("jinja2")
pytest.importorskip("python_multipart")

from starlette.testclient import TestClient  # noqa: E402

from cli.main import root  # noqa: E402
from registry.web.app import CSP, check_bind, create_app, is_loopback  # noqa: E402
from tests.builders import write_safetensors  # noqa: E402
from tests.image_builders import png_texts  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BASE = "http://127.0.0.1"
SHA_RE = re.compile(r"[0-9a-f]{64}")

# attacker-controlled strings: script, HTML, attribute and javascript: payloads
P_NAME = "\"'><img src=x onerror=alert(1)> javascript:alert(2) <script>alert(3)"
P_SCRIPT = "<script>alert('ss')</script>"
P_ATTR = "\" onmouseover=\"alert('attr')\" x=\""
P_SVG = "<svg onload=alert('svg')>"
P_JS = "javascript:alert('js')"
PAYLOADS = [P_NAME, P_SCRIPT, P_ATTR, P_SVG]

METADATA = {
    "ss_network_module": "networks.lora",
    "ss_network_dim": "4",
    "ss_network_alpha": "2",
    "ss_output_name": P_SCRIPT,
    "ss_num_train_images": "20",
    "ss_tag_frequency": json.dumps({"10_pay": {P_SVG: 3, "ohwx": 5, P_ATTR: 1}}),
    "ss_dataset_dirs": json.dumps({"10_pay": {"n_repeats": 10, "img_count": 2}}),
    "ss_sd_model_name": P_NAME,
    "modelspec.title": P_SVG,
    "modelspec.trigger_phrase": "ohwx, " + P_SCRIPT,
    "modelspec.author": P_ATTR,
    "modelspec.description": P_JS,
}


def run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(root, list(args), catch_exceptions=False)
    return r.exit_code, r.stdout, r.stderr


def lora(seed: int, rank: int = 4, blocks: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    t: dict[str, np.ndarray] = {}
    for b in range(blocks):
        base = f"lora_unet_down_blocks_{b}_attentions_0_transformer_blocks_0_attn1_to_q"
        t[f"{base}.lora_down.weight"] = rng.standard_normal((rank, 32)).astype(np.float32)
        t[f"{base}.lora_up.weight"] = rng.standard_normal((32, rank)).astype(np.float32)
        t[f"{base}.alpha"] = np.array(float(rank), np.float32)
    return t


class Reg:
    def __init__(self, root_dir: Path) -> None:
        self.dir = root_dir
        self.db = root_dir / "registry.duckdb"
        self.models = root_dir / "models"

    def cli(self, *args: str) -> tuple[int, str, str]:
        return run("--db", str(self.db), *args)


@pytest.fixture(scope="module")
def reg(tmp_path_factory: pytest.TempPathFactory) -> Reg:
    r = Reg(tmp_path_factory.mktemp("serve"))
    bad = write_safetensors(r.models / f"{P_NAME}.safetensors", lora(1), METADATA)
    clean = write_safetensors(r.models / "anya_lora.safetensors", lora(2), {"ss_network_dim": "4", "modelspec.trigger_phrase": "anya"})
    big = write_safetensors(r.models / "big_lora.safetensors", lora(3, rank=8, blocks=4),
                           {"ss_network_dim": "8", "ss_training_comment": 'trained on "Café Müller" photos'})
    r.big_sha = hashlib.sha256(big.read_bytes()).hexdigest()  # type: ignore[attr-defined]
    r.bad_sha = hashlib.sha256(bad.read_bytes()).hexdigest()  # type: ignore[attr-defined]
    r.clean_sha = hashlib.sha256(clean.read_bytes()).hexdigest()  # type: ignore[attr-defined]
    # a Civitai sidecar beside the payload model: its claims are attacker-controlled too
    (r.models / f"{P_NAME}.civitai.info").write_text(json.dumps({
        "id": 1, "modelId": 2, "name": P_SCRIPT, "baseModel": P_SVG, "trainedWords": [P_ATTR, P_JS],
        "description": P_NAME, "downloadUrl": P_JS,
        "model": {"name": P_NAME, "type": "LORA", "nsfw": False, "poi": False},
        "creator": {"username": P_SVG},
        "files": [{"name": bad.name, "primary": True, "hashes": {"SHA256": r.bad_sha.upper()}}],  # type: ignore[attr-defined]
    }))  # fmt: skip
    # a sidecar that names another file (a finding whose message quotes its claims), and a damaged file
    (r.models / "anya_lora.cm-info.json").write_text(json.dumps({"ModelName": P_SVG, "VersionName": P_ATTR, "Hashes": {"SHA256": "AB" * 32}}))
    (r.models / "broken.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    code, _, err = r.cli("audit", "--exit-zero", str(r.models))
    assert code == 0, err
    decl = {
        "schemaVersion": "1.0",
        "model": {"sha256": r.bad_sha, "license": "CC-BY-4.0", "name": P_SCRIPT},  # type: ignore[attr-defined]
        "declarant": {"name": P_NAME, "contact": P_JS},
        "date": "2025-03-14",
        "training": {"method": "lora", "triggerWords": [P_SVG]},
        "datasets": [{"name": P_ATTR, "license": "CC0-1.0", "itemCount": 40, "repeats": 10,
                      "description": P_SCRIPT, "sources": [{"url": P_JS, "description": P_SVG}]}],
    }  # fmt: skip
    f = r.dir / "decl.json"
    f.write_text(json.dumps(decl))
    code, _, err = r.cli("declare", r.bad_sha, str(f))  # type: ignore[attr-defined]
    assert code == 0, err
    # an image whose metadata attributes it to the clean LoRA (`modelreg trace`); its name and prompt are payloads
    from registry.store.db import connect

    with connect(r.db, read_only=True) as con:
        row = con.execute("SELECT autov3 FROM blobs WHERE sha256 = ?", [r.clean_sha]).fetchone()  # type: ignore[attr-defined]
    assert row is not None
    infotext = (f"{P_SCRIPT} portrait, <lora:anya:0.7>\nNegative prompt: {P_SVG}\nSteps: 20, Sampler: Euler, "
                f'Seed: 1, Size: 512x512, Lora hashes: "anya: {row[0][:12]}", Version: v1.10.1')  # fmt: skip
    images = r.dir / "images"
    images.mkdir()
    img = images / f"{P_NAME}.png"
    img.write_bytes(png_texts({"parameters": infotext}))
    r.image_sha = hashlib.sha256(img.read_bytes()).hexdigest()  # type: ignore[attr-defined]
    code, _, err = r.cli("trace", str(images))
    assert code == 0, err
    code, _, err = r.cli("exhibit", r.clean_sha, "-o", str(r.dir / "exhibit"), "--no-pdf")  # type: ignore[attr-defined]
    assert code == 0, err
    r.record_sha = hashlib.sha256((r.dir / "exhibit" / "record.json").read_bytes()).hexdigest()  # type: ignore[attr-defined]
    return r


@pytest.fixture
def client(reg: Reg) -> TestClient:
    return TestClient(create_app(reg.db), base_url=BASE)


def get_json(client: TestClient, url: str) -> Any:
    r = client.get(url)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    return r.json()


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


def assert_safe_html(html: str) -> None:
    """Parsed as a browser would: the one script is the app's own; no element carries an event handler
    attribute; no link, source or form target is a javascript: URL; no payload element (img, svg with
    handlers, iframe) came from data."""
    p = _Tags()
    p.feed(html)
    scripts = [a for t, a in p.tags if t == "script"]
    assert scripts == [[("src", "/static/copy.js"), ("defer", None)]], scripts
    for tag, attrs in p.tags:
        assert tag not in ("img", "iframe", "object", "embed") or dict(attrs).get("src", "").startswith("/sample/"), (tag, attrs)
        for name, value in attrs:
            assert not name.startswith("on"), (tag, attrs)
            assert name not in ("style",), (tag, attrs)
            if name in ("href", "src", "action", "formaction", "xlink:href"):
                assert not (value or "").strip().lower().startswith(("javascript:", "data:", "vbscript:")), (tag, attrs)


# -- routes and JSON twins ---------------------------------------------------------------------------


def test_every_page_renders_with_security_headers(reg: Reg, client: TestClient) -> None:
    sha = reg.bad_sha  # type: ignore[attr-defined]
    pages = ["/", f"/model/{sha}", f"/model/{reg.clean_sha}", "/findings", "/log", "/log?verify=1",  # type: ignore[attr-defined]
             f"/diff?a={sha}&b={reg.clean_sha}", "/diff", "/?q=ohwx", "/static/style.css", "/static/copy.js"]  # type: ignore[attr-defined]  # fmt: skip
    for url in pages:
        r = client.get(url)
        assert r.status_code == 200, (url, r.text[:500])
        assert r.headers["content-security-policy"] == CSP
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"
        if r.headers["content-type"].startswith("text/html"):
            assert_safe_html(r.text)  # also: no inline style attribute (CSP style-src 'self')
    for row in get_json(client, "/?format=json")["rows"]:  # every model's page, the damaged file's too
        r = client.get(f"/model/{row['sha256']}")
        assert r.status_code == 200 and r.headers["content-security-policy"] == CSP
        assert_safe_html(r.text)
    # the JSON twin also by content negotiation
    r = client.get("/findings", headers={"Accept": "application/json"})
    assert r.headers["content-type"].startswith("application/json") and "by_rule" in r.json()


def test_list_json_twin_equals_ls_json(reg: Reg, client: TestClient) -> None:
    cases = [
        ([], ""),
        (["--kind", "lora"], "kind=lora"),
        (["--trigger", "ohwx"], "trigger=ohwx"),
        (["--sort", "size"], "sort=size"),
        (["--name", "anya*"], "name=anya*"),
        (["--min-severity", "info"], "min_severity=info"),
        (["--min-eff-rank", "3.5"], "min_eff_rank=3.5"),
        (["--form", "lora", "--sort", "findings"], "form=lora&sort=findings"),
    ]
    for args, qs in cases:
        code, out, err = reg.cli("ls", "--format", "json", *args)
        assert code == 0, err
        web = get_json(client, f"/?format=json&{qs}")
        assert web["rows"] == json.loads(out), args
        assert web["total"] == len(json.loads(out))
    assert [r["sha256"] for r in get_json(client, "/?format=json&name=anya*")["rows"]] == [reg.clean_sha]  # type: ignore[attr-defined]


def test_free_text_search_pages_and_sort(reg: Reg, client: TestClient) -> None:
    bad, clean = reg.bad_sha, reg.clean_sha  # type: ignore[attr-defined]
    # trigger words, tags (ss_tag_frequency), metadata values, file names; case-insensitive
    assert [r["sha256"] for r in get_json(client, "/?format=json&q=ANYA")["rows"]] == [clean]
    assert [r["sha256"] for r in get_json(client, "/?format=json&q=onmouseover")["rows"]] == [bad]
    big = reg.big_sha  # type: ignore[attr-defined]
    assert [r["sha256"] for r in get_json(client, "/?format=json&q=BIG_lora")["rows"]] == [big]
    assert [r["sha256"] for r in client.get("/", params={"format": "json", "q": '"café müller"'}).json()["rows"]] == [big]
    assert get_json(client, "/?format=json&q=no-such-text-anywhere")["total"] == 0
    everything = get_json(client, "/?format=json&sort=size")["rows"]
    assert [r["size"] for r in everything] == sorted((r["size"] for r in everything), reverse=True)
    rev = get_json(client, "/?format=json&sort=size&desc=1")["rows"]
    assert [r["sha256"] for r in rev] == [r["sha256"] for r in everything][::-1]
    p1 = get_json(client, "/?format=json&sort=size&per_page=2")
    p2 = get_json(client, "/?format=json&sort=size&per_page=2&page=2")
    assert p1["total"] == p2["total"] == 4
    assert [r["sha256"] for r in p1["rows"] + p2["rows"]] == [r["sha256"] for r in everything]
    html = client.get("/?sort=size&per_page=2").text
    assert 'href="/?sort=size&amp;per_page=2&amp;page=2" rel="next"' in html  # shareable URLs
    r = client.get("/?q=anya&name=&kind=&sort=size&min_norm=", follow_redirects=False)  # as the filter form sends it
    assert r.status_code == 303 and r.headers["location"] == "/?q=anya&sort=size"
    assert client.get("/?min_eff_rank=abc").status_code == 400
    assert client.get("/?sort=nonsense").status_code == 400
    assert client.get("/?where=1=1").status_code == 200  # raw SQL is not a web filter: ignored
    assert get_json(client, "/?format=json&where=1=0")["total"] == 4


def test_every_sort_reverses_exactly_and_pages_concatenate(client: TestClient) -> None:
    from registry.listing import SORTS

    for key in SORTS:
        asc = [r["sha256"] for r in get_json(client, f"/?format=json&sort={key}")["rows"]]
        desc = [r["sha256"] for r in get_json(client, f"/?format=json&sort={key}&desc=1")["rows"]]
        assert len(asc) == 4 and desc == asc[::-1], key
        for per_page in (1, 3):
            pages = [get_json(client, f"/?format=json&sort={key}&per_page={per_page}&page={p}") for p in (1, 2, 3, 4)]
            assert [r["sha256"] for pg in pages for r in pg["rows"]][:4] == asc and all(pg["total"] == 4 for pg in pages)
    assert get_json(client, "/?format=json&page=99")["rows"] == []


def test_model_json_twin_equals_show_json(reg: Reg, client: TestClient) -> None:
    for sha in (reg.bad_sha, reg.clean_sha):  # type: ignore[attr-defined]
        code, out, err = reg.cli("show", sha, "--format", "json")
        assert code == 0, err
        assert get_json(client, f"/model/{sha}?format=json") == json.loads(out)
    # any reference `show` takes: a prefix, an AutoV2, a file name
    assert get_json(client, f"/model/{reg.clean_sha[:12]}?format=json")["sha256"] == reg.clean_sha  # type: ignore[attr-defined]
    assert get_json(client, "/model/anya_lora.safetensors?format=json")["sha256"] == reg.clean_sha  # type: ignore[attr-defined]
    assert client.get("/model/ffffffffffff").status_code == 404


def test_model_page_shows_every_section_hashes_and_figures(reg: Reg, client: TestClient) -> None:
    sha = reg.bad_sha  # type: ignore[attr-defined]
    record = get_json(client, f"/model/{sha}?format=json")
    html = client.get(f"/model/{sha}").text
    for name in record:
        if name != "sha256":
            assert f'<section id="{name}"' in html, name
    for key in ("sha256", "autov2", "blake3", "crc32"):
        value = record["file"][key]
        assert f'data-copy="{value}"' in html
    assert html.count("<svg") >= 2 and "Singular-value spectra" in html  # spectra and block profile inline
    assert "contradiction" in html.lower() and 'id="declaration"' in html
    assert "civitai" in html.lower()  # the sidecar's claims (provenance)


def test_images_attributed_by_trace(reg: Reg, client: TestClient) -> None:
    clean, img = reg.clean_sha, reg.image_sha  # type: ignore[attr-defined]
    record = get_json(client, f"/model/{clean}?format=json")
    assert [(d["image_sha256"], d["ref_name"], d["status"]) for d in record["images"]["images"]] == [(img, "anya", "matched")]
    html = client.get(f"/model/{clean}").text
    assert 'id="images"' in html and img[:12] in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html.split('id="images"', 1)[1]  # the image's file name, as text
    code, out, _ = reg.cli("ls", "--used-in", img[:16], "--format", "json")
    assert code == 0
    assert get_json(client, f"/?format=json&used_in={img[:16]}")["rows"] == json.loads(out) != []


def test_exhibit_downloads_by_content_address(reg: Reg, client: TestClient) -> None:
    rsha = reg.record_sha  # type: ignore[attr-defined]
    html = client.get(f"/model/{reg.clean_sha}").text  # type: ignore[attr-defined]
    assert f'href="/exhibit/{rsha}/record.json"' in html
    r = client.get(f"/exhibit/{rsha}/record.json")
    assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == rsha
    assert r.headers["content-disposition"].startswith("attachment;")
    z = zipfile.ZipFile(io.BytesIO(client.get(f"/exhibit/{rsha}/exhibit.zip").content))
    names = z.namelist()
    top = f"exhibit-{rsha[:16]}"
    assert f"{top}/record.json" in names and f"{top}/MANIFEST" in names
    assert hashlib.sha256(z.read(f"{top}/record.json")).hexdigest() == rsha
    folder = reg.dir / "exhibit"
    assert sorted(n[len(top) + 1:] for n in names) == sorted(
        p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()
    )
    assert client.get(f"/exhibit/{rsha}/report.pdf").status_code == 404  # made with --no-pdf


def test_no_path_traversal(reg: Reg, client: TestClient) -> None:
    rsha = reg.record_sha  # type: ignore[attr-defined]
    for url in [
        "/exhibit/../../../../etc/passwd",
        f"/exhibit/{rsha}/../../../../etc/passwd",
        f"/exhibit/{rsha}/..%2f..%2f..%2fetc%2fpasswd",
        f"/exhibit/{rsha}/MANIFEST",
        f"/exhibit/{rsha}/%2e%2e/record.json",
        "/exhibit/..%2f..%2fetc/record.json",
        f"/exhibit/{rsha.upper()}/record.json",
        f"/exhibit/{reg.clean_sha}/record.json",  # a model's hash is not an exhibit's  # type: ignore[attr-defined]
        "/sample/..%2f..%2fetc%2fpasswd.png",
        "/sample/" + "0" * 64 + ".png",
        "/static/../app.py",
        "/static/%2e%2e/app.py",
        "/static/..%2fapp.py",
    ]:
        r = client.get(url)
        assert r.status_code == 404, (url, r.status_code)
        assert b"root:" not in r.content and b"create_app" not in r.content


def test_exhibit_file_changed_or_linked_is_not_served(reg: Reg, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "reg"
    shutil.copytree(reg.dir, copy, symlinks=True)
    # the registry still names the original folder; point a copy of the app at a registry whose exhibit
    # folder now holds a symlink for the report and a changed record
    client = TestClient(create_app(copy / "registry.duckdb"), base_url=BASE)
    folder = reg.dir / "exhibit"
    rsha = reg.record_sha  # type: ignore[attr-defined]
    (folder / "report.pdf").symlink_to("/etc/passwd")
    try:
        assert client.get(f"/exhibit/{rsha}/report.pdf").status_code == 404
        names = zipfile.ZipFile(io.BytesIO(client.get(f"/exhibit/{rsha}/exhibit.zip").content)).namelist()
        assert not any(n.endswith("report.pdf") for n in names)
    finally:
        (folder / "report.pdf").unlink()
    original = (folder / "record.json").read_bytes()
    (folder / "record.json").write_bytes(original + b" ")
    try:
        assert client.get(f"/exhibit/{rsha}/record.json").status_code == 404
    finally:
        (folder / "record.json").write_bytes(original)


def test_diff_json_twin_equals_diff_json(reg: Reg, client: TestClient) -> None:
    a, b = reg.bad_sha, reg.clean_sha  # type: ignore[attr-defined]
    code, out, err = reg.cli("diff", a, b, "--format", "json")
    assert code == 0, err
    assert get_json(client, f"/diff?a={a}&b={b}&format=json") == json.loads(out)
    assert "Most changed tensors" in client.get(f"/diff?a={a}&b={b}").text


def test_findings_overview(reg: Reg, client: TestClient) -> None:
    data = get_json(client, "/findings?format=json")
    from registry.store.db import connect

    with connect(reg.db, read_only=True) as con:
        by_rule = dict(con.execute("SELECT rule_id, count(*) FROM findings GROUP BY rule_id").fetchall())
        total = con.execute("SELECT count(*) FROM findings").fetchone()
    assert {r["rule_id"]: r["findings"] for r in data["by_rule"]} == by_rule
    assert data["total"] == total[0] and sum(v["findings"] for v in data["by_severity"].values()) == total[0]
    rule = next(iter(by_rule))
    one = get_json(client, f"/findings?format=json&rule={rule}")
    assert one["total"] == by_rule[rule] and {f["rule_id"] for f in one["findings"]} == {rule}
    assert client.get("/findings?severity=apocalyptic").status_code == 400


def test_log_json_twin_and_verify(reg: Reg, client: TestClient) -> None:
    code, out, err = reg.cli("log", "--format", "json")
    assert code == 0, err
    data = get_json(client, "/log?format=json")
    assert data["events"] == json.loads(out) and data["verify"] is None
    code, out, _ = reg.cli("log", reg.clean_sha, "--format", "json")  # type: ignore[attr-defined]
    assert get_json(client, f"/log?format=json&ref={reg.clean_sha}")["events"] == json.loads(out)  # type: ignore[attr-defined]
    v = get_json(client, "/log?format=json&verify=1")["verify"]
    assert v["ok"] is True and v["n_events"] == len(data["events"]) and v["problems"] == []
    assert "chain ok" in client.get("/log?verify=1").text


def test_log_verify_names_a_tampered_event(reg: Reg, tmp_path: Path) -> None:
    import shutil

    import duckdb

    copy = tmp_path / "reg"
    shutil.copytree(reg.dir, copy, symlinks=True)
    db = copy / "registry.duckdb"
    con = duckdb.connect(str(db))
    con.execute("UPDATE events SET actor = 'mallory@elsewhere' WHERE seq = 2")
    con.close()
    client = TestClient(create_app(db), base_url=BASE)
    v = get_json(client, "/log?format=json&verify=1")["verify"]
    assert v["ok"] is False and v["first_broken_seq"] == 2
    assert "chain BROKEN at event 2" in client.get("/log?verify=1").text


# -- escaping ----------------------------------------------------------------------------------------


def test_payloads_are_escaped_everywhere(reg: Reg, client: TestClient) -> None:
    sha = reg.bad_sha  # type: ignore[attr-defined]
    urls = [f"/model/{sha}", "/", "/?q=alert", "/findings", f"/log?ref={sha}", f"/diff?a={sha}&b={reg.clean_sha}",  # type: ignore[attr-defined]
            f"/?q={P_SCRIPT}", f"/?name={P_ATTR}", f"/model/{P_SCRIPT}", f"/diff?a={P_SVG}&b=x"]  # fmt: skip
    model_html = client.get(f"/model/{sha}").text
    for url in urls:
        r = client.get(url)
        assert r.status_code in (200, 400, 404), url
        assert_safe_html(r.text)
    # the payloads are shown, as text
    assert "&lt;img src=x onerror=alert(1)&gt; javascript:alert(2) &lt;script&gt;alert(3)" in model_html  # file name
    assert "&lt;script&gt;alert(&#39;ss&#39;)&lt;/script&gt;" in model_html  # ss_output_name, sidecar name
    assert "&lt;svg onload=alert(&#39;svg&#39;)&gt;" in model_html  # modelspec.title, tags, sidecar base model
    assert "javascript:alert(&#39;js&#39;)" in model_html  # shown as text, never as a link
    assert "&#34; onmouseover=&#34;alert(&#39;attr&#39;)&#34; x=&#34;" in model_html  # declared dataset name, author
    listing = client.get("/").text
    assert "&lt;img src=x onerror=alert(1)&gt;" in listing


# -- safety: host, token, CSRF, write -----------------------------------------------------------------


def test_bind_refuses_other_addresses_without_token(reg: Reg) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("[::1]") and is_loopback("localhost")
    assert is_loopback("127.8.9.10") and not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    check_bind("127.0.0.1", None)
    check_bind("0.0.0.0", "s3cret")
    from registry.errors import UsageError

    with pytest.raises(UsageError, match="refusing to serve on 0.0.0.0"):
        check_bind("0.0.0.0", None)
    code, _, err = reg.cli("serve", "--host", "0.0.0.0")
    assert code == 2 and "refusing to serve on 0.0.0.0: another address than loopback needs --token" in err
    code, _, err = run("--db", str(reg.dir / "nothing.duckdb"), "serve")
    assert code == 2 and "no registry at" in err


def test_without_token_only_loopback_host_names(reg: Reg) -> None:
    app = create_app(reg.db)
    assert TestClient(app, base_url="http://localhost:8741").get("/").status_code == 200
    assert TestClient(app, base_url="http://[::1]:8741").get("/").status_code == 200
    r = TestClient(app, base_url="http://attacker.example").get("/")
    assert r.status_code == 400 and "loopback" in r.text  # DNS rebinding


def test_token_header_cookie_and_login(reg: Reg) -> None:
    app = create_app(reg.db, token="s3cret-token")
    c = TestClient(app, base_url="http://modelreg.example", follow_redirects=False)
    r = c.get("/?q=anya")
    assert r.status_code == 303 and r.headers["location"] == "/login?next=%2F%3Fq%3Danya"
    assert c.get("/?format=json").status_code == 401
    assert c.get("/", headers={"Authorization": "Bearer wrong"}).status_code == 303
    assert c.get("/?format=json", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
    assert c.get("/static/style.css").status_code == 200
    login = c.get("/login?next=/?q=anya")
    assert login.status_code == 200
    csrf = re.search(r'name="csrf" value="([^"]+)"', login.text)
    assert csrf is not None
    # without the CSRF token, or with a wrong one: refused
    assert c.post("/login", data={"token": "s3cret-token", "next": "/"}).status_code == 403
    assert c.post("/login", data={"token": "s3cret-token", "csrf": "x" * 43}).status_code == 403
    bad = c.post("/login", data={"token": "nope", "csrf": csrf.group(1), "next": "/"})
    assert bad.status_code == 401 and "wrong token" in bad.text
    ok = c.post("/login", data={"token": "s3cret-token", "csrf": csrf.group(1), "next": "/?q=anya"})
    assert ok.status_code == 303 and ok.headers["location"] == "/?q=anya"
    cookie = ok.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "s3cret-token" not in cookie
    assert c.get("/?q=anya").status_code == 200
    # the redirect after login stays on this server
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example", "/\t/evil.example", "/\n/evil.example"):
        r = c.post("/login", data={"token": "s3cret-token", "csrf": csrf.group(1), "next": target})
        assert r.headers["location"] == "/"


def _events(db: Path) -> int:
    from registry.store.db import connect

    with connect(db, read_only=True) as con:
        row = con.execute("SELECT count(*) FROM events").fetchone()
    return int(row[0]) if row else 0


def test_read_only_by_default_and_csrf_on_writes(reg: Reg, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "reg"
    shutil.copytree(reg.dir, copy, symlinks=True)
    db = copy / "registry.duckdb"
    sha = reg.bad_sha  # type: ignore[attr-defined]
    n0 = _events(db)
    ro = TestClient(create_app(db), base_url=BASE, follow_redirects=False)
    page = ro.get(f"/model/{sha}").text
    assert "/recheck/" not in page  # no write form on a read-only server
    csrf = ro.cookies.get("modelreg_csrf")
    assert csrf and ro.post(f"/recheck/{sha}", data={"csrf": csrf}).status_code == 403
    assert _events(db) == n0
    rw = TestClient(create_app(db, allow_write=True), base_url=BASE, follow_redirects=False)
    page = rw.get(f"/model/{sha}").text
    m = re.search(r'action="/recheck/' + sha + r'".*?name="csrf" value="([^"]+)"', page, re.S)
    assert m is not None
    assert rw.post(f"/recheck/{sha}", data={}).status_code == 403
    assert rw.post(f"/recheck/{sha}", data={"csrf": "A" * 43}).status_code == 403
    other = TestClient(create_app(db, allow_write=True), base_url=BASE, follow_redirects=False)
    assert other.post(f"/recheck/{sha}", data={"csrf": m.group(1)}).status_code == 403  # no matching cookie
    assert _events(db) == n0
    r = rw.post(f"/recheck/{sha}", data={"csrf": m.group(1)})
    assert r.status_code == 303 and r.headers["location"] == f"/model/{sha}?done=rechecked#declaration"
    assert _events(db) == n0 + 1
    log = get_json(rw, "/log?format=json&verify=1")
    assert log["events"][-1]["action"] == "declaration.check" and log["verify"]["ok"] is True


# -- a busy registry -----------------------------------------------------------------------------------

#: another process holding the write lock, opened as every modelreg writer opens it (a scan, tag,
#: declare…): when readers hold the file, it asks them to let go (``<registry>.waiting``) and waits
HOLD_LOCK = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from registry.store.db import connect
    with connect(Path(sys.argv[1]), timeout=20) as con:
        con.execute("SELECT count(*) FROM blobs").fetchall()
        print("locked", flush=True)
        sys.stdin.read()
    """
)


def test_busy_registry_says_so_and_recovers(reg: Reg, client: TestClient) -> None:
    assert client.get("/").status_code == 200  # the server holds its shared read connection now
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(reg.db)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        for url in ("/", f"/model/{reg.clean_sha}", "/findings", "/log"):  # type: ignore[attr-defined]
            r = client.get(url)
            assert r.status_code == 503, url
            assert r.headers["retry-after"] == "2"
            assert "registry busy, retrying" in r.text.lower()
            assert '<meta http-equiv="refresh" content="2">' in r.text
        j = client.get("/?format=json")
        assert j.status_code == 503 and j.json()["error"].startswith("registry busy, retrying")
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
    assert client.get("/").status_code == 200


def test_pages_beside_a_running_scan(reg: Reg, tmp_path: Path) -> None:
    """A real `modelreg scan` in another process writes while pages are requested: every answer is a
    page (200) or "busy" (503), never a 500."""
    import shutil

    copy = tmp_path / "reg"
    shutil.copytree(reg.dir, copy, symlinks=True)
    db = copy / "registry.duckdb"
    many = tmp_path / "many"
    for i in range(120):
        write_safetensors(many / f"m{i:03d}.safetensors", lora(100 + i, blocks=2), {"ss_network_dim": "4"})
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    scan = subprocess.Popen([sys.executable, "-m", "cli.main", "--db", str(db), "scan", "-j", "1", str(many)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    client = TestClient(create_app(db), base_url=BASE, raise_server_exceptions=False)
    statuses: list[int] = []
    try:
        while scan.poll() is None and len(statuses) < 400:
            statuses.append(client.get("/?format=json&per_page=5").status_code)
            statuses.append(client.get(f"/model/{reg.clean_sha}?format=json").status_code)  # type: ignore[attr-defined]
            time.sleep(0.01)
    finally:
        scan.wait(timeout=300)
    assert scan.returncode == 0, scan.stderr.read() if scan.stderr else ""
    assert statuses and set(statuses) <= {200, 503}, statuses
    assert get_json(client, "/?format=json")["total"] == 4 + 120


def test_shared_read_connection_lets_a_writer_in_and_shows_its_change(
    reg: Reg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The app keeps one read-only connection open between requests; a modelreg writer in another
    process asks for the registry and gets it long before the connection's idle time is up (set to
    10 minutes here), and the next page shows what it wrote (the connection is reopened on the change)."""
    import shutil

    import registry.web.app as web_app
    from registry.store.db import waiting_path

    monkeypatch.setattr(web_app, "POOL_IDLE_S", 600.0)
    copy = tmp_path / "reg"
    shutil.copytree(reg.dir, copy, symlinks=True)
    db = copy / "registry.duckdb"
    waiting_path(db).unlink(missing_ok=True)  # (copied with its time from the busy tests above)
    client = TestClient(create_app(db), base_url=BASE)
    n0 = get_json(client, "/?format=json")["total"]
    pool = web_app.ReadPool._shared[db.resolve()]
    assert pool._con is not None  # held between requests
    new = write_safetensors(tmp_path / "new" / "latecomer.safetensors", lora(77), {"ss_network_dim": "4"})
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    scan = subprocess.run([sys.executable, "-m", "cli.main", "--db", str(db), "scan", str(new)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert scan.returncode == 0, scan.stderr  # (a writer waits at most 30 s for readers)
    assert pool._con is None  # let go when the writer asked
    page = get_json(client, "/?format=json&q=latecomer")
    assert page["total"] == 1 and page["rows"][0]["name"] == "latecomer.safetensors"
    assert get_json(client, "/?format=json")["total"] == n0 + 1


# -- packaging ---------------------------------------------------------------------------------------


def test_serve_without_the_extra_names_it(reg: Reg, monkeypatch: pytest.MonkeyPatch) -> None:
    import registry.extras as extras

    real = extras.find_spec
    monkeypatch.setattr(extras, "find_spec", lambda name: None if name == "starlette" else real(name))
    code, _, err = reg.cli("serve")
    assert code == 3
    assert err.strip() == "modelreg: serve needs the 'serve' extra (not installed: starlette): pip install 'modelreg[serve]'"


def test_core_commands_never_import_the_web_stack(reg: Reg) -> None:
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from cli.main import root\n"
        f"for args in (['ls'], ['show', {reg.clean_sha!r}], ['log'], ['--help']):\n"  # type: ignore[attr-defined]
        f"    r = CliRunner().invoke(root, ['--db', {str(reg.db)!r}, *args])\n"
        "    assert r.exit_code == 0, r.output\n"
        "bad = [m for m in ('starlette', 'jinja2', 'uvicorn', 'registry.web') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_probe_run_contact_sheet_and_metric_figure(tmp_path: Path) -> None:
    """A real (tiny, CPU) probe run: the model page shows its metric intervals as inline SVG and its
    contact sheet from the content-addressed sample store, served only by its SHA-256."""
    from registry.probe import missing_packages

    if missing_packages():
        pytest.skip(f"the probe extra is not installed (missing: {', '.join(missing_packages())})")
    import torch

    from registry.probe.offline import build_pipeline, shapes_dataset, train_lora

    torch.set_num_threads(1)
    pipe = build_pipeline("tiny")
    pipe.save_pretrained(tmp_path / "base")
    lora_file = train_lora(pipe, shapes_dataset(1, seed=1), "a photo of ohwx", tmp_path / "lora" / "ohwx.safetensors", steps=10)
    battery = tmp_path / "small.json"
    battery.write_text(json.dumps({"name": "small", "version": 1, "prompts": [
        {"id": "doctor", "text": "a portrait photo of a doctor", "category": "people"},
        {"id": "car", "text": "a red car on a street", "category": "objects"},
    ]}))  # fmt: skip
    db = tmp_path / "registry.duckdb"
    code, _, err = run("--db", str(db), "probe", str(lora_file), "--base", str(tmp_path / "base"), "--battery", str(battery),
                       "--seeds", "0-1", "--steps", "2", "--embedder", "pixel:8", "--device", "cpu", "--bootstrap", "20")  # fmt: skip
    assert code == 0, err
    client = TestClient(create_app(db), base_url=BASE)
    sha = hashlib.sha256(lora_file.read_bytes()).hexdigest()
    probe = get_json(client, f"/model/{sha}?format=json")["probe"]
    sheet = probe["sheet_sha256"]
    assert sheet and SHA_RE.fullmatch(sheet)
    html = client.get(f"/model/{sha}").text
    assert f'<img src="/sample/{sheet}.png"' in html and "bootstrap confidence intervals" in html
    assert_safe_html(html)
    r = client.get(f"/sample/{sheet}.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert hashlib.sha256(r.content).hexdigest() == sheet and r.content[:8] == b"\x89PNG\r\n\x1a\n"
    # a sample that is not a contact sheet of a run, or a changed file, is not served
    Path(probe["sheet"]).write_bytes(r.content + b"x")
    assert client.get(f"/sample/{sheet}.png").status_code == 404


# -- properties of the small guards --------------------------------------------------------------------

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from registry.web.app import _safe_next  # noqa: E402


@given(st.one_of(st.text(), st.from_regex(r"[/\\\\]{0,3}[a-z:.]{0,12}[/\\\\]?.*", fullmatch=True), st.none()))
def test_login_redirect_never_leaves_the_server(target: str | None) -> None:
    out = _safe_next(target)
    assert out.startswith("/") and not out.startswith("//") and "\\" not in out
    assert not any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in out)
    assert out == target or out == "/"
