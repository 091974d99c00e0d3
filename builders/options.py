"""``KEY=VALUE`` options, one parser for every command (--option, --net-option).

Values are typed the way YAML reads a scalar: ``16`` is an int, ``0.5`` a float, ``true`` a bool,
``[1, 2]`` a list; anything else stays the string it was. So ``width=16`` means the same number
to ``daclip.restore --option``, ``benchmark.run --option`` and ``daclip.train_ir --net-option``.
"""

from __future__ import annotations

from typing import Any

from .errors import UserError


def parse_value(text: Any) -> Any:
    """``"16"`` -> 16, ``"0.5"`` -> 0.5, ``"tiny"`` -> "tiny"; a non-string is returned as is."""
    if not isinstance(text, str):
        return text
    import yaml

    text = text.strip()
    if not text:
        return ""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    # Dates, and YAML 1.1's yes/no/on/off booleans, are not what a user writing them means.
    if isinstance(value, bool) and text.lower() not in ("true", "false"):
        return text
    return value if isinstance(value, (int, float, str, list, type(None))) else text


def parse_pair(text: str, option: str = "--option", form: str = "KEY=VALUE") -> tuple[str, Any]:
    """``"width=16"`` -> ("width", 16); a text without ``=`` or key is one UserError."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise UserError(f"{option} expects {form}, got {text!r}")
    return key.strip(), parse_value(value)


def parse_options(items: list[str] | None, option: str = "--option") -> dict[str, Any]:
    """Every ``KEY=VALUE`` of a repeated option, typed; a later one wins."""
    return dict(parse_pair(item, option) for item in items or [])
