"""Fetch the files a recipe needs: resumable HTTP(S) with retries, Google Drive, Hugging Face.

A file is used only after its size and sha256 (where the recipe knows them) match; a file that
fails is deleted and named in the error. ``mirror`` fetches every file as <mirror>/<file name>;
``from_dir`` takes files the user downloaded by hand (same names) and touches no network.
Partial downloads live next to the final name as ``<name>.part`` and are resumed with an HTTP
Range request, so an interrupted run loses nothing already transferred.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote, urljoin

from tqdm import tqdm

from .errors import UserError
from .io import atomic_write_text, sha256_file
from .sources.base import ARCHIVE_SUFFIXES, Candidate, NeededFile

DRIVE_URL = "https://drive.usercontent.google.com/download"


@dataclass(frozen=True)
class DownloadConfig:
    cache_dir: Path  # where downloads are stored (<root>/.downloads by default)
    mirror: str | None = None
    from_dir: Path | None = None
    retries: int = 5
    backoff_s: float = 2.0  # first wait; doubles after every failed attempt
    timeout_s: float = 60.0
    chunk: int = 1 << 16  # small enough that a dropped connection loses little
    progress: bool = True
    drive_url: str = DRIVE_URL  # a test points this at a loopback server
    force: bool = False  # re-validate cached downloads instead of trusting their stamps
    #: How to supply a file by hand when every source fails, in the caller's own options
    #: (None: the dataset builder's --from-dir instruction; "": no hint).
    manual_hint: str | None = None


class DownloadError(Exception):
    """One candidate failed (the next one is tried)."""


class VerificationError(DownloadError):
    """The file arrived but is not the file (size, digest, a web page, an archive that does not
    open): it is deleted, never resumed or used."""


class _Incomplete(Exception):
    """The connection ended before the announced length: resume with a Range request."""


# ---------------------------------------------------------------------------------- verification

STAMP_VERSION = 2  # stamps written before downloads were opened as archives are re-checked


def digests_of(path: Path, md5: bool = False, chunk: int = 1 << 20) -> dict[str, str]:
    """sha256 (and md5 when asked) of a file, in one pass."""
    hashes = {"sha256": hashlib.sha256(), **({"md5": hashlib.md5(usedforsecurity=False)} if md5 else {})}
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            for h in hashes.values():
                h.update(block)
    return {k: h.hexdigest() for k, h in hashes.items()}


def looks_like_html(path: Path) -> bool:
    """True when the file starts like a web page (an error, login or quota page sent instead)."""
    with open(path, "rb") as fh:
        head = fh.read(1024).lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<!doctype html", b"<html", b"<head", b"<?xml")) or b"<html" in head[:512]


def verify(path: Path, f: NeededFile) -> str:
    """Validate a file before it is used: size and digests where known, not an HTML page, and an
    archive must open (a complete central directory / every member readable). Returns the
    sha256; raises VerificationError with the expected and actual values."""
    size = path.stat().st_size
    if f.size is not None and size != f.size:
        raise VerificationError(f"{f.name}: size {size} bytes, expected {f.size}")
    got = digests_of(path, md5="md5" in f.digests)
    for algo, want in f.digests.items():
        if got[algo] != want:
            raise VerificationError(f"{f.name}: {algo} mismatch: got {got[algo]}, expected {want}")
    if not f.name.lower().endswith((".html", ".htm")) and looks_like_html(path):
        raise VerificationError(f"{f.name}: the server sent a web page ({size} bytes of HTML: an error, login or "
                                "quota page), not the file")
    if f.is_archive:
        from .extract import ArchiveProblem, check_archive

        try:
            # An archive whose published digest matched is what was published; the cheap structural
            # check still runs, the full decompression of a .tar.gz only when nothing vouches for it.
            check_archive(path, deep=not f.digests, label=f.name)
        except ArchiveProblem as exc:
            raise VerificationError(str(exc)) from None
    return got["sha256"]


def _stamp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.verified.json")


def _expectation(f: NeededFile) -> dict:
    return {"expected_size": f.size, "expected": f.digests, "checks": STAMP_VERSION}


def _folder_listing(path: Path) -> tuple[int, int, str]:
    """(files, bytes, sha256 of the sorted listing of relative names and sizes) of a folder."""
    entries = sorted((p.relative_to(path).as_posix(), p.stat().st_size) for p in path.rglob("*")
                     if p.is_file() and not p.name.startswith("."))
    digest = hashlib.sha256("\n".join(f"{n}\t{s}" for n, s in entries).encode()).hexdigest()
    return len(entries), sum(s for _, s in entries), digest


def _verified_before(path: Path, f: NeededFile) -> str | None:
    """The recorded sha256 when ``path`` was validated against the same expectations and has not
    changed since; None otherwise."""
    stamp = _stamp_path(path)
    if not (path.exists() and stamp.exists()):
        return None
    try:
        info = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return None
    if path.is_dir():
        n, total, digest = _folder_listing(path)
        now = {"files": n, "bytes": total, "sha256": f"folder:{digest}"}
    else:
        st = path.stat()
        now = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": info.get("sha256")}
    return info["sha256"] if info == {**now, **_expectation(f)} else None


def _stamp(path: Path, f: NeededFile, digest: str) -> None:
    if path.is_dir():
        n, total, _ = _folder_listing(path)
        info = {"files": n, "bytes": total, "sha256": digest}
    else:
        st = path.stat()
        info = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
    atomic_write_text(_stamp_path(path), json.dumps({**info, **_expectation(f)}))


def forget(path: Path) -> None:
    """Delete a cached download (file or folder) and its stamp: the next run fetches it again."""
    _stamp_path(path).unlink(missing_ok=True)
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def verify_folder(path: Path, f: NeededFile) -> str:
    """A folder is accepted when it holds files; its digest is that of its listing."""
    n, _, digest = _folder_listing(path)
    if n == 0:
        raise VerificationError(f"{f.name}: the folder {path} holds no files")
    return f"folder:{digest}"


# ------------------------------------------------------------------------------------------ HTTP

def _session():
    import requests

    s = requests.Session()
    s.headers["User-Agent"] = "daclip-toolkit-builder/0.1"
    return s


def _total_from(resp, have: int) -> int | None:
    cr = resp.headers.get("Content-Range", "")
    if resp.status_code == 206 and "/" in cr and not cr.endswith("/*"):
        return int(cr.rsplit("/", 1)[1])
    cl = resp.headers.get("Content-Length")
    return (int(cl) + (have if resp.status_code == 206 else 0)) if cl is not None else None


def _http_to_part(session, url: str, params: dict | None, part: Path, cfg: DownloadConfig, label: str) -> None:
    """Download ``url`` into ``part``, resuming what is there; retries with exponential backoff."""
    import requests

    attempt = 0
    while True:
        have = part.stat().st_size if part.exists() else 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            with session.get(url, params=params, headers=headers, stream=True, timeout=cfg.timeout_s) as r:
                if r.status_code == 416 and have:
                    return  # the part already holds the whole file; verification decides
                if r.status_code >= 400:
                    if r.status_code in (408, 429) or r.status_code >= 500:
                        raise _Incomplete(f"HTTP {r.status_code}")
                    raise DownloadError(f"{label}: HTTP {r.status_code} from {r.url}")
                ctype = r.headers.get("Content-Type", "").split(";")[0].strip().lower()
                if ctype in ("text/html", "application/xhtml+xml") and not label.lower().endswith((".html", ".htm")):
                    raise VerificationError(f"{label}: {r.url} answered with a web page (Content-Type {ctype}: "
                                            "an error, login or quota page), not the file")
                if have and r.status_code != 206:
                    have = 0  # server ignored the Range header: start over
                total = _total_from(r, have)
                with open(part, "ab" if have else "wb") as fh, tqdm(
                        total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                        desc=label, disable=not cfg.progress, leave=False) as bar:
                    for block in r.iter_content(cfg.chunk):
                        fh.write(block)
                        bar.update(len(block))
                got = part.stat().st_size
                if total is not None and got < total:
                    raise _Incomplete(f"connection closed at {got} of {total} bytes")
                return
        except (_Incomplete, requests.ConnectionError, requests.Timeout,
                requests.exceptions.ChunkedEncodingError) as exc:
            if _unresolvable(exc):
                # An unknown host (or no DNS at all, offline) will not resolve on a retry.
                raise DownloadError(f"{label}: cannot resolve the host of {url} (offline?)") from None
            attempt += 1
            if attempt > cfg.retries:
                raise DownloadError(f"{label}: gave up after {cfg.retries} retries ({exc})") from None
            wait = cfg.backoff_s * 2 ** (attempt - 1)
            if cfg.progress:
                tqdm.write(f"{label}: {exc}; retry {attempt}/{cfg.retries} in {wait:.1f}s (resuming)")
            time.sleep(wait)
        except requests.RequestException as exc:  # bad URL, redirect loop, ...: a retry cannot help
            raise DownloadError(f"{label}: {type(exc).__name__}: {exc}") from None


def _unresolvable(exc: BaseException) -> bool:
    from urllib3.exceptions import NameResolutionError

    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, NameResolutionError)


# ---------------------------------------------------------------------------------- Google Drive

class _FormParser(HTMLParser):
    """Collects the download form of Drive's "can't scan this file for viruses" page."""

    def __init__(self):
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self._in_form = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and (a.get("id") == "download-form" or self.action is None):
            self.action, self._in_form = a.get("action"), True
        elif tag == "input" and self._in_form and a.get("name"):
            self.fields[a["name"]] = a.get("value") or ""

    def handle_endtag(self, tag):
        if tag == "form":
            self._in_form = False


