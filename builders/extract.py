"""Safe, bounded extraction of zip and tar(.gz) archives.

Every member is checked before anything is written: absolute paths, ``..`` components, links
(symbolic or hard), device/FIFO entries, names too long for the file system, a member that is
both a file and a folder, a file that appears twice, and encrypted zip members make the whole
archive refused with an error naming the member. The total extracted size is bounded (an
absolute limit and a ratio to the archive's own size, both configurable), checked against the
members' declared sizes before writing and against the bytes really written while writing, so
a small archive that expands to gigabytes stops before it fills the disk. Files are written by
this module (never ``extractall``) into a temporary folder that is renamed into place when
complete, so a killed run leaves no half-extracted folder behind and a re-run starts over.
"""

from __future__ import annotations

import gzip
import lzma
import os
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from .errors import UserError

NAME_MAX = 255  # bytes per path component on Linux, macOS and Windows file systems
PATH_MAX = 4000  # bytes for a member's whole relative path (Linux allows 4096 with the destination)
_DAMAGED = (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError, OSError)


class ArchiveProblem(UserError):
    """The archive cannot be used as it is (damaged, truncated, refused member, over a limit)."""


class UnsafeArchive(ArchiveProblem):
    """The archive holds a member that could write outside the destination."""


class EncryptedArchive(ArchiveProblem):
    """The archive's members are password-protected."""


class DamagedArchive(ArchiveProblem):
    """The archive is damaged or truncated (a bad download): fetching it again may help."""


@dataclass(frozen=True)
class ExtractLimits:
    """Bounds on what one archive may expand to: ``max_bytes`` in total, and at most ``max_ratio``
    times the archive's own size (image archives expand about 1:1; a zip bomb by 1000:1)."""

    max_bytes: int = 500 << 30
    max_ratio: float = 100.0


DEFAULT_LIMITS = ExtractLimits()


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def parse_size(text: str) -> int:
    """'500G', '3.5GiB', '200M', '1024' -> bytes (K/M/G/T are powers of 1024)."""
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(t[-1:], 1)
    num = t[:-1] if t[-1:] in "KMGT" and t[-1:] else t
    try:
        value = float(num)
    except ValueError:
        raise UserError(f"not a size: {text!r} (use e.g. 500G, 200M or a number of bytes)") from None
    if value <= 0:
        raise UserError(f"a size must be positive, got {text!r}")
    return int(value * mult)


