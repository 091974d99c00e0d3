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

_LIGHTNING = "Lightning checkpoint, state_dict keys prefixed net."
_ADAIR_DRIVE = "https://drive.google.com/drive/folders/1x2LN4kWkO3S65jJlH-1INUFiYt8KFzPH"
_MOCE_DRIVE = "https://drive.google.com/drive/folders/1pQBceb8cCPdIzbqbNNGqV5qNXzzqL4uK"
_ONERESTORE_HF = "gy65896/OneRestore"
_ONERESTORE_TAR = "plain state_dict (a torch zip file despite the .tar name)"


def _moce(method: str, folder: str, protocol: str) -> WeightsEntry:
    return WeightsEntry(f"{method}-{protocol}", "last.ckpt", page=_MOCE_DRIVE, method=method, protocol=protocol,
                        format=_LIGHTNING,
                        note=f"{'MoCE-IR-S' if method.endswith('-s') else 'MoCE-IR'} {protocol} release, "
                             f"checkpoints/{folder}/last.ckpt in the authors' Drive folder (which files it holds "
                             "is unconfirmed; the AIO3 file was re-uploaded on 2025-03-13, MoCE-IR issue 3); "
                             "no size or sha256 published")


def _onerestore(protocol: str, file: str, what: str) -> WeightsEntry:
    return WeightsEntry(f"onerestore-{protocol}", file, hf_repo=_ONERESTORE_HF, hf_path=f"ckpts/{file}",
                        method="onerestore", protocol=protocol, format=_ONERESTORE_TAR,
                        note=f"OneRestore restorer, {what} (about 24 MB); no sha256 published")


