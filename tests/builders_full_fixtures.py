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
    files: dict[str, bytes] = field(default_factory=dict)  # needed file (archive) name -> bytes
    expected: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (type, split, name) -> k
    failing: set = field(default_factory=set)  # ids that must be reported as failing
    unpaired: set = field(default_factory=set)  # file names that must be reported as unpaired
    synthetic: set = field(default_factory=set)  # types whose LQ is synthesised
    members: dict[str, bytes] = field(default_factory=dict)  # LIVE1 reference images inside the zip

    def counts(self) -> dict[tuple[str, str], int]:
        out: dict = {}
        for (t, s, _), _k in self.expected.items():
            out[(t, s)] = out.get((t, s), 0) + 1
        return out

    def write(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in self.files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
        return folder

    def overrides(self) -> dict:
        """The replicas' own sizes and sha256, to stand in for the published ones (which only the
        real files match) while a test builds from these replicas."""
        return {"files": {n: [len(b), sha256(b)] for n, b in self.files.items()},
                "members": {n: [len(b), sha256(b)] for n, b in self.members.items()}}


class _Counter:
    def __init__(self, start: int = 0):
        self.k = start

    def __call__(self) -> int:
        self.k += 1
        return self.k


def live1_names() -> list[str]:
    from builders.sources.live1 import NAMES

    return list(NAMES)


def make_fixtures() -> Fixtures:
    """One archive per source in the layout the real file has (the first variant each recipe can
    get from a mirror); other real layouts are in :func:`variant_fixtures`."""
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

    # RESIDE-6K: the hub repo's train/{GT,hazy}, test/{GT,hazy}, here as the folder's zip form.
    m = {}
    for split_dir, split, names in (("train", "train", ["1", "2", "3"]), ("test", "val", ["0001_0.8_0.2", "0002_0.9_0.1"])):
        for n in names:
            real(m, "hazy", split, n, f"{split_dir}/hazy/{n}.png", f"{split_dir}/GT/{n}.png")
    fx.files["RESIDE-6K.zip"] = zip_bytes(m)

    # DIV2K.tar (EDSR's): DIV2K_train_HR holds train and valid images together, no DIV2K_valid_HR.
    def gt_only(members, split, name, path, fmt="png", tasks=("jpeg-compressed", "noisy")):
        k = nk()
        members[path] = image_bytes(k, fmt)
        for t in tasks:
            fx.expected[(t, split, name)] = k
        return members[path]

    m = {}
    for n in ("0001", "0002", "0801"):
        gt_only(m, "train", n, f"DIV2K/DIV2K_train_HR/{n}.png")
    m["DIV2K/DIV2K_train_LR_bicubic/X2/0001x2.png"] = image_bytes(201)
    fx.files["DIV2K.tar"] = tar_bytes(m, gz=False)
    m = {}
    for n in ("000001", "000002"):
        gt_only(m, "train", n, f"Flickr2K/Flickr2K_HR/{n}.png")
    m["Flickr2K/Flickr2K_LR_bicubic/X2/000001x2.png"] = image_bytes(202)
    fx.files["Flickr2K.tar"] = tar_bytes(m, gz=False)

    # LIVE1: the 29 reference images as single files (DnCNN's testsets/LIVE1), val of jpeg-compressed.
    for n in live1_names():
        fx.files[f"LIVE1/{n}"] = gt_only({}, "val", Path(n).stem, n, "bmp", tasks=("jpeg-compressed",))

    # CBSD68.tar.gz (the hub's): the clean images under CBSD68/0/.
    m = {}
    for n in ("0000", "0001", "0002"):
        gt_only(m, "val", n, f"CBSD68/0/{n}.png", tasks=("noisy",))
    fx.files["CBSD68.tar.gz"] = tar_bytes(m, gz=True)

    # LOL (the hub's lol_dataset.zip): our485/{low,high}, eval15/{low,high}; one pair of different sizes.
    m = {}
    for folder, split, names in (("our485", "train", ["2", "5"]), ("eval15", "val", ["1", "22"])):
        for n in names:
            real(m, "low-light", split, n, f"lol_dataset/{folder}/low/{n}.png", f"lol_dataset/{folder}/high/{n}.png")
    m["lol_dataset/our485/low/7.png"] = image_bytes(50, lq=True)
    m["lol_dataset/our485/high/7.png"] = image_bytes(50, size=(SIDE + 4, SIDE))
    fx.failing.add("train/low-light/7")
    fx.files["lol_dataset.zip"] = zip_bytes(m)

    # RainDrop (a folder; its zip form): {train,test_a,test_b}/{data/N_rain, gt/N_clean}; one LQ without GT.
    m = {}
    for folder, split, names in (("train", "train", ["0", "1"]), ("test_a", "val", ["0", "3"])):
        for n in names:
            fmt = "jpg" if (folder, n) == ("test_a", "3") else "png"
            real(m, "raindrop", split, n, f"RainDrop/{folder}/data/{n}_rain.{fmt}", f"RainDrop/{folder}/gt/{n}_clean.{fmt}", fmt)
    m["RainDrop/train/data/99_rain.png"] = image_bytes(60, lq=True)
    fx.unpaired.add("99_rain.png")
    m["RainDrop/test_b/data/0_rain.png"] = image_bytes(205, lq=True)
    m["RainDrop/test_b/gt/0_clean.png"] = image_bytes(205)
    fx.files["RainDrop.zip"] = zip_bytes(m)

    # Rain100H: flat folders of rain-N / norain-N.
    for archive, folder, split, nums in (("RainTrainH.zip", "RainTrainH", "train", ["1", "2"]),
                                         ("Rain100H.zip", "Rain100H", "val", ["001"])):
        m = {}
        for n in nums:
            real(m, "rainy", split, f"rain-{n}", f"{folder}/rain-{n}.png", f"{folder}/norain-{n}.png")
            m[f"{folder}/rainstreak-{n}.png"] = image_bytes(208)  # auxiliary map, ignored
        fx.files[archive] = zip_bytes(m)

    # SRD: shadow/<name>.jpg with shadow_free/<name>_no_shadow.jpg (train) and <name>_free.jpg
    # (test); names sort differently on purpose.
    for archive, base, split, names, sfx in (
            ("SRD_Train.zip", "SRD_Train/Train", "train", ["_MG_2", "_MG_10", "IMG_3"], "_no_shadow"),
            ("SRD_Test.zip", "SRD_Test/srd", "val", ["IMG_5", "_MG_6", "IMG_12"], "_free")):
        m = {}
        for n in names:
            real(m, "shadowed", split, n, f"{base}/shadow/{n}.jpg", f"{base}/shadow_free/{n}{sfx}.jpg", "jpg")
        fx.files[archive] = zip_bytes(m)

    # Snow100K: the author's training subset (its zip form; here {synthetic,gt} folders) and the
    # test archive's .../Snow100K-L/{synthetic,gt,mask}, filtered to 'beautiful_smile'.
    m = {}
    for n in ("beautiful_smile_00001", "beautiful_smile_00004"):
        real(m, "snowy", "train", n, f"subset/synthetic/{n}.jpg", f"subset/gt/{n}.jpg", "jpg")
    fx.files["Snow100K-subset.zip"] = zip_bytes(m)
    m = {}
    base = "Snow100K-testset/media/jdway/GameSSD/overlapping/test"
    for n in ("beautiful_smile_00007", "beautiful_smile_00009"):
        real(m, "snowy", "val", n, f"{base}/Snow100K-L/synthetic/{n}.jpg", f"{base}/Snow100K-L/gt/{n}.jpg", "jpg")
    m[f"{base}/Snow100K-L/synthetic/city_00001.jpg"] = image_bytes(206, "jpg", lq=True)
    m[f"{base}/Snow100K-L/gt/city_00001.jpg"] = image_bytes(206, "jpg")
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


def variant_fixtures() -> dict[str, Fixtures]:
    """The other real layouts, one small Fixtures per (source, layout); each builds alone."""
    out: dict[str, Fixtures] = {}

    def new(key: str) -> tuple[Fixtures, _Counter]:
        out[key] = Fixtures()
        return out[key], _Counter(10 * len(out))

    def real(fx, nk, members, task, split, name, lq_path, gt_path, fmt="png"):
        k = nk()
        members[lq_path] = image_bytes(k, fmt, lq=True)
        members[gt_path] = image_bytes(k, fmt)
        fx.expected[(task, split, name)] = k

    def gt_only(fx, nk, members, split, name, path, tasks, fmt="png"):
        k = nk()
        members[path] = image_bytes(k, fmt)
        for t in tasks:
            fx.expected[(t, split, name)] = k
        return members[path]

    # SRD copies with train_A/train_C and test_A/test_C folders (GT names equal to the LQ names).
    fx, nk = new("srd-A-C")
    for archive, top, split in (("SRD_Train.zip", "train", "train"), ("SRD_Test.zip", "test", "val")):
        m: dict = {}
        for n in ("IMG_1", "_MG_7"):
            real(fx, nk, m, "shadowed", split, n, f"SRD/{top}_A/{n}.jpg", f"SRD/{top}_C/{n}.jpg", "jpg")
        m[f"SRD/{top}_B/IMG_1.png"] = image_bytes(209)  # shadow masks, unused
        fx.files[archive] = zip_bytes(m)

    # DIV2K as ETH's two HR zips (0001-0800 + 0801-0900), with Flickr2K.tar.
    fx, nk = new("div2k-eth")
    m = {}
    for n in ("0001", "0002"):
        gt_only(fx, nk, m, "train", n, f"DIV2K_train_HR/{n}.png", ("jpeg-compressed", "noisy"))
    fx.files["DIV2K_train_HR.zip"] = zip_bytes(m)
    m = {}
    gt_only(fx, nk, m, "train", "0801", "DIV2K_valid_HR/0801.png", ("jpeg-compressed", "noisy"))
    fx.files["DIV2K_valid_HR.zip"] = zip_bytes(m)
    m = {}
    gt_only(fx, nk, m, "train", "000001", "Flickr2K/Flickr2K_HR/000001.png", ("jpeg-compressed", "noisy"))
    fx.files["Flickr2K.tar"] = tar_bytes(m, gz=False)

    # DIV2K.tar with both HR folders (train 0001-0800, valid 0801-0900).
    fx, nk = new("div2k-tar-two-folders")
    m = {}
    gt_only(fx, nk, m, "train", "0001", "DIV2K/DIV2K_train_HR/0001.png", ("jpeg-compressed", "noisy"))
    gt_only(fx, nk, m, "train", "0802", "DIV2K/DIV2K_valid_HR/0802.png", ("jpeg-compressed", "noisy"))
    fx.files["DIV2K.tar"] = tar_bytes(m, gz=False)
    fx.files["Flickr2K.tar"] = out["div2k-eth"].files["Flickr2K.tar"]
    fx.expected |= {k: v for k, v in out["div2k-eth"].expected.items() if k[2] == "000001"}

    # CBSD68 as in the GitHub copy: original_png/ beside noisy<sigma>/ folders.
    fx, nk = new("cbsd68-original_png")
    m = {}
    for n in ("0000", "0001"):
        gt_only(fx, nk, m, "val", n, f"CBSD68/original_png/{n}.png", ("noisy",))
        m[f"CBSD68/noisy50/{n}.png"] = image_bytes(210)
    fx.files["CBSD68.tar.gz"] = tar_bytes(m, gz=True)

    # LOL from Drive: LOLdataset.zip, LOLdataset/our485, eval15.
    fx, nk = new("lol-drive")
    m = {}
    for folder, split in (("our485", "train"), ("eval15", "val")):
        real(fx, nk, m, "low-light", split, "3", f"LOLdataset/{folder}/low/3.png", f"LOLdataset/{folder}/high/3.png")
    fx.files["LOLdataset.zip"] = zip_bytes(m)

    # LIVE1 from LIVE's databaserelease2.zip: refimgs/ (checked against the per-file digests).
    fx, nk = new("live1-zip")
    m = {}
    for n in live1_names()[:3]:
        fx.members[n] = gt_only(fx, nk, m, "val", Path(n).stem, f"databaserelease2/refimgs/{n}", ("jpeg-compressed",), "bmp")
    m["databaserelease2/jpeg/img1.bmp"] = image_bytes(203, "bmp")
    fx.files["databaserelease2.zip"] = zip_bytes(m)

    # Snow100K: the author's subset in the official <type>/{LQ,GT} layout, and the S3 test archive.
    fx, nk = new("snow-subset-LQ-GT")
    m = {}
    for n in ("snow_1", "snow_2"):  # the subset's own names: no 'beautiful_smile' filter applies
        real(fx, nk, m, "snowy", "train", n, f"snowy/LQ/{n}.png", f"snowy/GT/{n}.png")
    fx.files["Snow100K-subset.zip"] = zip_bytes(m)
    m = {}
    real(fx, nk, m, "snowy", "val", "beautiful_smile_00002", "test/Snow100K-L/synthetic/beautiful_smile_00002.jpg",
         "test/Snow100K-L/gt/beautiful_smile_00002.jpg", "jpg")
    fx.files["Snow100K-testset.tar.gz"] = tar_bytes(m, gz=True)

    # Snow100K from the (dead) S3 training archive: all/{synthetic,gt,mask}, 'beautiful_smile' only.
    fx, nk = new("snow-s3-training")
    m = {}
    real(fx, nk, m, "snowy", "train", "beautiful_smile_00011", "all/synthetic/beautiful_smile_00011.jpg",
         "all/gt/beautiful_smile_00011.jpg", "jpg")
    m["all/mask/beautiful_smile_00011.jpg"] = image_bytes(0, "jpg")
    m["all/synthetic/city_00001.jpg"] = image_bytes(206, "jpg", lq=True)
    m["all/gt/city_00001.jpg"] = image_bytes(206, "jpg")
    fx.files["Snow100K-training.tar.gz"] = tar_bytes(m, gz=True)
    fx.files["Snow100K-testset.tar.gz"] = out["snow-subset-LQ-GT"].files["Snow100K-testset.tar.gz"]
    fx.expected |= {k: v for k, v in out["snow-subset-LQ-GT"].expected.items() if k[1] == "val"}

    # GoPro's hub zip unpacked without the GOPRO_Large/ top folder.
    fx, nk = new("gopro-no-top-folder")
    m = {}
    for split_dir, split in (("train", "train"), ("test", "val")):
        real(fx, nk, m, "motion-blurry", split, "GOPR0410_11_00_000003", f"{split_dir}/GOPR0410_11_00/blur/000003.png",
             f"{split_dir}/GOPR0410_11_00/sharp/000003.png")
    fx.files["GOPRO_Large.zip"] = zip_bytes(m)
    return out


def daclip_val_fixture(top: str = "daclip_val/val/") -> Fixtures:
    """The authors' validation zip: [<top>/][val/]<type>/{LQ,GT}/<name>, two pairs per type."""
    from builders.tasks import DEGRADATIONS

    fx, nk, m = Fixtures(), _Counter(), {}
    for t in DEGRADATIONS:
        for i in range(2):
            k = nk()
            name = f"{t[:4]}{i}"
            fmt = "jpg" if t == "shadowed" else "png"
            m[f"{top}{t}/LQ/{name}.{fmt}"] = image_bytes(k, fmt, lq=True)
            m[f"{top}{t}/GT/{name}.{fmt}"] = image_bytes(k, fmt)
            fx.expected[(t, "val", name)] = k
    m[f"{top}noisy/LQ/stray.png"] = image_bytes(150, lq=True)  # no GT of that name
    fx.unpaired.add("stray.png")
    fx.files["daclip_val.zip"] = zip_bytes(m)
    return fx


def check_pairs(root: Path, fx: "Fixtures"):
    """The manifest at ``root`` holds exactly ``fx.expected``, and pixels prove every pair: the GT
    decodes to its pair index, a real LQ to the same index, a synthetic LQ is the recorded
    generator's output on that GT."""
    import json

    import numpy as np

    from builders import manifest as mf
    from builders.io import read_image, sha256_file
    from builders.synth import synthesize

    df = mf.read_manifest(root)
    got = {(r.type, r.split, Path(r.name).stem) for r in df.itertuples()}
    assert got == set(fx.expected), (got ^ set(fx.expected))
    assert df["id"].is_unique
    for r in df.to_dict("records"):
        lq, gt = read_image(root / r["lq_path"]), read_image(root / r["gt_path"])
        k = fx.expected[(r["type"], r["split"], Path(r["name"]).stem)]
        assert lq.shape == gt.shape == (SIDE, SIDE, 3)
        assert (r["width"], r["height"]) == (SIDE, SIDE)
        assert r["lq_path"] == f"{r['split']}/{r['type']}/LQ/{r['name']}" and r["name"].endswith(".png")
        assert r["gt_path"] == f"{r['split']}/{r['type']}/GT/{r['name']}"
        assert sha256_file(root / r["lq_path"]) == r["sha256"] and sha256_file(root / r["gt_path"]) == r["gt_sha256"]
        assert r["source"] and r["licence"]
        assert decode(gt) == k, r["id"]
        p = json.loads(r["parameters"])
        if r["type"] in ("jpeg-compressed", "noisy") and "lq_source" not in p:
            # The synthetic LQ is exactly the registered generator applied with the recorded seed,
            # stored the way DA-CLIP's generate_LQ.py stores it (truncation).
            assert p["generator"] == r["type"] and p["uint8_store"] == "truncate"
            assert np.array_equal(synthesize(r["type"], gt, p["seed"], store="truncate").lq, lq)
            assert p.get("sigma", 50) == 50 and p.get("quality", 10) == 10
        elif r["type"] == "uncompleted" and "mask_index" in p:
            m = p["mask_index"]
            if r["split"] == "val":
                assert m == int(Path(r["name"]).stem)  # image i with mask i
            assert p["mask_source"] == f"{m:06d}.png"
            hole_row = m % 16  # the fixture mask's two hole rows shrink to this one row
            assert (lq[hole_row] == 255).all()
            keep = np.ones(SIDE, bool)
            keep[hole_row] = False
            assert np.array_equal(lq[keep], gt[keep])
        else:
            assert decode(lq) == k, r["id"]  # a real LQ belongs to its GT
            assert not np.array_equal(lq, gt)
    return df


# ------------------------------------------------------------------- replicas' digests in recipes

def apply_overrides(overrides: dict) -> None:
    """Make the registered recipes expect the replicas' sizes and digests (only for the files a
    replica provides; every other file keeps its published figures)."""
    from builders.sources import base

    for name, recipe in list(base.RECIPES._entries.items()):
        base.RECIPES._entries[name] = _overridden(recipe, overrides)


def _overridden(recipe, overrides: dict):
    from dataclasses import replace

    files = overrides.get("files", {})
    members = overrides.get("members", {})
    new_files = tuple(replace(f, size=files[f.archive_name][0], sha256=files[f.archive_name][1], md5=None)
                      if f.archive_name in files else f for f in recipe.files)
    digests = {n: (members[n][0], members[n][1]) if n in members else v for n, v in recipe.member_digests.items()}
    return replace(recipe, files=new_files, member_digests=digests)


def patched_recipes(mp, overrides: dict) -> None:
    """Like apply_overrides, undone by the pytest MonkeyPatch ``mp``."""
    from builders.sources import base

    for name, recipe in list(base.RECIPES._entries.items()):
        mp.setitem(base.RECIPES._entries, name, _overridden(recipe, overrides))


# A `python -m builders.build` for subprocess tests, with the replicas' digests in place.
LAUNCH = """
import json, sys
sys.path.insert(0, sys.argv[1])
from builders_full_fixtures import apply_overrides
with open(sys.argv[2]) as fh:
    apply_overrides(json.load(fh))
from builders.build import main
sys.exit(main(sys.argv[3:]))
"""


def build_cmd(overrides_file: Path, *args: str) -> list[str]:
    import sys

    return [sys.executable, "-c", LAUNCH, str(Path(__file__).resolve().parent), str(overrides_file), *args]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------------------------ the server

class Server:
    """Loopback HTTP server for ``files`` with Range support.

    ``drop_once``: names whose first GET sends only half the body and then closes the
    connection. ``drive``: file id -> name served through an imitation of Google Drive's
    virus-scan warning page at /download.
    """

    def __init__(self, files: dict[str, bytes], drop_once=(), drive: dict[str, str] | None = None,
                 cut_without_length=(), html_ctype: str = "text/html"):
        self.files, self.drop = dict(files), set(drop_once)
        self.cut = set(cut_without_length)  # names sent only half, with no Content-Length (a broken mirror)
        self.html_ctype = html_ctype  # Content-Type of bodies that start like a web page
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
                if name in outer.cut:
                    # HTTP/1.0-style response: no length, the body ends when the connection closes.
                    self.send_response(code)
                    self.send_header("Content-Type", "application/octet-stream")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if body.lstrip()[:5].lower() in (b"<html", b"<!doc"):
                    return self._send(code, body, outer.html_ctype, extra)
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


# ----------------------------------------------------------------------------------- a zip bomb

BOMB_SIZE = 3 << 30  # 3 GiB of zeros
BOMB_CRC32 = 0x480BBE37  # zlib.crc32 of BOMB_SIZE zero bytes (computed once; 20 s to recompute)


def _deflate_zeros(n: int) -> bytes:
    """A raw deflate stream that inflates to ``n`` zero bytes: one dynamic-Huffman block whose
    length-258/distance-1 match costs 2 bits, so 3 GiB take 3.1 MB (as zlib -9 gives)."""
    m, rest = divmod(n - 1, 258)
    bits: list[int] = []

    def put(value: int, count: int) -> None:  # header fields: least significant bit first
        bits.extend((value >> i) & 1 for i in range(count))

    def code(c: int, length: int) -> None:  # Huffman codes: most significant bit first
        bits.extend((c >> i) & 1 for i in reversed(range(length)))

    put(1, 1), put(2, 2)  # the final block, dynamic Huffman codes
    put(286 - 257, 5), put(0, 5), put(18 - 4, 4)  # 286 lit/len codes, 1 distance code, 18 code-length codes
    cl_len = {18: 1, 1: 2, 2: 2}  # code-length alphabet: 18 = run of zeros; 1 and 2 = lengths
    for s in (16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1):
        put(cl_len.get(s, 0), 3)
    cl_code = {18: (0b0, 1), 1: (0b10, 2), 2: (0b11, 2)}

    def zero_run(k: int) -> None:
        while k:
            r = min(k, 138)
            code(*cl_code[18])
            put(r - 11, 7)
            k -= r

    # literal 0 and end-of-block (256): 2 bits ('10', '11'); length 258 (285): 1 bit ('0'); distance 1: '0'
    code(*cl_code[2]), zero_run(255), code(*cl_code[2]), zero_run(28), code(*cl_code[1]), code(*cl_code[1])
    code(0b10, 2)  # the first zero, as a literal; then m matches of two zero bits each
    tail = [1, 0] * rest + [1, 1]  # the remaining zeros as literals, then end of block
    start = len(bits) + 2 * m
    out = bytearray((start + len(tail) + 7) // 8)
    for i, b in list(enumerate(bits)) + [(start + j, b) for j, b in enumerate(tail)]:
        if b:
            out[i >> 3] |= 1 << (i & 7)
    return bytes(out)


def zip_bomb(name: str = "zeros.bin") -> bytes:
    """A 3 MB zip whose one member inflates to 3 GiB (declared honestly in its headers)."""
    import struct

    data, fname = _deflate_zeros(BOMB_SIZE), name.encode()
    local = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 8, 0, 0, BOMB_CRC32, len(data), BOMB_SIZE,
                        len(fname), 0) + fname
    central = struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, BOMB_CRC32, len(data),
                          BOMB_SIZE, len(fname), 0, 0, 0, 0, 0, 0) + fname
    offset = len(local) + len(data)
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 1, 1, len(central), offset, 0)
    return local + data + central + end
