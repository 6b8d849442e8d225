"""Probe batteries: built-ins validate, bad files give one clear message, automatic prompts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from registry.probe.battery import (
    TAGS_CATEGORY,
    TRIGGER_CATEGORY,
    BatteryInvalid,
    combine,
    expand,
    hints_from_training,
    load_battery,
    top_tags,
    validate,
)
from registry.training import TrainingFacts


def test_builtins_validate_and_cover_the_three_kinds() -> None:
    people, chars, objects = load_battery("people"), load_battery("characters"), load_battery("objects")
    assert (len(people.prompts), len(chars.prompts), len(objects.prompts)) == (16, 10, 14)
    assert people.categories == ["people"] and objects.categories == ["objects"]
    assert people.prompts[0].id == "people/doctor"
    assert people.prompts[0].text == "a portrait photo of a doctor in a hospital corridor"
    default = load_battery("default")
    assert default.name == "default" and default.parts == ("people", "characters", "objects")
    assert len(default.prompts) == 40
    assert default.categories == ["people", "characters", "objects"]


def test_user_battery_json_and_yaml(tmp_path: Path) -> None:
    doc = {"name": "mine", "version": 2, "negative_prompt": "blurry",
           "prompts": [{"id": "a", "text": "a red apple", "category": "objects"},
                       {"id": "b", "text": "a green pear", "category": "objects", "tags": ["fruit"]}]}
    p = tmp_path / "mine.json"
    p.write_text(json.dumps(doc))
    b = load_battery(p)
    assert b.name == "mine" and b.version == 2 and b.negative_prompt == "blurry"
    assert [x.id for x in b.prompts] == ["mine/a", "mine/b"]
    y = tmp_path / "mine.yaml"
    y.write_text("name: mine\nversion: 2\nnegative_prompt: blurry\nprompts:\n"
                 "  - {id: a, text: a red apple, category: objects}\n"
                 "  - {id: b, text: a green pear, category: objects, tags: [fruit]}\n")
    assert load_battery(y) == b


def test_invalid_batteries(tmp_path: Path) -> None:
    p = tmp_path / "bad.json"
    p.write_text(json.dumps({"name": "Bad Name", "version": 1, "prompts": [{"id": "a", "text": "x", "category": "c"}]}))
    with pytest.raises(BatteryInvalid) as e:
        load_battery(p)
    assert str(e.value).startswith(f"invalid probe battery {p}: ")
    paths = [path for path, _ in e.value.errors]
    assert paths == ["$.name", "$.prompts"]  # bad pattern; fewer than 2 prompts
    dup = {"name": "d", "version": 1, "prompts": [{"id": "a", "text": "x", "category": "c"}, {"id": "a", "text": "y", "category": "c"}]}
    assert validate(dup) == [("$.prompts[1].id", "duplicate prompt id 'a'")]
    p.write_text("{not json")
    with pytest.raises(BatteryInvalid, match="is not valid JSON/YAML"):
        load_battery(p)
    with pytest.raises(BatteryInvalid, match="not a file, and not one of the built-in batteries"):
        load_battery("nonesuch")
    assert BatteryInvalid.exit_code == 2


def test_top_tags_and_training_hints() -> None:
    freq = {"10_ohwx woman": {"ohwx": 30, "woman": 30, "smile": 12, "outdoors": 5},
            "5_extra": {"woman": 4, "smile": 1, "hat": 5, "": 3}}
    assert top_tags(freq, n=3) == ["woman", "ohwx", "smile"]
    assert top_tags(freq, n=10, exclude=["OHWX"]) == ["woman", "smile", "hat", "outdoors"]
    facts = TrainingFacts(trigger_words=["ohwx", "ohwx", " "], tag_frequency=freq)
    assert hints_from_training(facts, n_tags=3) == (["ohwx"], ["woman", "smile", "hat"])
    assert hints_from_training(TrainingFacts()) == ([], [])


def test_expand_adds_paired_trigger_prompts_and_tag_prompts() -> None:
    b = combine([load_battery("people"), load_battery("objects")])
    x = expand(b, ["ohwx", "sks"], ["woman", "smile", "hat", "outdoors", "red dress"], per_category=2, tags_per_prompt=4)
    auto = [p for p in x.prompts if p.source == "auto"]
    trig = [p for p in auto if p.category == TRIGGER_CATEGORY]
    assert [p.pair for p in trig] == ["people/doctor", "people/teacher", "objects/red-car", "objects/fruit-bowl"]
    assert trig[0].text == "ohwx, sks, a portrait photo of a doctor in a hospital corridor"
    assert trig[0].fidelity_text == "a portrait photo of a doctor in a hospital corridor"
    tags = [p for p in auto if p.category == TAGS_CATEGORY]
    assert [p.text for p in tags] == ["woman, smile, hat, outdoors", "ohwx, sks, woman, smile, hat, outdoors",
                                      "red dress", "ohwx, sks, red dress"]
    assert [p.fidelity_text for p in tags][:2] == ["woman, smile, hat, outdoors"] * 2
    assert len({p.id for p in x.prompts}) == len(x.prompts)
    assert expand(b).prompts == b.prompts