def drive_confirm_target(html: str, page_url: str) -> tuple[str, dict] | None:
    """(url, params) of the confirmation form on a Drive warning page, or None if there is none."""
    p = _FormParser()
    p.feed(html)
    if not p.action or "id" not in p.fields:
        return None
    return urljoin(page_url, p.action), p.fields


def _resolve_drive(session, file_id: str, cfg: DownloadConfig, label: str) -> tuple[str, dict]:
    """Follow Drive's large-file confirmation: returns the (url, params) that stream the file."""
    import requests

    params = {"id": file_id, "export": "download"}
    for attempt in range(cfg.retries + 1):
        try:
            with session.get(cfg.drive_url, params=params, stream=True, timeout=cfg.timeout_s) as r:
                if r.status_code >= 400:
                    raise DownloadError(f"{label}: Google Drive answered HTTP {r.status_code} for id {file_id}")
                if "text/html" not in r.headers.get("Content-Type", ""):
                    return cfg.drive_url, params  # small file: served directly
                html, page_url = r.text, r.url
                # Older Drive front ends set the token as a cookie instead of a form field.
                token = next((v for k, v in r.cookies.items() if k.startswith("download_warning")), None)
            break
        except (requests.ConnectionError, requests.Timeout) as exc:
            if _unresolvable(exc):
                raise DownloadError(f"{label}: cannot resolve the host of {cfg.drive_url} (offline?)") from None
            if attempt == cfg.retries:
                raise DownloadError(f"{label}: Google Drive unreachable ({type(exc).__name__}: {exc})") from None
            time.sleep(cfg.backoff_s * 2 ** attempt)
        except requests.RequestException as exc:
            raise DownloadError(f"{label}: Google Drive: {type(exc).__name__}: {exc}") from None
    target = drive_confirm_target(html, page_url)
    if target is None:
        if token:
            return cfg.drive_url, {**params, "confirm": token}
        raise DownloadError(f"{label}: Google Drive sent a page without a download form for id {file_id} "
                            "(quota exceeded or not shared); download it by hand and use --from-dir")
    return target


