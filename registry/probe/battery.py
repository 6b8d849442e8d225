"""Prompt batteries: data files validated by ``schemas/probe-battery.schema.json``.

Built-in batteries (``registry/probe/batteries/*.json``): ``people`` (varied roles, ages, scenes),
``characters`` and ``objects`` (objects and scenes with no person: the neutral control). ``default`` is
all three. Users pass their own files (JSON or YAML) by path.

Prompts are added automatically from what a LoRA says about its training (``registry.training``):

* trigger prompts: ``"<trigger>, <battery prompt>"`` for the first prompts of each category, each
  paired with the same prompt without the trigger (trigger dependence compares the two);
* tag prompts: the LoRA's most frequent training tags joined into prompts.

No torch here: loading and validating batteries is cheap and testable anywhere.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from registry.errors import UsageError

BUILTIN = ("people", "characters", "objects")
DEFAULT = "default"

#: categories of automatically added prompts
TRIGGER_CATEGORY = "trigger"
TAGS_CATEGORY = "tags"


class BatteryInvalid(UsageError):
    """A battery file failed validation; ``errors`` holds (json_path, message)."""

    def __init__(self, message: str, errors: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.errors = list(errors)


@dataclass(frozen=True)
class Prompt:
    id: str
    text: str
    category: str
    #: the battery the prompt comes from (``auto`` for added prompts)
    source: str
    #: for a trigger prompt: the id of the same prompt without the trigger
    pair: str | None = None
    #: the text to score image–text fidelity against (the prompt without trigger words)
    fidelity_text: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "text": self.text,
            "category": self.category,
            "source": self.source,
            "pair": self.pair,
            "fidelity_text": self.fidelity_text,
        }


@dataclass(frozen=True)
class Battery:
    name: str
    version: int
    prompts: tuple[Prompt, ...]
    description: str = ""
    negative_prompt: str = ""
    #: names of the batteries combined into this one
    parts: tuple[str, ...] = field(default_factory=tuple)

    @property
    def categories(self) -> list[str]:
        seen: dict[str, None] = {}
        for p in self.prompts:
            seen.setdefault(p.category, None)
        return list(seen)


def _schema() -> dict[str, Any]:
    text = resources.files("schemas").joinpath("probe-battery.schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def validate(doc: Any, where: str = "battery") -> list[tuple[str, str]]:
    """Schema errors of a battery document as ``(json_path, message)``, plus duplicate ids."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(_schema())
    errors = sorted(
        ((e.json_path, e.message) for e in validator.iter_errors(doc)), key=lambda x: (x[0], x[1])
    )
    if not errors and isinstance(doc, dict):
        seen: set[str] = set()
        for i, p in enumerate(doc.get("prompts", [])):
            if p["id"] in seen:
                errors.append((f"$.prompts[{i}].id", f"duplicate prompt id {p['id']!r}"))
            seen.add(p["id"])
    return errors


def parse_battery(doc: Any, where: str = "battery") -> Battery:
    errors = validate(doc, where)
    if errors:
        first = f"{errors[0][0]}: {errors[0][1]}"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise BatteryInvalid(f"invalid probe battery {where}: {first}{more}", errors)
    name = doc["name"]
    prompts = tuple(
        Prompt(id=f"{name}/{p['id']}", text=p["text"], category=p["category"], source=name, fidelity_text=p["text"])
        for p in doc["prompts"]
    )
    return Battery(
        name=name,
        version=int(doc["version"]),
        prompts=prompts,
        description=doc.get("description", ""),
        negative_prompt=doc.get("negative_prompt", ""),
        parts=(name,),
    )


