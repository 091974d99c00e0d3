"""Released weight files: where each comes from, and a local cache to keep them in.

Resolution order for a weights entry: an explicit path (``--weights name=PATH``) ->
the weights folder (:func:`builders.weights_folder.weights_dir`, shared with the metric
weights of benchmark.weights) -> a
download (Hugging Face Hub or HTTP; checked against the sha256 when the table knows it).
Offline, or for files that were never published, the error says how to get the file:
a method never runs with random weights.
"""

from __future__ import annotations

import os
from pathlib import Path

from builders.hub import offline
from builders.io import sha256_file
from builders.weights_folder import WeightsEntry, WeightsMismatch, verify, weights_dir

DACLIP_HF_REPO = "weblzw/daclip-uir-ViT-B-32-irsde"


_UNPUBLISHED = (
    "the DA-CLIP paper retrained this baseline on the ten-task set and did not publish the "
    "weights; train it with `python -m daclip.train_ir --method {m} --root DATA` and pass "
    "--weights {m}=OUT/ema.pth"
)
# Sizes and digests: hub commit 01b5f55fff62279469a8a5f6724403835ae4d51e of the DA-CLIP repo.
_OPEN_CLIP_TRAINING = "open_clip training checkpoint {epoch, name, state_dict, optimizer}"
_PLAIN = "plain state_dict"

WEIGHTS: dict[str, WeightsEntry] = {
    e.name: e
    for e in (
        WeightsEntry("daclip", "daclip_ViT-B-32.pt", hf_repo=DACLIP_HF_REPO,
                     sha256="ea948854d4293f2d222ead043fd5b4090fba984c8e2db8656934d768dc4f8230", size=1744725787,
                     note="DA-CLIP ViT-B-32 (open_clip checkpoint), conditions 'ours', 'nafnet-daclip' and "
                          "'nafnet-degradation'", format=_OPEN_CLIP_TRAINING),
        WeightsEntry("ours", "universal-ir.pth", hf_repo=DACLIP_HF_REPO,
                     sha256="87575b2559ca122d27b56fe7f24fe63d8099795cdd5b16af2bab41ecc2bb02a8", size=195990371,
                     note="the universal-ir ConditionalUNet (plain state_dict), ten-task model", format=_PLAIN),
        WeightsEntry("daclip-mix", "daclip_ViT-B-32_mix.pt", hf_repo=DACLIP_HF_REPO,
                     note="DA-CLIP-mix ViT-B-32 (trained with added blur, blur+rain and inpainting mixtures); "
                          "conditions 'ours-mix'; size and sha256 not published", format=_OPEN_CLIP_TRAINING),
        WeightsEntry("ours-mix", "universal-ir-mix.pth", hf_repo=DACLIP_HF_REPO,
                     note="Universal-IR-mix ConditionalUNet (robust training on mixed degradations); "
                          "size and sha256 not published", format=_PLAIN),
        WeightsEntry("daclip-wild", "wild-daclip_ViT-L-14.pt", hf_repo=DACLIP_HF_REPO,
                     note="the follow-up paper's (arXiv 2404.09732) DA-CLIP ViT-L-14; conditions 'wild-ir'; "
                          "size and sha256 not published", format=_OPEN_CLIP_TRAINING),
        WeightsEntry("wild-ir", "wild-ir.pth", hf_repo=DACLIP_HF_REPO,
                     note="wild-ir ConditionalUNet (context 768, no degradation context, learned 0.5x "
                          "down/up-sampling); size and sha256 not published", format=_PLAIN),
        WeightsEntry("promptir", "model.ckpt",
                     url="https://github.com/va1shn9v/PromptIR/releases/download/v1.0/model.ckpt",
                     note="PromptIR three-task (haze, rain, noise) all-in-one model, Lightning checkpoint; "
                          "the paper's ten-task PromptIR weights are not published",
                     format="Lightning checkpoint, state_dict keys prefixed net."),
        WeightsEntry("irsde", "irsde.pth", note=_UNPUBLISHED.format(m="irsde")),
        WeightsEntry("nafnet", "nafnet.pth", note=_UNPUBLISHED.format(m="nafnet")),
        WeightsEntry("nafnet-daclip", "nafnet-daclip.pth", note=_UNPUBLISHED.format(m="nafnet-daclip")),
        WeightsEntry("nafnet-degradation", "nafnet-degradation.pth", note=_UNPUBLISHED.format(m="nafnet-degradation")),
        WeightsEntry("restormer", "restormer.pth", note=_UNPUBLISHED.format(m="restormer")),
        WeightsEntry("airnet", "airnet.pth", note=_UNPUBLISHED.format(m="airnet")),
    )
}


