"""Training/evaluation data for DA-CLIP: (LQ image, caption ++ degradation tokens, label).

Two sources:
- the official captions CSV (tab-separated ``filepath<TAB>title``, title
  ``"<caption>: <degradation text>"``, split by builders.vocabulary.split_title, the rule the
  captions writer uses too; relative paths resolve against the CSV's folder);
- a built dataset's manifest, with captions from ``<root>/daclip_<split>.csv`` or, before
  captioning, a fixed template caption (``--captions none``).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from builders.errors import UserError
from builders.io import read_image
from builders.manifest import read_manifest, select
from builders.vocabulary import Vocabulary, type_of_word, vocabulary_from_words
from builders.vocabulary import split_title as _split_title

from .model import OPENAI_MEAN, OPENAI_STD

TEMPLATE_CAPTION = "a photo"  # used when no captions exist yet (--captions none)


@dataclass(frozen=True)
class Item:
    path: Path            # LQ image
    caption: str
    degradation: str      # the type name
    id: str = ""
    sha256: str = ""
    prompt: str = ""      # the degradation text of its title ("" for manifest items: the vocabulary's)


def split_title(title: str, where: str, vocab: Vocabulary | None = None) -> tuple[str, str]:
    """'<caption>: <degradation text>' -> (caption, type), by the captions writer's rule
    (exactly one ': ', as the official loader splits). With ``vocab``, the text must be one of
    its prompt texts (or type names); without, any text is taken as is."""
    try:
        caption, word = _split_title(title)
    except ValueError as exc:
        raise UserError(f"{where}: {exc}") from None
    if vocab is None:
        return caption, word
    task = type_of_word(word, vocab)
    if task is None:
        raise UserError(f"{where}: unknown degradation {word!r}; expected one of {', '.join(vocab.prompts)}")
    return caption, task


def items_vocabulary(items: Sequence[Item]) -> Vocabulary:
    """The vocabulary of items read from a bare captions CSV (no dataset manifest)."""
    return vocabulary_from_words([it.prompt or it.degradation for it in items])


def read_captions_csv(path: str | Path, vocab: Vocabulary | None = None) -> list[Item]:
    """Items of a captions CSV. Without ``vocab`` a title's degradation text names the type as
    :func:`builders.vocabulary.vocabulary_from_words` does (DA-CLIP words stay themselves)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"captions CSV not found: {path}")
    items = []
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        if reader.fieldnames is None or not {"filepath", "title"} <= set(reader.fieldnames):
            raise UserError(f"{path}: expected a tab-separated header 'filepath<TAB>title', got {reader.fieldnames}")
        for lineno, row in enumerate(reader, start=2):
            img = Path(row["filepath"])
            if not img.is_absolute():
                img = path.parent / img
            caption, word = split_title(row["title"] or "", f"{path}:{lineno}")
            task = word if vocab is None else type_of_word(word, vocab)
            if task is None:
                raise UserError(f"{path}:{lineno}: unknown degradation {word!r}; expected one of "
                                f"{', '.join(vocab.prompts)}")
            items.append(Item(img, caption, task, id=str(row["filepath"]), prompt=word))
    if not items:
        raise UserError(f"captions CSV {path} has no rows")
    if vocab is None:
        csv_vocab = items_vocabulary(items)
        items = [Item(it.path, it.caption, type_of_word(it.prompt, csv_vocab), id=it.id, prompt=it.prompt)
                 for it in items]
    return items


