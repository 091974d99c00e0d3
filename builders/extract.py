"""Safe extraction of zip and tar(.gz) archives.

Every member is checked before anything is written: absolute paths, ``..`` components, links
(symbolic or hard) and device/FIFO entries make the whole archive refused with an error naming
the member. Files are written by this module (never ``extractall``) into a temporary folder that
is renamed into place when complete, so a killed run leaves no half-extracted folder behind and
a re-run starts over cleanly.
"""

from __future__ import annotations

import gzip
import os
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from .errors import UserError


class UnsafeArchive(UserError):
    """The archive holds a member that could write outside the destination."""


def check_member_name(archive: Path, name: str) -> PurePosixPath:
    """The member's relative path, or UnsafeArchive naming it."""
    norm = name.replace("\\", "/")
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":"):
        raise UnsafeArchive(f"{archive.name}: refusing member with an absolute path: {name!r}")
    parts = [p for p in norm.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchive(f"{archive.name}: refusing member with '..' in its path: {name!r}")
    return PurePosixPath(*parts) if parts else PurePosixPath(".")


def _zip_members(archive: Path, zf: zipfile.ZipFile) -> Iterator[tuple[PurePosixPath, bool, zipfile.ZipInfo]]:
    for info in zf.infolist():
        rel = check_member_name(archive, info.filename)
        ftype = stat.S_IFMT(info.external_attr >> 16)
        # Unix zips store the file type in the high bits; 0 (DOS-made zips, Python's writestr)
        # means a plain file or folder.
        if ftype and ftype not in (stat.S_IFREG, stat.S_IFDIR):
            kind = "symlink" if ftype == stat.S_IFLNK else "special file"
            raise UnsafeArchive(f"{archive.name}: refusing {kind} member: {info.filename!r}")
        yield rel, info.is_dir(), info


def _tar_members(archive: Path, tf: tarfile.TarFile) -> Iterator[tuple[PurePosixPath, bool, tarfile.TarInfo]]:
    for info in tf.getmembers():
        rel = check_member_name(archive, info.name)
        if info.issym() or info.islnk():
            raise UnsafeArchive(f"{archive.name}: refusing link member: {info.name!r} -> {info.linkname!r}")
        if not (info.isreg() or info.isdir()):
            raise UnsafeArchive(f"{archive.name}: refusing device/special member: {info.name!r}")
        yield rel, info.isdir(), info


def archive_kind(path: Path) -> str:
    if zipfile.is_zipfile(path):
        return "zip"
    if tarfile.is_tarfile(path):
        return "tar"
    raise UserError(f"{path}: not a zip or tar archive")


def safe_extract(archive: Path, dest: Path, keep: Callable[[str], bool] | None = None,
                 force: bool = False, progress: bool = False) -> Path:
    """Extract ``archive`` into ``dest`` (created atomically); members failing ``keep`` are skipped.

    Returns ``dest``. An existing ``dest`` is taken as a finished extraction unless ``force``.
    """
    archive, dest = Path(archive), Path(dest)
    if dest.is_dir() and not force:
        return dest
    tmp = dest.with_name(f".{dest.name}.extracting")
    if tmp.exists():
        shutil.rmtree(tmp)  # left over from an interrupted run
    kind = archive_kind(archive)
    opener = zipfile.ZipFile if kind == "zip" else tarfile.open
    try:
        with opener(archive) as ar:
            members = list((_zip_members if kind == "zip" else _tar_members)(archive, ar))  # validate all first
            tmp.mkdir(parents=True)
            base = tmp.resolve()
            for rel, is_dir, info in tqdm(members, desc=f"extracting {archive.name}", unit="file",
                                          disable=not progress, leave=False):
                # __MACOSX/ holds macOS resource forks (._name.png), never data.
                if str(rel) == "." or rel.parts[0] == "__MACOSX" or (
                        keep is not None and not keep(str(rel) + ("/" if is_dir else ""))):
                    continue
                target = tmp.joinpath(*rel.parts)
                # Defence in depth: the checks above already exclude any escape.
                if not target.resolve().is_relative_to(base):
                    raise UnsafeArchive(f"{archive.name}: member escapes the destination: {rel}")
                if is_dir:
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                src = ar.open(info) if kind == "zip" else ar.extractfile(info)
                with src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise UserError(f"{archive}: damaged archive ({exc}); delete it and run again") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(tmp, dest)
    return dest