# ----------------------------------------------------------------------------------- Hugging Face

def _hf_download(where: str, dest: Path, cfg: DownloadConfig, label: str, repo_type: str = "dataset") -> None:
    from huggingface_hub import hf_hub_download

    repo_id, _, filename = where.partition(":")
    _hub_reachable(label)
    try:
        got = hf_hub_download(repo_id, filename, repo_type=repo_type, cache_dir=str(cfg.cache_dir / ".hf"))
    except Exception as exc:  # noqa: BLE001 -- the hub raises many types (offline, 404, auth)
        raise DownloadError(f"{label}: Hugging Face {repo_id}/{filename}: {type(exc).__name__}: {exc}") from None
    shutil.copyfile(got, dest)


def _hf_folder_download(c: Candidate, dest: Path, cfg: DownloadConfig, label: str) -> None:
    """A dataset repository (or the files of it matching ``c.patterns``) as the folder ``dest``.

    Downloaded into a hidden staging folder (the hub client resumes it after an interruption) and
    renamed into place when complete, so ``dest`` never holds a partial snapshot.
    """
    from huggingface_hub import snapshot_download

    _hub_reachable(label)
    staging = dest.with_name(f".{dest.name}.hf-partial")
    try:
        snapshot_download(c.where, repo_type="dataset", local_dir=str(staging),
                          allow_patterns=list(c.patterns) or None)
    except Exception as exc:  # noqa: BLE001 -- the hub raises many types (offline, 404, auth)
        raise DownloadError(f"{label}: Hugging Face dataset {c.where}: {type(exc).__name__}: {exc}") from None
    shutil.rmtree(staging / ".cache", ignore_errors=True)  # the hub client's resume records
    if not any(p.is_file() for p in staging.rglob("*")):
        shutil.rmtree(staging, ignore_errors=True)
        raise VerificationError(f"{label}: Hugging Face dataset {c.where} has no files matching "
                                f"{', '.join(c.patterns) or 'anything'}")
    if dest.exists():
        forget(dest)
    os.replace(staging, dest)