def items_from_manifest(root: str | Path, split: str, captions: str = "auto") -> list[Item]:
    """Items of one split of a built dataset.

    ``captions``: 'none' (template caption), 'auto' (``<root>/daclip_<split>.csv``, which
    must exist) or a CSV path.
    """
    from builders.manifest import read_vocabulary

    root = Path(root)
    df = read_manifest(root)
    vocab = read_vocabulary(root, df)
    df = select(root, split, manifest=df)
    if df.empty:
        raise UserError(f"{root}: the manifest has no rows for split {split!r}")
    by_path: dict[Path, str] = {}
    if captions != "none":
        csv_path = root / f"daclip_{split}.csv" if captions == "auto" else Path(captions)
        if captions == "auto" and not csv_path.is_file():
            raise UserError(f"no captions CSV at {csv_path}: caption the dataset first, or pass "
                            f"--captions none to train with a template caption")
        by_path = {it.path.resolve(): it.caption for it in read_captions_csv(csv_path, vocab)}
    items = []
    missing = []
    for row in df.itertuples(index=False):
        lq = root / row.lq_path
        if captions == "none":
            caption = TEMPLATE_CAPTION
        else:
            caption = by_path.get(lq.resolve())
            if caption is None:
                missing.append(row.lq_path)
                continue
        items.append(Item(lq, caption, row.type, id=row.id, sha256=row.sha256, prompt=vocab.prompt(row.type)))
    if missing:
        raise UserError(f"{len(missing)} {split} images have no caption in the captions CSV, "
                        f"e.g. {missing[0]}")
    return items


def load_items(*, root: str | None, csv_path: str | None, split: str, captions: str) -> list[Item]:
    if csv_path:
        return read_captions_csv(csv_path)
    if root:
        return items_from_manifest(root, split, captions)
    raise UserError("give --root (a built dataset) or --csv (a captions CSV)")


# -- transforms -----------------------------------------------------------------------------

def train_transform(image_size: int):
    """The official recipe: RandomResizedCrop(scale 0.9..1, bicubic), OpenAI normalisation."""
    from torchvision import transforms as T

    return T.Compose([
        T.RandomResizedCrop(image_size, scale=(0.9, 1.0), interpolation=T.InterpolationMode.BICUBIC),
        T.ToTensor(),
        T.Normalize(OPENAI_MEAN, OPENAI_STD),
    ])


def eval_transform(image_size: int):
    """open_clip's evaluation transform: bicubic short side to size, centre crop, normalise."""
    from torchvision import transforms as T

    return T.Compose([
        T.Resize(image_size, interpolation=T.InterpolationMode.BICUBIC),
        T.CenterCrop(image_size),
        T.ToTensor(),
        T.Normalize(OPENAI_MEAN, OPENAI_STD),
    ])


# -- dataset --------------------------------------------------------------------------------

class DaClipDataset(Dataset):
    """Yields (image [3,S,S], tokens [2*context] = caption ++ degradation word, label)."""

    def __init__(self, items: Sequence[Item], transform, tokenizer, vocabulary: Vocabulary | None = None):
        from builders.vocabulary import DACLIP, check_covers

        self.items = list(items)
        self.vocabulary = vocabulary or DACLIP
        check_covers(self.vocabulary, [it.degradation for it in self.items], "the model's vocabulary", "the data")
        self.transform = transform
        # Tokenise once: captions repeat (template) and the prompt texts are few.
        unique = sorted({it.caption for it in self.items})
        index = {c: i for i, c in enumerate(unique)}
        self.caption_tokens = tokenizer(unique) if unique else torch.empty(0, 77, dtype=torch.long)
        self.caption_index = torch.tensor([index[it.caption] for it in self.items], dtype=torch.long)
        self.word_tokens = tokenizer(list(self.vocabulary.prompts))
        self.labels = torch.tensor([self.vocabulary.index(it.degradation) for it in self.items], dtype=torch.long)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        item = self.items[i]
        image = Image.fromarray(read_image(item.path))
        label = self.labels[i]
        text = torch.cat([self.caption_tokens[self.caption_index[i]], self.word_tokens[label]])
        return self.transform(image), text, label


def make_loader(dataset: Dataset, batch_size: int, *, train: bool, world_size: int = 1, rank: int = 0,
                workers: int = 0, seed: int = 0, pin_memory: bool = False) -> DataLoader:
    """Shuffled (train) or ordered loader; split across ranks with a DistributedSampler."""
    sampler = None
    if world_size > 1:
        sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=train,
                                     seed=seed, drop_last=train)
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=(train and sampler is None), sampler=sampler,
        num_workers=workers, drop_last=False, pin_memory=pin_memory, generator=generator,
        persistent_workers=workers > 0,
    )
