"""A dataset's degradation-type vocabulary: ordered type names and the text each is prompted with.

The DA-CLIP presets use the ten words of :data:`builders.tasks.DEGRADATIONS`, in that order,
each prompted verbatim (the released DA-CLIP was trained on exactly those strings). Any
other dataset may name its own types (the folder names of ``--index``): a type name is a
safe folder name (see :func:`check_type_name`), and its prompt text defaults to the name
with ``_`` and ``-`` read as spaces (``low_haze_rain`` -> ``low haze rain``).

Home: the vocabulary is stored inside ``manifest.parquet`` as the parquet key-value
metadata entry ``daclip.vocabulary`` (JSON ``{"types": [...], "prompts": [...]}``), so it
travels with the manifest file. A manifest without the entry (every ten-type build) has the
DA-CLIP vocabulary when its types are DA-CLIP words; otherwise its types sorted by name.

Captions CSV titles are ``"<caption>: <prompt text>"``; :func:`make_title` and
:func:`split_title` are the one rule the writer (captioning) and reader (daclip.data) share.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from .errors import UserError
from .tasks import DEGRADATIONS

METADATA_KEY = b"daclip.vocabulary"
MAX_NAME = 64
SEPARATOR = ": "  # caption and degradation text in a CSV title (the official loader's split)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_RESERVED = {"train", "val", "test", "LQ", "GT"}  # split and pair folder names of the layouts


def type_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a degradation type name, or None when it can."""
    if not isinstance(name, str) or not name:
        return "an empty name"
    if len(name) > MAX_NAME:
        return f"longer than {MAX_NAME} characters"
    if "/" in name or "\\" in name:
        return "a path separator"
    if ".." in name:
        return "'..'"
    if _CONTROL.search(name):
        return "a control character"
    if any(c.isspace() for c in name):
        return "whitespace"
    if name.startswith("."):
        return "a leading '.'"
    if name in _RESERVED:
        return "a split or LQ/GT folder name"
    return None


def check_type_name(name: str, where: str) -> str:
    """``name`` when it is a valid type name; else UserError naming ``where`` (the folder)."""
    why = type_name_problem(name)
    if why:
        raise UserError(f"{where}: type name {name!r} is refused ({why}); a type is a folder name of at most "
                        f"{MAX_NAME} characters without '/', '..', whitespace or control characters")
    return name


def prompt_problem(text: str) -> str | None:
    if not isinstance(text, str) or not text.strip():
        return "it is empty"
    if SEPARATOR in text or text != text.strip():
        return f"it contains {SEPARATOR!r} or leading/trailing spaces"
    if any(c in text for c in '\t\n\r"') or _CONTROL.search(text):
        return "it contains a tab, newline, double quote or control character"
    return None


def default_prompt(name: str) -> str:
    """The DA-CLIP words verbatim; any other name with '_' and '-' read as spaces."""
    if name in DEGRADATIONS:
        return name
    return " ".join(name.replace("_", " ").replace("-", " ").split()) or name


@dataclass(frozen=True)
class Vocabulary:
    """Ordered type names and, per type, the prompt text (same length, both unique)."""

    types: tuple[str, ...]
    prompts: tuple[str, ...]

    def __post_init__(self):
        if len(self.types) != len(self.prompts):
            raise ValueError("a vocabulary needs one prompt per type")
        if len(set(self.types)) != len(self.types):
            raise UserError(f"vocabulary lists a type twice: {', '.join(self.types)}")
        if len(set(self.prompts)) != len(self.prompts):
            raise UserError(f"two types of the vocabulary share a prompt text: {', '.join(self.prompts)}")

    @classmethod
    def of(cls, types: Iterable[str], prompts: Mapping[str, str] | None = None) -> Vocabulary:
        types = tuple(types)
        prompts = dict(prompts or {})
        for t in types:
            check_type_name(t, "vocabulary")
        unknown = [t for t in prompts if t not in types]
        if unknown:
            raise UserError(f"prompt given for {unknown[0]!r}, which is not a type of the dataset "
                            f"({', '.join(types)})")
        texts = tuple(prompts.get(t) or default_prompt(t) for t in types)
        for t, text in zip(types, texts):
            why = prompt_problem(text)
            if why:
                raise UserError(f"prompt text {text!r} of type {t!r} is refused: {why}")
        return cls(types, texts)

    def __len__(self) -> int:
        return len(self.types)

    def __iter__(self):
        return iter(self.types)

    def __contains__(self, t) -> bool:
        return t in self.types

    def index(self, t: str) -> int:
        return self.types.index(t)

    def prompt(self, t: str) -> str:
        return self.prompts[self.types.index(t)]

    def type_of_prompt(self, text: str) -> str | None:
        """The type whose prompt text (or name) is ``text``; None when there is none."""
        if text in self.prompts:
            return self.types[self.prompts.index(text)]
        return text if text in self.types else None

    @property
    def is_daclip(self) -> bool:
        return self == DACLIP

    def order(self, present: Iterable[str]) -> list[str]:
        """``present`` types in vocabulary order (unknown ones after, by name)."""
        present = set(present)
        return [t for t in self.types if t in present] + sorted(present - set(self.types))

    def extended(self, other: Vocabulary) -> Vocabulary:
        """This vocabulary followed by the types of ``other`` it lacks (old types keep their place)."""
        new = [(t, p) for t, p in zip(other.types, other.prompts) if t not in self.types]
        return Vocabulary(self.types + tuple(t for t, _ in new), self.prompts + tuple(p for _, p in new))

    def to_json(self) -> dict:
        return {"types": list(self.types), "prompts": list(self.prompts)}

    @classmethod
    def from_json(cls, data, where: str) -> Vocabulary:
        if not isinstance(data, dict) or not isinstance(data.get("types"), list) or not data["types"]:
            raise UserError(f"{where}: malformed vocabulary (expected {{'types': [...], 'prompts': [...]}})")
        types, prompts = data["types"], data.get("prompts") or [None] * len(data["types"])
        if not isinstance(prompts, list) or len(prompts) != len(types):
            raise UserError(f"{where}: malformed vocabulary: one prompt per type expected")
        for t in types:
            if not isinstance(t, str):
                raise UserError(f"{where}: malformed vocabulary: type {t!r} is not a string")
            check_type_name(t, where)
        return cls.of(types, {t: p for t, p in zip(types, prompts) if p})


