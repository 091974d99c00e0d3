"""The weights folder, one home for where weight files live and how a file in it is trusted.

Methods (:mod:`daclip.weights`) and metrics (:mod:`benchmark.weights`) share one folder:
``--weights-dir``, else ``$DACLIP_WEIGHTS_DIR``, else ``$DACLIP_WEIGHTS``, else
``~/.cache/daclip-toolkit/weights``. The variables are read at call time, never at import, so a
test or a command that sets one sees it everywhere.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError

#: Read in this order; the first that is set wins.
WEIGHTS_ENVS = ("DACLIP_WEIGHTS_DIR", "DACLIP_WEIGHTS")
# torch.hub's convention (HASH_REGEX): "<name>-<first hex digits of the sha256>.<ext>".
HUB_HASH = re.compile(r"-([a-f0-9]{8,})\.")


def default_weights_dir() -> Path:
    return Path.home() / ".cache" / "daclip-toolkit" / "weights"


def weights_dir(override: str | os.PathLike | None = None) -> Path:
    """The weights folder: ``override``, else the first variable of WEIGHTS_ENVS that is set."""
    if override:
        return Path(override).expanduser()
    for var in WEIGHTS_ENVS:
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    return default_weights_dir()


@dataclass(frozen=True)
class WeightsEntry:
    """One weight file: where it comes from and the figures it must match.

    ``hf_repo`` or ``url`` is its source (neither: never published). ``size`` (bytes) and
    ``sha256`` are the published figures; a hub name's ``-<hex>.`` prefix is checked where no
    full digest is known. ``subdir`` places it in the folder (metric weights mirror the library
    caches); without one it goes under ``<hf repo with -->`` or ``<name>``.
    """

    name: str
    filename: str
    hf_repo: str | None = None
    url: str | None = None
    sha256: str | None = None
    size: int | None = None
    #: What the file is / how to obtain it when there is no source (shown in errors).
    note: str = ""
    #: The container the file is in, as released (for listings and the loader's docs).
    format: str = ""
    subdir: str | None = None
    used_by: tuple[str, ...] = ()  # metric names
    #: Path inside the hub repo when it is not ``filename`` (e.g. ``ckpts/x.tar``).
    hf_path: str = ""
    #: A page to download the file from by hand (a Drive folder): never fetched automatically.
    page: str = ""
    #: The method this file is a release of, the protocol it was trained for (3d, 5d, cdd11,
    #: 7d, 12d, ...) and its role when a method loads several files ("" for the network).
    method: str = ""
    protocol: str = ""
    role: str = ""
    licence: str = ""

    @property
    def key(self) -> str:
        return self.name

    @property
    def source(self) -> str:
        if self.hf_repo:
            return f"https://huggingface.co/{self.hf_repo} ({self.hf_path or self.filename})"
        if self.url:
            return self.url
        return f"{self.page} (by hand)" if self.page else "not published"

    def path(self, root: str | os.PathLike) -> Path:
        if self.subdir is not None:
            return Path(root) / self.subdir / self.filename
        sub = self.hf_repo.replace("/", "--") if self.hf_repo else self.name
        return Path(root) / sub / self.filename

    @property
    def digest_prefix(self) -> str | None:
        """What the file's sha256 must start with: the full digest, else its hub name's prefix."""
        if self.sha256:
            return self.sha256.lower()
        m = HUB_HASH.search(self.filename)
        return m.group(1) if m else None


class WeightsMismatch(UserError):
    """A weight file's size or sha256 is not the released one."""


_verified: dict[tuple, str] = {}  # (path, size, mtime_ns) -> sha256, for files verified in this process


def verify(entry: WeightsEntry, path: str | os.PathLike, fix: str = "download it again") -> str:
    """The sha256 of ``path`` once its size and digest match ``entry``; else WeightsMismatch
    naming both values and ``fix`` (what to do about it)."""
    from .io import sha256_file

    path = Path(path)
    st = path.stat()
    if entry.size is not None and st.st_size != entry.size:
        raise WeightsMismatch(f"{path}: {st.st_size} bytes, but the released {entry.filename} has {entry.size}; "
                              f"delete it and {fix}")
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    digest = _verified.get(key) or sha256_file(path)
    want = entry.digest_prefix
    if want and not digest.startswith(want):
        raise WeightsMismatch(
            f"{path}: sha256 {digest} does not match the released file {entry.filename} (expected {want}"
            f"{'' if entry.sha256 else '...'}); it is corrupt or not the original: delete it and {fix}")
    _verified[key] = digest
    return digest
