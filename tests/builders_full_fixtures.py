"""Tiny archives in each real source's internal layout, and a loopback HTTP server for them.

Every image is a flat colour that encodes a pair index k (three base-6 digits in R, G, B), so
a test can decode LQ and GT independently and prove they belong together. LQ images of real
pairs carry an extra dark corner (so LQ != GT) that the median-based decoder ignores.
"""

from __future__ import annotations

import hashlib
import io
import re
import tarfile
import threading
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import numpy as np
from PIL import Image

SIDE = 16
_STEP, _BASE = 35, 40


def colour(k: int) -> tuple[int, int, int]:
    assert 0 <= k < 216
    return (_BASE + (k % 6) * _STEP, _BASE + (k // 6 % 6) * _STEP, _BASE + (k // 36) * _STEP)


def decode(img: np.ndarray) -> int:
    med = np.median(img.reshape(-1, 3), axis=0)
    d = [int(round((v - _BASE) / _STEP)) for v in med]
    return d[0] + 6 * d[1] + 36 * d[2]


def image_bytes(k: int, fmt: str = "png", lq: bool = False, size: tuple[int, int] = (SIDE, SIDE)) -> bytes:
    arr = np.zeros((size[1], size[0], 3), np.uint8) + np.array(colour(k), np.uint8)
    if lq:
        arr[:4, :4] = 5
    buf = io.BytesIO()
    fmt = {"jpg": "JPEG", "png": "PNG", "bmp": "BMP"}[fmt]
    Image.fromarray(arr).save(buf, format=fmt, **({"quality": 98, "subsampling": 0} if fmt == "JPEG" else {}))
    return buf.getvalue()


def mask_bytes(i: int, side: int = 2 * SIDE) -> bytes:
    """Mask i: 255 keep, 0 hole on the two rows 2*(i % 16) and 2*(i % 16) + 1 (one row after resizing)."""
    m = np.full((side, side), 255, np.uint8)
    r = 2 * (i % (side // 2))
    m[r:r + 2] = 0
    buf = io.BytesIO()
    Image.fromarray(m).save(buf, format="PNG")
    return buf.getvalue()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def tar_bytes(members: dict[str, bytes], gz: bool) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@dataclass
class Fixtures:
    files: dict[str, bytes] = field(default_factory=dict)  # needed file name -> bytes
    expected: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (type, split, name) -> k
    failing: set = field(default_factory=set)  # ids that must be reported as failing
    unpaired: set = field(default_factory=set)  # file names that must be reported as unpaired
    synthetic: set = field(default_factory=set)  # types whose LQ is synthesised

    def counts(self) -> dict[tuple[str, str], int]:
        out: dict = {}
        for (t, s, _), _k in self.expected.items():
            out[(t, s)] = out.get((t, s), 0) + 1
        return out

    def write(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in self.files.items():
            (folder / name).write_bytes(data)
        return folder


class _Counter:
    def __init__(self):
        self.k = 0

    def __call__(self) -> int:
        self.k += 1
        return self.k


def make_fixtures() -> Fixtures:
    fx, nk = Fixtures(), _Counter()

    def real(members, task, split, name, lq_path, gt_path, fmt="png"):
        k = nk()
        members[lq_path] = image_bytes(k, fmt, lq=True)
        members[gt_path] = image_bytes(k, fmt)
        fx.expected[(task, split, name)] = k

    # GoPro: GOPRO_Large/{train,test}/<SEQ>/{blur,blur_gamma,sharp}/<frame>.png
    m: dict = {}
    for split_dir, split, seqs in (("train", "train", {"GOPR0372_07_00": 2, "GOPR0374_11_00": 1}),
                                   ("test", "val", {"GOPR0384_11_00": 2})):
        for seq, n in seqs.items():
            for f in range(1, n + 1):
                frame = f"{f:06d}"
                base = f"GOPRO_Large/{split_dir}/{seq}"
                real(m, "motion-blurry", split, f"{seq}_{frame}", f"{base}/blur/{frame}.png", f"{base}/sharp/{frame}.png")
                m[f"{base}/blur_gamma/{frame}.png"] = image_bytes(200, lq=True)  # must not be used
    # Incompressible padding makes the archive large enough to be cut mid-transfer by the server.
    m["GOPRO_Large/README.txt"] = np.random.default_rng(0).bytes(300_000)
    fx.files["GOPRO_Large.zip"] = zip_bytes(m)

    # RESIDE-6K/{train,test}/{hazy,GT}/<name>
    m = {}
    for split_dir, split, names in (("train", "train", ["1", "2", "3"]), ("test", "val", ["0001_0.8_0.2", "0002_0.9_0.1"])):
        for n in names:
            real(m, "hazy", split, n, f"RESIDE-6K/{split_dir}/hazy/{n}.png", f"RESIDE-6K/{split_dir}/GT/{n}.png")
    fx.files["RESIDE-6K.zip"] = zip_bytes(m)

    # DIV2K.tar + Flickr2K.tar: HR folders are GT for jpeg-compressed and noisy (train).
    def gt_only(members, split, name, path, fmt="png", tasks=("jpeg-compressed", "noisy")):
        k = nk()
        members[path] = image_bytes(k, fmt)
        for t in tasks:
            fx.expected[(t, split, name)] = k

    m = {}
    for n in ("0001", "0002"):
        gt_only(m, "train", n, f"DIV2K/DIV2K_train_HR/{n}.png")
    gt_only(m, "train", "0801", "DIV2K/DIV2K_valid_HR/0801.png")
    m["DIV2K/DIV2K_train_LR_bicubic/X2/0001x2.png"] = image_bytes(201)
    fx.files["DIV2K.tar"] = tar_bytes(m, gz=False)
    m = {}
    for n in ("000001", "000002"):
        gt_only(m, "train", n, f"Flickr2K/Flickr2K_HR/{n}.png")
    m["Flickr2K/Flickr2K_LR_bicubic/X2/000001x2.png"] = image_bytes(202)
    fx.files["Flickr2K.tar"] = tar_bytes(m, gz=False)

    # LIVE1: databaserelease2/refimgs/*.bmp (val of jpeg-compressed)
    m = {}
    for n in ("bikes", "buildings"):
        gt_only(m, "val", n, f"databaserelease2/refimgs/{n}.bmp", "bmp", tasks=("jpeg-compressed",))
    m["databaserelease2/jpeg/img1.bmp"] = image_bytes(203, "bmp")
    fx.files["databaserelease2.zip"] = zip_bytes(m)

    # CBSD68.tar.gz: CBSD68/original_png + noisy folders (val of noisy)
    m = {}
    for n in ("0000", "0001", "0002"):
        gt_only(m, "val", n, f"CBSD68/original_png/{n}.png", tasks=("noisy",))
    m["CBSD68/noisy50/0000.png"] = image_bytes(204)
    fx.files["CBSD68.tar.gz"] = tar_bytes(m, gz=True)

    # LOL: our485/{low,high}, eval15/{low,high}; one pair with different sizes must be reported.
    m = {}
    for folder, split, names in (("our485", "train", ["2", "5"]), ("eval15", "val", ["1", "22"])):
        for n in names:
            real(m, "low-light", split, n, f"LOLdataset/{folder}/low/{n}.png", f"LOLdataset/{folder}/high/{n}.png")
    m["LOLdataset/our485/low/7.png"] = image_bytes(50, lq=True)
    m["LOLdataset/our485/high/7.png"] = image_bytes(50, size=(SIDE + 4, SIDE))
    fx.failing.add("train/low-light/7")
    fx.files["LOLdataset.zip"] = zip_bytes(m)

    # RainDrop: {train,test_a,test_b}/{data/N_rain, gt/N_clean}; one LQ without GT.
    m = {}
    for folder, split, names in (("train", "train", ["0", "1"]), ("test_a", "val", ["0", "3"])):
        for n in names:
            fmt = "jpg" if (folder, n) == ("test_a", "3") else "png"
            real(m, "raindrop", split, n, f"{folder}/data/{n}_rain.{fmt}", f"{folder}/gt/{n}_clean.{fmt}", fmt)
    m["train/data/99_rain.png"] = image_bytes(60, lq=True)
    fx.unpaired.add("99_rain.png")
    m["test_b/data/0_rain.png"] = image_bytes(205, lq=True)
    m["test_b/gt/0_clean.png"] = image_bytes(205)
    fx.files["RainDrop.zip"] = zip_bytes(m)

    # Rain100H: flat folders of rain-N / norain-N.
    for archive, folder, split, nums in (("RainTrainH.zip", "RainTrainH", "train", ["1", "2"]),
                                         ("Rain100H.zip", "Rain100H", "val", ["001"])):
        m = {}
        for n in nums:
            real(m, "rainy", split, f"rain-{n}", f"{folder}/rain-{n}.png", f"{folder}/norain-{n}.png")
            m[f"{folder}/rainstreak-{n}.png"] = image_bytes(208)  # auxiliary map, ignored
        fx.files[archive] = zip_bytes(m)

    # SRD: shadow/<name>.jpg with shadow_free/<name>_no_shadow.jpg (names sort differently on purpose).
    for archive, base, split, names in (("SRD_Train.zip", "SRD_Train/Train", "train", ["_MG_2", "_MG_10", "IMG_3"]),
                                        ("SRD_Test.zip", "SRD_Test/srd", "val", ["IMG_5", "_MG_6"])):
        m = {}
        for n in names:
            real(m, "shadowed", split, n, f"{base}/shadow/{n}.jpg", f"{base}/shadow_free/{n}_no_shadow.jpg", "jpg")
        fx.files[archive] = zip_bytes(m)

    # Snow100K: training all/{synthetic,gt,mask}; test .../Snow100K-L/{synthetic,gt,mask}; subset filter.
    m = {}
    for n in ("beautiful_smile_00001", "beautiful_smile_00004"):
        real(m, "snowy", "train", n, f"all/synthetic/{n}.jpg", f"all/gt/{n}.jpg", "jpg")
        m[f"all/mask/{n}.jpg"] = image_bytes(0, "jpg")
    m["all/synthetic/city_00001.jpg"] = image_bytes(206, "jpg", lq=True)
    m["all/gt/city_00001.jpg"] = image_bytes(206, "jpg")
    fx.files["Snow100K-training.tar.gz"] = tar_bytes(m, gz=True)
    m = {}
    base = "Snow100K-testset/media/jdway/GameSSD/overlapping/test"
    for n in ("beautiful_smile_00007", "beautiful_smile_00009"):
        real(m, "snowy", "val", n, f"{base}/Snow100K-L/synthetic/{n}.jpg", f"{base}/Snow100K-L/gt/{n}.jpg", "jpg")
    m[f"{base}/Snow100K-S/synthetic/beautiful_smile_00003.jpg"] = image_bytes(207, "jpg", lq=True)
    m[f"{base}/Snow100K-S/gt/beautiful_smile_00003.jpg"] = image_bytes(207, "jpg")
    fx.files["Snow100K-testset.tar.gz"] = tar_bytes(m, gz=True)

    # CelebA-HQ 256 (jpg) + the 100 masks: first 100 images are val (image i with mask i).
    m = {}
    for i in range(102):
        name = f"{i:05d}"
        m[f"celeba_hq_256/{name}.jpg"] = image_bytes(i % 216, "jpg")
        fx.expected[("uncompleted", "val" if i < 100 else "train", name)] = i % 216
    fx.files["celeba_hq_256.zip"] = zip_bytes(m)
    for i in range(100):
        fx.files[f"{i:06d}.png"] = mask_bytes(i)

    fx.synthetic = {"jpeg-compressed", "noisy", "uncompleted"}
    return fx


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------------------------ the server

class Server:
    """Loopback HTTP server for ``files`` with Range support.

    ``drop_once``: names whose first GET sends only half the body and then closes the
    connection. ``drive``: file id -> name served through an imitation of Google Drive's
    virus-scan warning page at /download.
    """

    def __init__(self, files: dict[str, bytes], drop_once=(), drive: dict[str, str] | None = None):
        self.files, self.drop = dict(files), set(drop_once)
        self.drive = drive or {}
        self.log: list[tuple[str, str | None]] = []  # (path, Range header)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):  # keep test output quiet
                pass

            def do_GET(self):
                u = urlparse(self.path)
                outer.log.append((u.path, self.headers.get("Range")))
                if u.path == "/download":
                    return self._drive(parse_qs(u.query))
                self._serve(unquote(u.path.lstrip("/")))

            def _drive(self, q):
                fid = q.get("id", [""])[0]
                if fid not in outer.drive:
                    return self._send(404, b"not found", "text/plain")
                if q.get("confirm", [""])[0] == "t" and q.get("uuid", [""])[0] == "u-123":
                    return self._serve(outer.drive[fid])
                page = (f'<html><body><p>Google Drive can\'t scan this file for viruses.</p>'
                        f'<form id="download-form" action="/download" method="get">'
                        f'<input type="submit" value="Download anyway"/>'
                        f'<input type="hidden" name="id" value="{fid}">'
                        f'<input type="hidden" name="export" value="download">'
                        f'<input type="hidden" name="confirm" value="t">'
                        f'<input type="hidden" name="uuid" value="u-123"></form></body></html>').encode()
                self._send(200, page, "text/html; charset=utf-8")

            def _send(self, code, body, ctype, extra=None):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def _serve(self, name):
                if name not in outer.files:
                    return self._send(404, b"not found", "text/plain")
                data = outer.files[name]
                start, code, extra = 0, 200, {}
                rng = self.headers.get("Range")
                if rng:
                    start = int(re.match(r"bytes=(\d+)-", rng).group(1))
                    if start >= len(data):
                        return self._send(416, b"", "text/plain", {"Content-Range": f"bytes */{len(data)}"})
                    code, extra = 206, {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}
                body = data[start:]
                if name in outer.drop:
                    outer.drop.discard(name)
                    self.send_response(code)
                    self.send_header("Content-Type", "application/octet-stream")
                    self.send_header("Content-Length", str(len(body)))
                    for k, v in extra.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self._send(code, body, "application/octet-stream", extra)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
