"""Fetch the files a recipe needs: resumable HTTP(S) with retries, Google Drive, Hugging Face.

A file is used only after its size and sha256 (where the recipe knows them) match; a file that
fails is deleted and named in the error. ``mirror`` fetches every file as <mirror>/<file name>;
``from_dir`` takes files the user downloaded by hand (same names) and touches no network.
Partial downloads live next to the final name as ``<name>.part`` and are resumed with an HTTP
Range request, so an interrupted run loses nothing already transferred.
"""

from __future__ import annotations

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
from .sources.base import Candidate, NeededFile

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
    #: How to supply a file by hand when every source fails (the caller's own option).
    manual_hint: str = "Download it by hand and pass its folder with --from-dir"


class DownloadError(Exception):
    """One candidate failed (the next one is tried)."""


class VerificationError(DownloadError):
    """The file arrived but its size or sha256 is wrong: it is deleted, never resumed or used."""


class _Incomplete(Exception):
    """The connection ended before the announced length: resume with a Range request."""


# ---------------------------------------------------------------------------------- verification

def verify(path: Path, f: NeededFile) -> str:
    """Check size and sha256 where known; returns the sha256. Raises DownloadError naming the file."""
    size = path.stat().st_size
    if f.size is not None and size != f.size:
        raise VerificationError(f"{f.name}: size {size} bytes, expected {f.size}")
    digest = sha256_file(path)
    if f.sha256 is not None and digest != f.sha256.lower():
        raise VerificationError(f"{f.name}: sha256 mismatch: got {digest}, expected {f.sha256.lower()}")
    return digest


def _stamp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.verified.json")


def _verified_before(path: Path, f: NeededFile) -> bool:
    """True when ``path`` was verified against the same expectations and has not changed since."""
    stamp = _stamp_path(path)
    if not (path.exists() and stamp.exists()):
        return False
    try:
        info = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return False
    st = path.stat()
    return info == {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "expected_size": f.size,
                    "expected_sha256": f.sha256, "sha256": info.get("sha256")}


def _stamp(path: Path, f: NeededFile, digest: str) -> None:
    st = path.stat()
    atomic_write_text(_stamp_path(path), json.dumps({
        "size": st.st_size, "mtime_ns": st.st_mtime_ns, "expected_size": f.size,
        "expected_sha256": f.sha256, "sha256": digest}))


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
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants, hf_hub_download

    repo_id, _, filename = where.partition(":")
    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        # Checked first because the hub client would spend a minute on its own retries.
        raise DownloadError(f"{label}: cannot resolve {host} (offline?)") from None
    try:
        got = hf_hub_download(repo_id, filename, repo_type=repo_type, cache_dir=str(cfg.cache_dir / ".hf"))
    except Exception as exc:  # noqa: BLE001 -- the hub raises many types (offline, 404, auth)
        raise DownloadError(f"{label}: Hugging Face {repo_id}/{filename}: {type(exc).__name__}: {exc}") from None
    shutil.copyfile(got, dest)


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
    else:
        raise DownloadError(f"{f.name}: unknown candidate kind {c.kind!r}")


@dataclass(frozen=True)
class Fetched:
    path: Path
    sha256: str
    size: int
    origin: str  # "from-dir", "cache" or the candidate it came from


def fetch(f: NeededFile, cfg: DownloadConfig) -> Fetched:
    """Return a verified local copy of ``f``, downloading it if needed.

    Raises UserError naming the file when no candidate yields a file that verifies.
    """
    if cfg.from_dir is not None:
        path = Path(cfg.from_dir) / f.name
        if not path.is_file():
            raise UserError(f"--from-dir: {f.name} not found in {cfg.from_dir}")
        try:
            digest = verify(path, f)
        except DownloadError as exc:
            raise UserError(f"--from-dir: {path} failed verification: {exc}") from None
        return Fetched(path, digest, path.stat().st_size, "from-dir")

    cfg.cache_dir.mkdir(parents=True, exist_ok=True)
    dest = cfg.cache_dir / f.name
    if _verified_before(dest, f):
        return Fetched(dest, json.loads(_stamp_path(dest).read_text())["sha256"], dest.stat().st_size, "cache")
    if dest.exists():
        try:
            digest = verify(dest, f)
            _stamp(dest, f, digest)
            return Fetched(dest, digest, dest.stat().st_size, "cache")
        except DownloadError:
            dest.unlink()  # a file that fails is never used

    candidates = (Candidate("url", cfg.mirror.rstrip("/") + "/" + quote(f.name)),) if cfg.mirror else f.candidates
    part = dest.with_name(dest.name + ".part")
    errors = []
    session = _session()
    origin = part.with_name(part.name + ".from")
    for c in candidates:
        here = f"{c.kind} {c.where}"
        # A partial file is resumed only from the place it came from.
        if part.exists() and (not origin.exists() or origin.read_text() != here):
            part.unlink()
        atomic_write_text(origin, here)
        try:
            _fetch_candidate(c, f, part, cfg, session)
            digest = verify(part, f)
        except DownloadError as exc:
            errors.append(f"[{c.kind} {c.where}] {exc}")
            # A file that failed verification is never resumed or used; a transfer that failed
            # midway is kept, so the next run resumes it with a Range request.
            if isinstance(exc, VerificationError):
                part.unlink(missing_ok=True)
            if not part.exists():
                origin.unlink(missing_ok=True)
            continue
        os.replace(part, dest)
        origin.unlink(missing_ok=True)
        _stamp(dest, f, digest)
        return Fetched(dest, digest, dest.stat().st_size, here)
    raise UserError(f"could not obtain {f.name}: " + "; ".join(errors)
                    + (f". {cfg.manual_hint}" if cfg.manual_hint else ""))
