"""Released weight files: where each comes from, and a local cache to keep them in.

Resolution order for a weights entry: an explicit path (``--weights name=PATH``) ->
the cache (``$DACLIP_WEIGHTS_DIR`` or ``$DACLIP_WEIGHTS``, default
``~/.cache/daclip-toolkit/weights``, shared with the metric weights of benchmark.weights) -> a
download (Hugging Face Hub or HTTP; checked against the sha256 when the table knows it).
Offline, or for files that were never published, the error says how to get the file:
a method never runs with random weights.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from builders.io import sha256_file

# DACLIP_WEIGHTS is also the metric-weights folder of benchmark.weights: one folder for all.
CACHE_ENVS = ("DACLIP_WEIGHTS_DIR", "DACLIP_WEIGHTS")
OFFLINE_ENVS = ("DACLIP_OFFLINE", "HF_HUB_OFFLINE")
DACLIP_HF_REPO = "weblzw/daclip-uir-ViT-B-32-irsde"


@dataclass(frozen=True)
class WeightsEntry:
    """One released file. ``hf_repo`` or ``url`` is its source; neither means unpublished."""

    name: str
    filename: str
    hf_repo: str | None = None
    url: str | None = None
    sha256: str | None = None
    #: What the file is / how to obtain it when there is no source (shown in errors).
    note: str = ""

    @property
    def source(self) -> str:
        if self.hf_repo:
            return f"https://huggingface.co/{self.hf_repo} ({self.filename})"
        return self.url or "not published"


_UNPUBLISHED = (
    "the DA-CLIP paper retrained this baseline on the ten-task set and did not publish the "
    "weights; train it with `python -m daclip.train_ir --method {m} --root DATA` and pass "
    "--weights {m}=OUT/ema.pth"
)

WEIGHTS: dict[str, WeightsEntry] = {
    e.name: e
    for e in (
        WeightsEntry("daclip", "daclip_ViT-B-32.pt", hf_repo=DACLIP_HF_REPO,
                     note="DA-CLIP ViT-B-32 (open_clip checkpoint), conditions 'ours', 'nafnet-daclip' and 'nafnet-degradation'"),
        WeightsEntry("ours", "universal-ir.pth", hf_repo=DACLIP_HF_REPO,
                     note="the universal-ir ConditionalUNet (plain state_dict), ten-task model"),
        WeightsEntry("promptir", "model.ckpt",
                     url="https://github.com/va1shn9v/PromptIR/releases/download/v1.0/model.ckpt",
                     note="PromptIR three-task (haze, rain, noise) all-in-one model, Lightning checkpoint; "
                          "the paper's ten-task PromptIR weights are not published"),
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
    if override:
        return Path(override)
    for var in CACHE_ENVS:
        if os.environ.get(var):
            return Path(os.environ[var])
    return Path.home() / ".cache" / "daclip-toolkit" / "weights"


def offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on") for v in OFFLINE_ENVS)


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
    if entry.sha256 and sha256_file(path) != entry.sha256:
        raise WeightsUnavailable(
            f"{path}: sha256 does not match the released {entry.filename} ({entry.sha256[:16]}...); "
            "delete it and download again"
        )


def cached_path(entry: WeightsEntry, root: Path) -> Path:
    sub = entry.hf_repo.replace("/", "--") if entry.hf_repo else entry.name
    return root / sub / entry.filename


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
    from builders.sources.base import Candidate, NeededFile

    # One downloader for datasets and weights: resume, retries, sha256 check, progress bar.
    source = Candidate("hf-model", f"{entry.hf_repo}:{entry.filename}") if entry.hf_repo else Candidate("url", entry.url)
    try:
        # No hint from the downloader: ``how`` below says how to supply the file by hand.
        fetch(NeededFile(entry.filename, (source,), sha256=entry.sha256),
              DownloadConfig(cache_dir=path.parent, manual_hint=""))
    except UserError as exc:
        raise WeightsUnavailable(f"cannot download weights for {name!r} ({exc}); {how}") from None
    return path


def weights_id(path: str | os.PathLike) -> str:
    """First 16 hex characters of the file's sha256 (cache key of restored images)."""
    return sha256_file(path)[:16]
