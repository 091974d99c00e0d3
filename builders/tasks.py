"""The ten degradation types of DA-CLIP, in the canonical order.

The words are used verbatim in folder names and in the text prompts
("<caption>: <degradation>"), so they must never be respelled.
"""

from __future__ import annotations

import functools

DEGRADATIONS: tuple[str, ...] = (
    "motion-blurry",
    "hazy",
    "jpeg-compressed",
    "low-light",
    "noisy",
    "raindrop",
    "rainy",
    "shadowed",
    "snowy",
    "uncompleted",
)

SPLITS: tuple[str, ...] = ("train", "val")


def parse_tasks(text: str | None, choices: tuple[str, ...] | list[str] = DEGRADATIONS) -> list[str]:
    """Parse a comma-separated list of degradation types among ``choices`` (a dataset's
    vocabulary; default the ten) (None/'all' -> all of them)."""
    from .errors import UserError

    if text is None or text.strip() in ("", "all"):
        return list(choices)
    tasks = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in tasks if t not in choices]
    if unknown:
        raise UserError(
            f"unknown degradation type {', '.join(map(repr, unknown))}; "
            f"choose from: {', '.join(choices)}"
        )
    # Vocabulary order, no duplicates: tables and reports stay comparable across runs.
    return [t for t in choices if t in tasks]


@functools.lru_cache(maxsize=1)
def table1() -> dict[str, dict[str, int]]:
    """The paper's Table 1, images per type: {"train": {type: n}, "test": {type: n}}
    (``builders/table1.yaml``, the one copy)."""
    from importlib import resources

    import yaml

    return yaml.safe_load(resources.files("builders").joinpath("table1.yaml").read_text(encoding="utf-8"))