def check_member_name(archive: Path, name: str) -> PurePosixPath:
    """The member's relative path, or UnsafeArchive naming it."""
    norm = name.replace("\\", "/")
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":"):
        raise UnsafeArchive(f"{archive.name}: refusing member with an absolute path: {name!r}")
    parts = [p for p in norm.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchive(f"{archive.name}: refusing member with '..' in its path: {name!r}")
    if any("\x00" in p for p in parts):
        raise UnsafeArchive(f"{archive.name}: refusing member with a NUL byte in its name: {name!r}")
    return PurePosixPath(*parts) if parts else PurePosixPath(".")


def _short(name: str, n: int = 80) -> str:
    return name if len(name) <= n else f"{name[:40]}...{name[-30:]} ({len(name)} characters)"


def _zip_members(archive: Path, zf: zipfile.ZipFile) -> Iterator[tuple[PurePosixPath, bool, zipfile.ZipInfo, int]]:
    for info in zf.infolist():
        rel = check_member_name(archive, info.filename)
        ftype = stat.S_IFMT(info.external_attr >> 16)
        # Unix zips store the file type in the high bits; 0 (DOS-made zips, Python's writestr)
        # means a plain file or folder.
        if ftype and ftype not in (stat.S_IFREG, stat.S_IFDIR):
            kind = "symlink" if ftype == stat.S_IFLNK else "special file"
            raise UnsafeArchive(f"{archive.name}: refusing {kind} member: {info.filename!r}")
        yield rel, info.is_dir(), info, info.file_size


def _tar_members(archive: Path, tf: tarfile.TarFile) -> Iterator[tuple[PurePosixPath, bool, tarfile.TarInfo, int]]:
    for info in tf.getmembers():
        rel = check_member_name(archive, info.name)
        if info.issym() or info.islnk():
            raise UnsafeArchive(f"{archive.name}: refusing link member: {info.name!r} -> {info.linkname!r}")
        if not (info.isreg() or info.isdir()):
            raise UnsafeArchive(f"{archive.name}: refusing device/special member: {info.name!r}")
        yield rel, info.isdir(), info, info.size


def archive_kind(path: Path, label: str | None = None) -> str:
    """"zip" or "tar" (plain or compressed), from the file's first bytes; ArchiveProblem otherwise.

    A file that starts like a zip but has no central directory is a truncated download, and is
    called that (rather than "not an archive")."""
    name = label or path.name
    with open(path, "rb") as fh:
        head = fh.read(512)
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08"):
        if not zipfile.is_zipfile(path):
            raise DamagedArchive(f"{name}: damaged or truncated zip archive (its central directory, "
                                 "at the end of the file, is missing: the download is incomplete)")
        return "zip"
    if head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00" or head[257:262] == b"ustar":
        return "tar"
    if zipfile.is_zipfile(path):  # a zip with something prepended (self-extracting)
        return "zip"
    raise DamagedArchive(f"{name}: not a zip or tar archive ({path.stat().st_size} bytes)")


def _open(path: Path, kind: str):
    return zipfile.ZipFile(path) if kind == "zip" else tarfile.open(path)


def check_archive(path: Path, deep: bool = True, label: str | None = None) -> None:
    """Raise ArchiveProblem unless the archive opens and lists completely.

    zip: the central directory is read and every member's data lies inside the file. Plain tar:
    every header is read and the last member's data ends inside the file. Compressed tar: with
    ``deep`` the whole stream is decompressed (the only way to find a truncated one).
    """
    path = Path(path)
    kind = archive_kind(path, label)
    size = path.stat().st_size
    name = label or path.name
    try:
        if kind == "zip":
            with zipfile.ZipFile(path) as zf:
                for info in zf.infolist():
                    if info.header_offset + info.compress_size > size:
                        raise DamagedArchive(f"{name}: damaged or truncated zip archive: member "
                                             f"{_short(info.filename)!r} runs past the end of the file")
            return
        with open(path, "rb") as fh:
            head = fh.read(6)
        compressed = head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head == b"\xfd7zXZ\x00"
        if compressed and not deep:
            return
        with tarfile.open(path) as tf:
            last = None
            for last in tf:
                pass
            if compressed:
                tf.fileobj.read()  # through the end of the stream: a truncated gzip raises here
            elif last is not None and last.offset_data + last.size > size:
                raise DamagedArchive(f"{name}: damaged or truncated tar archive: member "
                                     f"{_short(last.name)!r} runs past the end of the file")
    except ArchiveProblem:
        raise
    except _DAMAGED as exc:
        raise DamagedArchive(f"{name}: damaged or truncated archive ({exc})") from None


def _plan(archive: Path, members, keep, limits: ExtractLimits) -> tuple[list, int, int]:
    """(members to write, their declared total, the byte budget), after every check that needs
    no writing."""
    budget = min(limits.max_bytes, int(limits.max_ratio * max(archive.stat().st_size, 1)))
    files: dict[PurePosixPath, str] = {}
    dirs: set[PurePosixPath] = set()
    chosen, total = [], 0
    for rel, is_dir, info, size in members:
        # __MACOSX/ holds macOS resource forks (._name.png), never data.
        if str(rel) == "." or rel.parts[0] == "__MACOSX" or (
                keep is not None and not keep(str(rel) + ("/" if is_dir else ""))):
            continue
        name = str(rel)
        long = next((p for p in rel.parts if len(p.encode("utf-8", "surrogateescape")) > NAME_MAX), None)
        if long is not None or len(name.encode("utf-8", "surrogateescape")) > PATH_MAX:
            raise ArchiveProblem(f"{archive.name}: member name too long for the file system "
                                 f"(over {NAME_MAX} bytes per folder or file name): {_short(name)!r}")
        if getattr(info, "flag_bits", 0) & 0x1:
            raise EncryptedArchive(f"{archive.name}: member {_short(name)!r} is password-protected "
                                   "(encrypted zip); it cannot be extracted without the password")
        parents = set(rel.parents) - {PurePosixPath(".")}
        clash = next((p for p in parents if p in files), None)
        if clash is not None or (is_dir and rel in files) or (not is_dir and rel in dirs):
            other = clash or rel
            raise ArchiveProblem(f"{archive.name}: {_short(str(other))!r} is both a file and a folder in the "
                                 f"archive (member {_short(name)!r}); it cannot be extracted")
        dirs |= parents
        if is_dir:
            dirs.add(rel)
        else:
            if rel in files:
                raise ArchiveProblem(f"{archive.name}: member {_short(name)!r} appears twice in the archive; "
                                     "which copy is meant is ambiguous, so the archive is refused")
            files[rel] = name
            total += size
            if total > budget:
                raise ArchiveProblem(
                    f"{archive.name}: member {_short(name)!r} brings the extracted size to {human_bytes(total)}, "
                    f"over the limit of {human_bytes(budget)} (--max-extract-size {human_bytes(limits.max_bytes)}, "
                    f"--max-extract-ratio {limits.max_ratio:g} x the archive's {human_bytes(archive.stat().st_size)}); "
                    "raise them if the archive is genuine")
        chosen.append((rel, is_dir, info, size))
    return chosen, total, budget


def _copy_bounded(src, out, archive: Path, name: str, declared: int, written: list, budget: int) -> None:
    """Copy one member, never more than it declared nor past the total budget."""
    left = declared
    while True:
        block = src.read(min(1 << 20, left + 1))
        if not block:
            return
        left -= len(block)
        written[0] += len(block)
        if left < 0 or written[0] > budget:
            raise ArchiveProblem(f"{archive.name}: member {_short(name)!r} expands past its declared size or "
                                 f"the limit of {human_bytes(budget)}; refusing it")
        out.write(block)


def safe_extract(archive: Path, dest: Path, keep: Callable[[str], bool] | None = None,
                 force: bool = False, progress: bool = False, limits: ExtractLimits = DEFAULT_LIMITS) -> Path:
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
    try:
        with _open(archive, kind) as ar:
            members, total, budget = _plan(archive, (_zip_members if kind == "zip" else _tar_members)(archive, ar),
                                           keep, limits)
            free = shutil.disk_usage(dest.parent if dest.parent.exists() else Path.cwd()).free
            if total > free:
                raise ArchiveProblem(f"{archive.name}: extracting needs {human_bytes(total)} but only "
                                     f"{human_bytes(free)} are free under {dest.parent}")
            tmp.mkdir(parents=True)
            base = tmp.resolve()
            written = [0]
            for rel, is_dir, info, size in tqdm(members, desc=f"extracting {archive.name}", unit="file",
                                                disable=not progress, leave=False):
                target = tmp.joinpath(*rel.parts)
                # Defence in depth: the checks above already exclude any escape.
                if not target.resolve().is_relative_to(base):
                    raise UnsafeArchive(f"{archive.name}: member escapes the destination: {rel}")
                try:
                    if is_dir:
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    src = ar.open(info) if kind == "zip" else ar.extractfile(info)
                    with src, open(target, "wb") as out:
                        _copy_bounded(src, out, archive, str(rel), size, written, budget)
                except (NotADirectoryError, IsADirectoryError, FileExistsError) as exc:
                    raise ArchiveProblem(f"{archive.name}: cannot write member {_short(str(rel))!r}: "
                                         f"{exc.strerror or exc}") from None
                except OSError as exc:
                    if isinstance(exc, (zlib.error, gzip.BadGzipFile)) or exc.errno is None:
                        raise
                    raise ArchiveProblem(f"{archive.name}: cannot write member {_short(str(rel))!r}: "
                                         f"{exc.strerror or exc}") from None
    except ArchiveProblem:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    except RuntimeError as exc:  # zipfile: "File ... is encrypted, password required for extraction"
        shutil.rmtree(tmp, ignore_errors=True)
        if "encrypted" in str(exc) or "password" in str(exc):
            raise EncryptedArchive(f"{archive.name}: password-protected (encrypted zip): {exc}") from None
        raise
    except _DAMAGED as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DamagedArchive(f"{archive.name}: damaged or truncated archive ({exc})") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(tmp, dest)
    return dest