DACLIP = Vocabulary(DEGRADATIONS, DEGRADATIONS)


def default_vocabulary(types: Iterable[str]) -> Vocabulary:
    """The vocabulary of a manifest that records none: DA-CLIP's when its types are DA-CLIP words."""
    present = set(types)
    if present <= set(DEGRADATIONS):
        return DACLIP
    return Vocabulary.of(sorted(present))


def check_covers(vocab: Vocabulary, types: Iterable[str], what: str, other: str) -> None:
    """UserError when ``types`` has a type ``vocab`` (of ``what``) lacks."""
    missing = [t for t in dict.fromkeys(types) if t not in vocab]
    if missing:
        raise UserError(f"vocabulary mismatch: {other} has type(s) {', '.join(missing)}, which {what} does not know "
                        f"(it knows: {', '.join(vocab.types)})")


# -- parquet key-value metadata (the home of a dataset's vocabulary) -------------------------------

def encode(vocab: Vocabulary) -> bytes:
    return json.dumps(vocab.to_json(), sort_keys=True).encode()


def decode(raw: bytes | None, where: str) -> Vocabulary | None:
    if raw is None:
        return None
    try:
        data = json.loads(raw.decode())
    except (UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"{where}: unreadable vocabulary metadata ({exc})") from None
    return Vocabulary.from_json(data, where)


# -- captions CSV titles: one rule for the writer and the reader ------------------------------------

def make_title(caption: str, prompt: str) -> str:
    """``"<caption>: <prompt>"``; the caption must already be sanitised (no ': ')."""
    title = f"{caption}{SEPARATOR}{prompt}"
    split_title(title)  # refuse to make a title the reader (and the official loader) cannot split
    return title


def split_title(title: str) -> tuple[str, str]:
    """The official loader's rule: exactly one ': ' separates caption and degradation text.

    ``caption, degradation = title.split(": ")`` in the authors' CsvDataset fails on any other
    count, so a title with none or with two is refused (ValueError) by the writer and the
    reader alike.
    """
    parts = str(title).split(SEPARATOR)
    if len(parts) != 2:
        raise ValueError(f"title {title!r} does not split into caption and degradation on {SEPARATOR!r} "
                         f"(exactly one expected, as the official loader splits)")
    caption, degradation = parts[0].strip(), parts[1].strip()
    if not degradation:
        raise ValueError(f"title {title!r} has no degradation text after {SEPARATOR!r}")
    return caption, degradation


def type_of_word(word: str, vocab: Vocabulary | None) -> str | None:
    """The type a CSV title's degradation text names (its prompt text, or the type name)."""
    if vocab is not None:
        return vocab.type_of_prompt(word)
    return word if word in DEGRADATIONS else None


def vocabulary_from_words(words: Sequence[str]) -> Vocabulary:
    """The vocabulary of a bare captions CSV: DA-CLIP's when its words are DA-CLIP words, else
    the words sorted, each its own prompt (type name: spaces read as '_')."""
    present = sorted(set(words))
    if set(present) <= set(DEGRADATIONS):
        return DACLIP
    types = [w if w in DEGRADATIONS else "_".join(w.split()) for w in present]
    return Vocabulary.of(types, dict(zip(types, present)))