def _hub_reachable(label: str) -> None:
    from .hub import hub_unreachable

    # Checked first because the hub client would spend a minute on its own retries.
    reason = hub_unreachable()
    if reason:
        raise DownloadError(f"{label}: {reason}")


# ------------------------------------------------------------------------------------------ main

def _fetch_candidate(c: Candidate, f: NeededFile, part: Path, cfg: DownloadConfig, session) -> None:
    if c.kind == "url":
        _http_to_part(session, c.where, None, part, cfg, f.name)
    elif c.kind == "gdrive":
        url, params = _resolve_drive(session, c.where, cfg, f.name)
        _http_to_part(session, url, params, part, cfg, f.name)
    elif c.kind == "hf":
        _hf_download(c.where, part, cfg, f.name)
    elif c.kind == "hf-model":
        _hf_download(c.where, part, cfg, f.name, repo_type="model")
    elif c.kind == "page":
        raise DownloadError(f"{f.name}: {c.where} cannot be fetched automatically; download it there by hand")
    elif c.kind == "gdrive-folder":
        raise DownloadError(f"{f.name}: Google Drive folder {c.where} cannot be fetched automatically; "
                            f"download it by hand (https://drive.google.com/drive/folders/{c.where})")
    else:
        raise DownloadError(f"{f.name}: unknown candidate kind {c.kind!r}")


@dataclass(frozen=True)
class Fetched:
    path: Path  # a file, or a folder for a folder-kind NeededFile obtained as a folder
    sha256: str  # of the file; "folder:<sha256 of its listing>" for a folder
    size: int
    origin: str  # "from-dir", "cache" or the candidate it came from
    cached: bool = False  # True: the file lives in the download cache (it may be deleted and re-fetched)


def _size(path: Path) -> int:
    return _folder_listing(path)[1] if path.is_dir() else path.stat().st_size


FROM_DIR_DEPTH = 6  # how deep --from-dir looks for a file or folder under an accepted name


def locate_in_dir(f: NeededFile, base: Path) -> Path | None:
    """``f`` in ``base``: its file, its folder (folder kinds) or, for files with aliases, any
    accepted archive or extracted folder, shallowest first, at most FROM_DIR_DEPTH levels down."""
    base = Path(base)
    if (base / f.archive_name).is_file():
        return base / f.archive_name
    if f.folder and (base / f.name).is_dir():
        return base / f.name
    if not f.aliases:
        return None
    wanted = {n.lower(): i for i, n in enumerate(f.accepted)}
    hits = []
    for dirpath, dirnames, filenames in os.walk(base):
        d = Path(dirpath)
        depth = len(d.relative_to(base).parts)
        dirnames[:] = sorted(n for n in dirnames if not n.startswith(".") and n != "__MACOSX")
        for n in [*dirnames, *filenames]:
            if n.lower() in wanted:
                p = d / n
                if p.is_dir() or n.lower().endswith(ARCHIVE_SUFFIXES):
                    hits.append((depth, wanted[n.lower()], str(p), p))
        if depth + 1 >= FROM_DIR_DEPTH:
            dirnames[:] = []
    return min(hits)[3] if hits else None


def accepted_text(f: NeededFile) -> str:
    """The names --from-dir accepts for ``f``, for error messages."""
    names = [f"{n}/" if not n.lower().endswith(ARCHIVE_SUFFIXES) else n for n in f.accepted]
    return " or ".join(names) + (" (a file, or an extracted folder, anywhere below it)" if f.aliases else "")