class WeightsUnavailable(Exception):
    """A weights file cannot be found or fetched; the message says how to obtain it."""


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    return weights_dir(override)


def parse_weights_overrides(items: list[str] | None) -> dict[str, str]:
    """``["ours=a.pth", "nafnet=b.pth"]`` -> {"ours": "a.pth", ...} (the --weights option)."""
    from builders.errors import UserError

    out: dict[str, str] = {}
    for item in items or []:
        for part in item.split(";"):
            if not part.strip():
                continue
            name, sep, path = part.partition("=")
            if not sep or not name.strip() or not path.strip():
                raise UserError(f"--weights expects NAME=PATH, got {part!r}")
            out[name.strip()] = path.strip()
    return out


def _verify(path: Path, entry: WeightsEntry) -> None:
    try:
        verify(entry, path, fix=f"download again (rm {path})")
    except WeightsMismatch as exc:
        raise WeightsUnavailable(str(exc)) from None


def cached_path(entry: WeightsEntry, root: Path) -> Path:
    return entry.path(root)


def resolve_weights(
    name: str,
    override: str | os.PathLike | None = None,
    *,
    root: str | os.PathLike | None = None,
    table: dict[str, WeightsEntry] | None = None,
    download: bool = True,
) -> Path:
    """Local path of weights ``name``: the override, else the cache, else a download."""
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise WeightsUnavailable(f"weights file for {name!r} not found: {path}")
        return path
    table = WEIGHTS if table is None else table
    if name not in table:
        raise WeightsUnavailable(f"no weights entry {name!r}; known: {', '.join(table)}")
    entry = table[name]
    root = cache_dir(root)
    path = cached_path(entry, root)
    if path.is_file():
        _verify(path, entry)
        return path
    # DA-CLIP is not a method: it is passed as the conditioned method's daclip_weights option.
    give = ("pass it with --option METHOD:daclip_weights=PATH (benchmark.run) or --daclip PATH (daclip.restore)"
            if name == "daclip" else f"pass --weights {name}=PATH")
    how = f"download {entry.filename} from {entry.source} and {give}, or put it at {path}"
    if not entry.hf_repo and not entry.url:
        raise WeightsUnavailable(f"no weights for {name!r}: {entry.note}")
    if not download or offline():
        raise WeightsUnavailable(f"weights for {name!r} are not in the cache and downloads are off (offline); {how}")
    from builders.download import DownloadConfig, fetch
    from builders.errors import UserError
    from builders.lock import FolderLock
    from builders.sources.base import Candidate, NeededFile

    # One downloader for datasets and weights: resume, retries, sha256 check, progress bar.
    source = Candidate("hf-model", f"{entry.hf_repo}:{entry.filename}") if entry.hf_repo else Candidate("url", entry.url)
    try:
        # One writer of the cache at a time; a second process that needs the same file waits
        # for the first one's download instead of writing the same .part beside it.
        with FolderLock(root, "weights folder", wait=None):
            if path.is_file():  # another process fetched it while this one waited
                _verify(path, entry)
                return path
            # No hint from the downloader: ``how`` below says how to supply the file by hand.
            fetch(NeededFile(entry.filename, (source,), sha256=entry.sha256, size=entry.size),
                  DownloadConfig(cache_dir=path.parent, manual_hint=""))
    except UserError as exc:
        raise WeightsUnavailable(f"cannot download weights for {name!r} ({exc}); {how}") from None
    return path


def weights_id(path: str | os.PathLike) -> str:
    """First 16 hex characters of the file's sha256 (cache key of restored images)."""
    return sha256_file(path)[:16]
