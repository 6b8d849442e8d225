"""hf:// remote catalogs and Civitai lookups, with the real huggingface_hub client against test doubles
of the Hub and of Civitai on 127.0.0.1 (tests/hf_fixtures.py)."""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterator

import numpy as np
import pytest

from registry.errors import NotFound, UsageError
from registry.hub import CivitaiClient, HfRef, catalog_hf, civitai_api_key, civitai_lookup, parse_hf_uri
from tests.builders import raw_safetensors, safetensors_bytes
from tests.hf_fixtures import FakeCivitai, FakeHub, FakeRepo, no_proxy

COMMIT = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"


def _honest_lora(seed: int = 0, big_metadata: bool = False, n: int = 64) -> bytes:
    rng = np.random.default_rng(seed)
    meta = {"ss_network_dim": "8", "ss_base_model_version": "sd_v1"}
    if big_metadata:
        meta["ss_tag_frequency"] = json.dumps({f"tag{i}": i for i in range(20000)})
    return safetensors_bytes(
        {
            "lora_unet_x.lora_down.weight": rng.standard_normal((8, n)).astype(np.float16),
            "lora_unet_x.lora_up.weight": rng.standard_normal((n, 8)).astype(np.float16),
        },
        meta,
    )


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    big = _honest_lora(1, n=65536)  # ~2 MiB of weights
    repo = FakeRepo(
        "org/lora",
        COMMIT,
        {
            "README.md": b"---\nlicense: openrail++\n---\n# a lora\n",
            "lora.safetensors": big,
            "sub/meta-heavy.safetensors": _honest_lora(2, big_metadata=True),
            "sub/deeper/broken.safetensors": raw_safetensors({"w": {"dtype": "F16", "shape": [4], "data_offsets": [0, 8]}}, b"\0" * 4),
            "sub/notes.txt": b"hello\n",
        },
        card={
            "license": "openrail++",
            "base_model": "stabilityai/stable-diffusion-xl-base-1.0",
            "datasets": ["org/faces"],
            "tags": ["lora", "text-to-image"],
        },
        tags=["diffusers", "lora", "license:openrail++"],
    )
    with no_proxy(), FakeHub([repo]) as h:
        monkeypatch.setenv("HF_ENDPOINT", h.url)
        monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
        monkeypatch.delenv("HF_TOKEN", raising=False)
        yield h


def test_parse_hf_uri() -> None:
    assert parse_hf_uri("hf://org/name") == HfRef("org/name", None, None)
    assert parse_hf_uri("hf://org/name@v1.0") == HfRef("org/name", "v1.0", None)
    assert parse_hf_uri("hf://org/name@refs%2Fpr%2F3/a/b.safetensors") == HfRef("org/name", "refs/pr/3", "a/b.safetensors")
    assert parse_hf_uri("hf://org/name/unet/") == HfRef("org/name", None, "unet")
    assert HfRef("org/name", "refs/pr/3", "x").uri() == "hf://org/name@refs%2Fpr%2F3/x"
    for bad in ("hf://", "hf://org", "hf://org/", "hf://org/name@", "hf://../x", "hf://org/name/../../etc", "http://x/y"):
        with pytest.raises(UsageError):
            parse_hf_uri(bad)