def _from_dir(f: NeededFile, cfg: DownloadConfig) -> Fetched:
    base = Path(cfg.from_dir)
    path = locate_in_dir(f, base)
    if path is not None and path.is_dir():
        try:
            return Fetched(path, verify_folder(path, f), _size(path), "from-dir")
        except DownloadError as exc:
            raise UserError(f"--from-dir: {exc}") from None
    if path is None:
        what = (accepted_text(f) if f.aliases else
                f"{f.name}/ (a folder) or {f.archive_name}" if f.folder else f.name)
        raise UserError(f"--from-dir: {what} not found in {base}" + (f" (expected: {f.expect})" if f.expect else ""))
    try:
        # Published sizes and digests are those of f.archive_name; a copy under another accepted
        # name need not be that file, so only its sha256 is measured (and reported).
        digest = verify(path, f) if path.name == f.archive_name else sha256_file(path)
    except DownloadError as exc:
        raise UserError(f"--from-dir: {path} failed verification: {exc}; replace it with a good copy") from None
    return Fetched(path, digest, path.stat().st_size, "from-dir")


def _cached(f: NeededFile, cfg: DownloadConfig) -> Fetched | None:
    """A cached copy that was validated before (or validates now); a bad one is deleted."""
    options = [(cfg.cache_dir / f.name, True)] if f.folder else []
    for dest, is_folder in options + [(cfg.cache_dir / f.archive_name, False)]:
        if not (dest.is_dir() if is_folder else dest.is_file()):
            continue
        digest = None if cfg.force else _verified_before(dest, f)
        if digest is None:
            try:
                digest = verify_folder(dest, f) if dest.is_dir() else verify(dest, f)
            except DownloadError as exc:
                if cfg.progress:
                    tqdm.write(f"{exc}; the cached copy {dest} is deleted and fetched again")
                forget(dest)  # a file that fails is never used
                continue
            _stamp(dest, f, digest)
        return Fetched(dest, digest, _size(dest), "cache", cached=True)
    return None


def _ordered(candidates) -> list[Candidate]:
    """Live candidates first, then those reported dead (kept as a last resort)."""
    return [c for c in candidates if not c.dead] + [c for c in candidates if c.dead]


def fetch(f: NeededFile, cfg: DownloadConfig) -> Fetched:
    """Return a validated local copy of ``f`` (a file, or a folder for folder-kind files),
    downloading it if needed. Nothing is recorded as good before :func:`verify` passed.

    Raises UserError naming the file when no candidate yields a copy that validates.
    """
    if cfg.from_dir is not None:
        return _from_dir(f, cfg)
    cfg.cache_dir.mkdir(parents=True, exist_ok=True)
    got = _cached(f, cfg)
    if got is not None:
        return got

    name = f.archive_name
    candidates = (Candidate("url", cfg.mirror.rstrip("/") + "/" + quote(name)),) if cfg.mirror else _ordered(f.candidates)
    dest = cfg.cache_dir / name
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    errors = []
    session = _session()
    origin = part.with_name(part.name + ".from")
    for c in candidates:
        here = f"{c.kind} {c.where}"
        if c.kind == "hf-folder":
            folder = cfg.cache_dir / f.name
            try:
                _hf_folder_download(c, folder, cfg, f.name)
                digest = verify_folder(folder, f)
            except DownloadError as exc:
                errors.append(f"[{here}] {exc}")
                continue
            _stamp(folder, f, digest)
            return Fetched(folder, digest, _size(folder), here, cached=True)
        # A partial file is resumed only from the place it came from.
        if part.exists() and (not origin.exists() or origin.read_text() != here):
            part.unlink()
        atomic_write_text(origin, here)
        try:
            _fetch_candidate(c, f, part, cfg, session)
            digest = verify(part, f)
        except DownloadError as exc:
            errors.append(f"[{here}{' (reported dead)' if c.dead else ''}] {exc}")
            # A file that failed validation is never resumed or used; a transfer that failed
            # midway is kept, so the next run resumes it with a Range request.
            if isinstance(exc, VerificationError):
                part.unlink(missing_ok=True)
            if not part.exists():
                origin.unlink(missing_ok=True)
            continue
        os.replace(part, dest)
        origin.unlink(missing_ok=True)
        _stamp(dest, f, digest)
        return Fetched(dest, digest, dest.stat().st_size, here, cached=True)
    hint = cfg.manual_hint
    if hint is None:
        hand = f"{f.name}/ (a folder) or {f.archive_name}" if f.folder else f.name
        hint = (f"Download it by hand and put it in a folder as {hand}" + (f" ({f.expect})" if f.expect else "")
                + ", then pass that folder with --from-dir")
    raise UserError(f"could not obtain {f.name}: " + "; ".join(errors) + (f". {hint}" if hint else ""))
