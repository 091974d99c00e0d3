"""Is the Hugging Face Hub reachable? Asked once, in a second or two, before a hub client would
spend a minute in retries (and print the same failure five times) on a machine without internet.

Commands that load a hub model (captioning's BLIP, train_clip's pretrained CLIP) first look in
the local cache; only when the files are missing do they ask this, and they fail with one line
when the answer is no. The downloader asks it before every hub file or folder it fetches.
"""

from __future__ import annotations

import os
import socket
import urllib.request
from urllib.parse import urlparse

_TRUE = ("1", "true", "yes", "on")
#: Any of these set to 1/true/yes/on turns every download off: hub models and method weights.
OFFLINE_ENVS = ("DACLIP_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def hub_endpoint() -> str:
    """The hub's base URL (``HF_ENDPOINT``, as huggingface_hub reads it)."""
    try:
        from huggingface_hub import constants

        return constants.ENDPOINT
    except ImportError:  # pragma: no cover - huggingface_hub is a dependency
        return os.environ.get("HF_ENDPOINT", "https://huggingface.co")


def offline() -> str | None:
    """The offline variable of OFFLINE_ENVS that is set, or None: the one offline switch."""
    return next((v for v in OFFLINE_ENVS if os.environ.get(v, "").strip().lower() in _TRUE), None)


def hub_unreachable(timeout: float = 2.0) -> str | None:
    """None when a TCP connection to the hub (or to the proxy that would carry it) opens within
    ``timeout`` seconds; otherwise why not, in a few words."""
    var = offline()
    if var:
        return f"{var} is set"
    url = hub_endpoint()
    parsed = urlparse(url)
    host = parsed.hostname or "huggingface.co"
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    proxy = urllib.request.getproxies().get(parsed.scheme or "https")
    if proxy and not urllib.request.proxy_bypass(host):
        p = urlparse(proxy if "://" in proxy else f"http://{proxy}")
        host, port = p.hostname or host, p.port or 8080
        url = f"{url} through the proxy {proxy}"
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except socket.gaierror:
        return f"cannot resolve {host} (offline?)"
    except socket.timeout:
        return f"no answer from {url} within {timeout:g} s"
    except OSError as exc:
        return f"cannot connect to {url} ({exc.strerror or exc})"


class HubUnreachable(OSError):
    """The files are not cached and the hub cannot be reached (the message says why)."""


def from_pretrained(cls, ref: str, **kw):
    """``cls.from_pretrained(ref)`` (a transformers class), cache first: no network round trip
    (and no retry delay offline) when the files are here; HubUnreachable in a second or two
    when they are not and the hub cannot be reached; the offline variables are obeyed."""
    try:
        return cls.from_pretrained(ref, local_files_only=True, **kw)
    except OSError:
        if offline():
            raise
    reason = hub_unreachable()
    if reason:
        raise HubUnreachable(reason)
    return cls.from_pretrained(ref, **kw)