def test_catalog_whole_repo_without_downloading_weights(hub: FakeHub) -> None:
    repo = hub.repos["org/lora"]
    cat = catalog_hf("hf://org/lora")
    assert cat.commit == COMMIT and cat.requested_revision is None
    assert cat.api_url == f"{hub.url}/api/models/org/lora/revision/{COMMIT}"
    assert cat.repo_url == f"{hub.url}/org/lora/tree/{COMMIT}"
    assert cat.card["license"] == "openrail++"
    assert cat.card["base_model"] == ["stabilityai/stable-diffusion-xl-base-1.0"]
    assert cat.card["datasets"] == ["org/faces"]
    assert cat.card["tags"] == ["diffusers", "license:openrail++", "lora", "text-to-image"]
    assert [f.path for f in cat.files] == [
        "README.md",
        "lora.safetensors",
        "sub/deeper/broken.safetensors",
        "sub/meta-heavy.safetensors",
        "sub/notes.txt",
    ]
    by = {f.path: f for f in cat.files}
    big = by["lora.safetensors"]
    assert big.sha256 == hashlib.sha256(repo.files["lora.safetensors"]).hexdigest()
    assert big.size == len(repo.files["lora.safetensors"])
    assert big.url == f"{hub.url}/org/lora/resolve/{COMMIT}/lora.safetensors"
    assert big.header is not None and [t.name for t in big.header.tensors] == [
        "lora_unet_x.lora_down.weight",
        "lora_unet_x.lora_up.weight",
    ]
    assert big.header.tensors[0].shape == (8, 65536)
    assert big.header.metadata == {"ss_network_dim": "8", "ss_base_model_version": "sd_v1"}
    assert big.findings == []
    assert by["README.md"].sha256 is None and by["README.md"].header is None
    # the heavy header needed a second range request; the broken one is a finding
    heavy = by["sub/meta-heavy.safetensors"]
    assert heavy.header is not None and len(heavy.header.raw_metadata["ss_tag_frequency"]) > 100_000
    broken = by["sub/deeper/broken.safetensors"]
    assert [(f.rule_id, f.message) for f in broken.findings] == [
        ("safetensors.truncated", "file ends 4 bytes before tensor 'w' does (file is 66 bytes, the header needs 70)")
    ]
    # every /resolve/ and CDN request was a range request, and far fewer bytes than the weights were served
    file_requests = [r for r in hub.requests if "/resolve/" in r["path"] or r["path"].startswith("/cdn/")]
    assert file_requests and all(r["range"] for r in file_requests)
    expected = 0
    for name, data in repo.files.items():
        if name.endswith(".safetensors"):
            n = struct.unpack("<Q", data[:8])[0]
            expected += min(100_000, len(data)) + (n if 8 + n > 100_000 else 0)
    assert hub.bytes_served == expected < len(repo.files["lora.safetensors"])
    ranges = [r["range"] for r in file_requests if "meta-heavy" in r["path"] and r["path"].startswith("/cdn/")]
    n = struct.unpack("<Q", repo.files["sub/meta-heavy.safetensors"][:8])[0]
    assert ranges == ["bytes=0-99999", f"bytes=8-{n + 7}"]
    # the API was asked at the resolved commit, not at "main", after the first call
    api_paths = [r["path"] for r in hub.requests if r["path"].startswith("/api/")]
    assert api_paths[0] == "/api/models/org/lora"
    assert all(COMMIT in p for p in api_paths[1:])
    assert cat.as_dict()["uri"] == f"hf://org/lora@{COMMIT}"


def test_catalog_one_folder_and_one_file(hub: FakeHub) -> None:
    cat = catalog_hf(f"hf://org/lora@{COMMIT}/sub")
    assert [f.path for f in cat.files] == ["sub/deeper/broken.safetensors", "sub/meta-heavy.safetensors", "sub/notes.txt"]
    assert any(r["method"] == "POST" and r["path"].endswith(f"/paths-info/{COMMIT}") for r in hub.requests)
    hub.requests.clear()
    cat = catalog_hf("hf://org/lora@main/lora.safetensors", read_headers=False)
    assert [f.path for f in cat.files] == ["lora.safetensors"] and cat.files[0].header is None
    assert cat.requested_revision == "main" and cat.commit == COMMIT
    assert not any("/resolve/" in r["path"] for r in hub.requests)


def test_catalog_errors(hub: FakeHub) -> None:
    with pytest.raises(NotFound, match="hf://org/missing"):
        catalog_hf("hf://org/missing")
    with pytest.raises(NotFound, match="no file or folder 'nope.safetensors'"):
        catalog_hf("hf://org/lora/nope.safetensors")
    with pytest.raises(NotFound):
        catalog_hf("hf://org/lora@no-such-branch")


def test_range_ignored_by_server_still_reads_only_the_header(hub: FakeHub) -> None:
    hub.honour_range = False
    cat = catalog_hf("hf://org/lora/lora.safetensors")
    (f,) = cat.files
    assert f.header is not None and len(f.header.tensors) == 2 and f.findings == []


def test_unreachable_hub_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from registry.errors import RegistryError

    with no_proxy():
        monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
        with pytest.raises(RegistryError, match="hf://org/lora"):
            catalog_hf("hf://org/lora")


