"""The attributes a catalogue text states (colour, category, pattern), read back from the text
with the catalogue's own vocabulary: the labels for the attribute classifier and the targets
that generated images are checked against."""

from __future__ import annotations

from m6_pipeline.data.catalogue import CATEGORIES, COLOURS, PATTERNS

ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "colour": tuple(COLOURS),
    "category": CATEGORIES,
    "pattern": PATTERNS,
}


def stated_attributes(text: str) -> dict[str, str] | None:
    """{attribute: value} when the text names exactly one value of every attribute, else None
    (a text that names two colours cannot label an image)."""
    out = {}
    for name, values in ATTRIBUTES.items():
        found = {value for value in values if value in text}
        # "运动鞋" contains no other category, but guard against nested names all the same
        found = {v for v in found if not any(v != w and v in w for w in found)}
        if len(found) != 1:
            return None
        out[name] = found.pop()
    return out


def matches(attributes: dict[str, str] | None, combination: dict[str, str]) -> bool:
    """True when `attributes` has every value of `combination` (e.g. {category: 高跟鞋,
    pattern: 迷彩})."""
    return attributes is not None and all(attributes.get(k) == v for k, v in combination.items())