# The field's released all-in-one models (facts: ../shared/reference/zoo.md), one row per file.
_ZOO = (
    WeightsEntry("airnet-3d", "All.pth", page="https://github.com/XLearning-SCU/2022-CVPR-AirNet (ckpt/All.pth)",
                 method="airnet", protocol="3d", format="plain state_dict (R./E. prefixes)",
                 note="AirNet's released three-task (noise, rain, haze) model, ckpt/All.pth of its repository"),
    WeightsEntry("adair-3d", "adair3d.ckpt", page=_ADAIR_DRIVE, method="adair", protocol="3d", format=_LIGHTNING,
                 note="AdaIR three-task model; the name is known from third-party code only, and a third-party "
                      "script's sha256 (f3822d9c...37fb) is unverified; no official size or sha256"),
    WeightsEntry("adair-5d", "adair5d.ckpt", page=_ADAIR_DRIVE, method="adair", protocol="5d", format=_LIGHTNING,
                 note="AdaIR five-task model (test.py's default); no size or sha256 published"),
    _moce("moce-ir", "MoCE_IR_AIO3", "3d"), _moce("moce-ir", "MoCE_IR_AIO5", "5d"),
    _moce("moce-ir", "MoCE_IR_CDD11", "cdd11"),
    _moce("moce-ir-s", "MoCE_IR_S_AIO3", "3d"), _moce("moce-ir-s", "MoCE_IR_S_AIO5", "5d"),
    _moce("moce-ir-s", "MoCE_IR_S_CDD11", "cdd11"),
    WeightsEntry("instructir-7d", "im_instructir-7d.pt", hf_repo="marcosv/InstructIR", method="instructir",
                 protocol="7d", format=_PLAIN, note="InstructIR image model, 7D release; no sha256 published"),
    WeightsEntry("instructir-lm-7d", "lm_instructir-7d.pt", hf_repo="marcosv/InstructIR", size=403275,
                 method="instructir", protocol="7d", role="lm", format=_PLAIN,
                 note="InstructIR language head LMHead(384, 256, 7), 7D release"),
    _onerestore("cdd11", "onerestore_cdd-11.tar", "CDD-11 (11 composite degradations)"),
    _onerestore("real", "onerestore_real.tar", "real-scene release"),
    _onerestore("lol", "onerestore_lol.tar", "LOL low-light release"),
    _onerestore("reside-ots", "onerestore_reside_ots.tar", "RESIDE-OTS dehazing release"),
    _onerestore("rain1200", "onerestore_rain1200.tar", "Rain1200 deraining release"),
    _onerestore("snow100k", "onerestore_snow100k.tar", "Snow100K desnowing release"),
    WeightsEntry("onerestore-embedder", "embedder_model.tar", hf_repo=_ONERESTORE_HF, hf_path="ckpts/embedder_model.tar",
                 method="onerestore", role="embedder", format=_ONERESTORE_TAR,
                 note="OneRestore scene embedder (ResNet18 weights included; about 48.6 MB); predicts the scene "
                      "type in blind mode; no sha256 published"),
    WeightsEntry("onerestore-glove", "glove.6B.300d.txt",
                 url="https://raw.githubusercontent.com/gy65896/OneRestore/"
                     "23a2e6af066864dca013aeed7f6c6f5958aa7259/utils/glove.6B.300d.txt",
                 sha256="58e45834dd9be70d53851f25fcf3185029ee8387e5e5f17a4536af297dd4d9aa", size=13017,
                 method="onerestore", role="glove", format="text: GloVe 6B 300-d vectors of 5 words",
                 licence="GloVe (Pennington et al., Stanford NLP): Public Domain Dedication and License v1.0",
                 note="the repository's trimmed GloVe file (clear, low, haze, rain, snow): the embedder's initial "
                      "type-name vectors; the released embedder file already holds them (embedder.weight)"),
    WeightsEntry("maskdcpt-nafnet-5d", "nafnet_maskdcpt_5d.pth", hf_repo="Jiakui/MaskDCPT", method="maskdcpt-nafnet",
                 protocol="5d", format="BasicSR dict, params_ema read first (params when absent)",
                 note="MaskDCPT NAFNet, five-task release; no sha256 published"),
    WeightsEntry("maskdcpt-nafnet-12d", "nafnet_maskdcpt_12d.pth", hf_repo="Jiakui/MaskDCPT",
                 method="maskdcpt-nafnet", protocol="12d",
                 format="BasicSR dict, params_ema read first (params when absent)",
                 note="MaskDCPT NAFNet, twelve-task release; no sha256 published"),
)

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
                     format=_LIGHTNING, method="promptir", protocol="3d"),
        WeightsEntry("irsde", "irsde.pth", note=_UNPUBLISHED.format(m="irsde")),
        WeightsEntry("nafnet", "nafnet.pth", note=_UNPUBLISHED.format(m="nafnet")),
        WeightsEntry("nafnet-daclip", "nafnet-daclip.pth", note=_UNPUBLISHED.format(m="nafnet-daclip")),
        WeightsEntry("nafnet-degradation", "nafnet-degradation.pth", note=_UNPUBLISHED.format(m="nafnet-degradation")),
        WeightsEntry("restormer", "restormer.pth", note=_UNPUBLISHED.format(m="restormer")),
        WeightsEntry("airnet", "airnet.pth", note=_UNPUBLISHED.format(m="airnet")),
        *_ZOO,
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
            if name == "daclip" else f"pass --weights {entry.method}=NETWORK_FILE,PATH" if entry.role
            else f"pass --weights {entry.method or name}=PATH")
    how = f"download {entry.filename} from {entry.source} and {give}, or put it at {path}"
    if not entry.hf_repo and not entry.url and entry.page:
        raise WeightsUnavailable(
            f"weights for {name!r} are not in the cache; download {entry.filename} by hand from {entry.page} "
            f"and {give}, or put it at {path}")
    if not entry.hf_repo and not entry.url:
        raise WeightsUnavailable(f"no weights for {name!r}: {entry.note}")
    if not download or offline():
        fetch_cmd = (f"run `python -m benchmark.weights fetch --methods {entry.method}` on a machine with internet "
                     "and copy the weights folder, or " if entry.method else "")
        raise WeightsUnavailable(f"weights for {name!r} are not in the cache and downloads are off (offline); "
                                 f"{fetch_cmd}{how}")
    from builders.download import DownloadConfig, fetch
    from builders.errors import UserError
    from builders.lock import FolderLock
    from builders.sources.base import Candidate, NeededFile

    # One downloader for datasets and weights: resume, retries, sha256 check, progress bar.
    source = (Candidate("hf-model", f"{entry.hf_repo}:{entry.hf_path or entry.filename}") if entry.hf_repo
              else Candidate("url", entry.url))
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


def releases(method: str, role: str = "") -> dict[str, WeightsEntry]:
    """A method's released files by protocol (3d, 5d, cdd11, 7d, 12d, ...), for ``role``."""
    return {e.protocol: e for e in WEIGHTS.values() if e.method == method and e.role == role and e.protocol}


def release_for(method: str, protocol: str, role: str = "") -> WeightsEntry | None:
    """The weights entry of ``method``'s release for ``protocol`` (case and ``-`` insensitive), or None."""
    want = protocol.lower().replace("-", "").replace("_", "")
    return next((e for p, e in releases(method, role).items() if p.replace("-", "") == want), None)