VERSION = {
    "id": 4242,
    "modelId": 99,
    "name": "v1.0",
    "baseModel": "SD 1.5",
    "trainedWords": ["sks person"],
    "model": {"name": "Some LoRA", "type": "LORA", "nsfw": False, "poi": True},
    "files": [{"name": "some.safetensors", "primary": True, "hashes": {"SHA256": "AB" * 32, "AutoV2": "ABABABABAB"}}],
}


def test_civitai_lookup_found_and_not_found() -> None:
    with no_proxy(), FakeCivitai({"AB" * 32: VERSION}) as civ:
        obs = civitai_lookup("sha256:" + "ab" * 32, base_url=civ.url)
        assert obs.found and obs.status == 200
        assert obs.url == f"{civ.url}/api/v1/model-versions/by-hash/{'AB' * 32}"
        assert (obs.model_id, obs.version_id, obs.model_name, obs.model_type) == (99, 4242, "Some LoRA", "LORA")
        assert (obs.poi, obs.nsfw, obs.base_model, obs.trained_words) == (True, False, "SD 1.5", ("sks person",))
        assert obs.files[0]["hashes"]["AutoV2"] == "ABABABABAB"
        assert obs.observed_at.tzinfo is not None
        miss = civitai_lookup("cd" * 32, base_url=civ.url)
        assert (miss.found, miss.status, miss.error) == (False, 404, None)
        assert civ.requests == [f"/api/v1/model-versions/by-hash/{'AB' * 32}", f"/api/v1/model-versions/by-hash/{'CD' * 32}"]


def test_civitai_unreachable_is_an_observation_not_an_exception() -> None:
    slept: list[float] = []
    with no_proxy():
        client = CivitaiClient("http://127.0.0.1:9", api_key="", sleep=slept.append, retries=2, min_interval=0)
        obs = civitai_lookup("ab" * 32, client=client)
    # no answer is neither "found" nor "not found", and has no HTTP status
    assert obs.found is None and obs.status is None and not obs.answered
    assert obs.error is not None and obs.error.startswith("cannot reach Civitai: ") and obs.error.endswith("after 3 tries")
    assert slept == [1.0, 2.0] and client.requests == 3  # exponential backoff between the tries
    with pytest.raises(UsageError):
        civitai_lookup("not hex")


def test_civitai_key_retry_after_and_rate_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 20: the API key comes from the environment as a Bearer header; 429 and 5xx are retried with
    the server's Retry-After or exponential backoff; requests are spaced by the rate limit."""
    monkeypatch.delenv("CIVITAI_API_KEY", raising=False)
    monkeypatch.setenv("CIVITAI_TOKEN", "tok-123")
    assert civitai_api_key() == "tok-123"
    monkeypatch.setenv("CIVITAI_API_KEY", "key-456")
    assert civitai_api_key() == "key-456"  # CIVITAI_API_KEY first
    now = [100.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    with no_proxy(), FakeCivitai({"AB" * 32: VERSION}, fail=[(429, {"Retry-After": "7"}), (503, {})]) as civ:
        client = CivitaiClient(civ.url, sleep=sleep, clock=lambda: now[0], min_interval=0.5)
        obs = client.lookup("ab" * 32)
        assert obs.found and obs.status == 200 and obs.model_name == "Some LoRA"
        assert slept == [7.0, 2.0]  # Retry-After, then backoff 1·2^1; the waits already space the requests
        assert civ.auth == ["Bearer key-456"] * 3
        slept.clear()
        miss = client.lookup("cd" * 32)  # right after: the rate limit waits out the interval
        assert (miss.found, miss.status, miss.answered) == (False, 404, True)
        assert slept == [0.5]
        # 401 is not retried, and says how to give a key
        civ.fail = [(401, {})]
        denied = client.lookup("ef" * 32)
        assert (denied.found, denied.status) == (None, 401)
        assert denied.error == "HTTP 401 (an API key in CIVITAI_API_KEY or CIVITAI_TOKEN may be needed)"
        # retries exhausted: the last status and how many tries
        civ.fail = [(503, {})] * 4
        busy = CivitaiClient(civ.url, sleep=sleep, clock=lambda: now[0], retries=3).lookup("ab" * 32)
        assert (busy.found, busy.status, busy.error) == (None, 503, "HTTP 503 after 4 tries")