def _read_doc(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise BatteryInvalid(f"cannot read probe battery {path}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise BatteryInvalid(f"probe battery {path} is not UTF-8 text") from None
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            return yaml.safe_load(text)
        return json.loads(text)
    except (json.JSONDecodeError, ValueError) as e:
        raise BatteryInvalid(f"probe battery {path} is not valid JSON/YAML: {e}") from None


def builtin_names() -> list[str]:
    return [*BUILTIN, DEFAULT]


def load_battery(spec: str | Path) -> Battery:
    """A built-in battery by name (``people``, ``characters``, ``objects``, ``default``) or a file path."""
    if isinstance(spec, str) and spec in BUILTIN:
        text = resources.files("registry.probe").joinpath("batteries", f"{spec}.json").read_text(encoding="utf-8")
        return parse_battery(json.loads(text), where=spec)
    if isinstance(spec, str) and spec == DEFAULT:
        return combine([load_battery(n) for n in BUILTIN], name=DEFAULT)
    path = Path(spec)
    if not path.exists():
        raise BatteryInvalid(
            f"no probe battery {str(spec)!r}: not a file, and not one of the built-in batteries "
            f"({', '.join(builtin_names())})"
        )
    return parse_battery(_read_doc(path), where=str(path))


def combine(batteries: Sequence[Battery], name: str | None = None) -> Battery:
    """Several batteries as one (prompt ids stay qualified by their battery's name)."""
    if not batteries:
        raise BatteryInvalid("no probe battery given")
    if len(batteries) == 1:
        return batteries[0]
    prompts: list[Prompt] = []
    seen: set[str] = set()
    for b in batteries:
        for p in b.prompts:
            if p.id in seen:
                raise BatteryInvalid(f"prompt id {p.id!r} appears in two batteries")
            seen.add(p.id)
            prompts.append(p)
    negs = {b.negative_prompt for b in batteries}
    if len(negs) > 1:
        raise BatteryInvalid("combined batteries must share one negative prompt")
    return Battery(
        name=name or "+".join(b.name for b in batteries),
        version=1,
        prompts=tuple(prompts),
        description="; ".join(b.description for b in batteries if b.description),
        negative_prompt=negs.pop(),
        parts=tuple(part for b in batteries for part in b.parts),
    )


def top_tags(tag_frequency: Mapping[str, Mapping[str, int]], n: int = 12, exclude: Iterable[str] = ()) -> list[str]:
    """The ``n`` most frequent training tags over all folders (ties broken by tag text)."""
    excluded = {e.strip().lower() for e in exclude}
    totals: dict[str, int] = {}
    for tags in tag_frequency.values():
        for tag, count in tags.items():
            t = tag.strip()
            if not t or t.lower() in excluded:
                continue
            try:
                c = int(count)
            except (TypeError, ValueError):
                continue
            totals[t] = totals.get(t, 0) + c
    ranked = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))
    return [t for t, _ in ranked[:n]]


def hints_from_training(facts: Any, n_tags: int = 12) -> tuple[list[str], list[str]]:
    """``(trigger_words, top_tags)`` from a :class:`registry.training.TrainingFacts` (or anything with
    ``trigger_words`` and ``tag_frequency``). Trigger words are removed from the tags."""
    triggers = [t.strip() for t in (getattr(facts, "trigger_words", None) or []) if t and t.strip()]
    tags = top_tags(getattr(facts, "tag_frequency", None) or {}, n=n_tags, exclude=triggers)
    return list(dict.fromkeys(triggers)), tags


def _slug(text: str) -> str:
    out = "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")
    while "--" in out:
        out = out.replace("--", "-")
    return out[:40] or "x"


def expand(
    battery: Battery,
    trigger_words: Sequence[str] = (),
    tags: Sequence[str] = (),
    per_category: int = 3,
    tags_per_prompt: int = 4,
) -> Battery:
    """The battery plus automatic prompts.

    Trigger prompts: all trigger words joined (``"ohwx, sks"``) before the first ``per_category``
    prompts of each category, each paired with its original. Tag prompts: the tags in groups of
    ``tags_per_prompt`` (at most 3 prompts), plus each group prefixed with the triggers when there are any.
    """
    prompts = list(battery.prompts)
    trig = ", ".join(t.strip() for t in trigger_words if t.strip())
    if trig:
        by_cat: dict[str, list[Prompt]] = {}
        for p in battery.prompts:
            by_cat.setdefault(p.category, []).append(p)
        for _cat, items in by_cat.items():
            for p in items[:per_category]:
                prompts.append(
                    Prompt(
                        id=f"auto/trigger/{p.id}",
                        text=f"{trig}, {p.text}",
                        category=TRIGGER_CATEGORY,
                        source="auto",
                        pair=p.id,
                        fidelity_text=p.fidelity_text or p.text,
                    )
                )
    clean_tags = [t.strip() for t in tags if t.strip()]
    groups = [clean_tags[i : i + tags_per_prompt] for i in range(0, len(clean_tags), tags_per_prompt)][:3]
    for g in groups:
        text = ", ".join(g)
        prompts.append(
            Prompt(id=f"auto/tags/{_slug(text)}", text=text, category=TAGS_CATEGORY, source="auto", fidelity_text=text)
        )
        if trig:
            prompts.append(
                Prompt(
                    id=f"auto/tags-trigger/{_slug(text)}",
                    text=f"{trig}, {text}",
                    category=TAGS_CATEGORY,
                    source="auto",
                    fidelity_text=text,
                )
            )
    ids = [p.id for p in prompts]
    if len(set(ids)) != len(ids):
        # two tag groups slugging alike: make ids unique by position, deterministically
        seen: dict[str, int] = {}
        fixed = []
        for p in prompts:
            k = seen.get(p.id, 0)
            seen[p.id] = k + 1
            fixed.append(p if k == 0 else Prompt(**{**p.as_dict(), "id": f"{p.id}~{k}"}))
        prompts = fixed
    return Battery(
        name=battery.name,
        version=battery.version,
        prompts=tuple(prompts),
        description=battery.description,
        negative_prompt=battery.negative_prompt,
        parts=battery.parts,
    )
