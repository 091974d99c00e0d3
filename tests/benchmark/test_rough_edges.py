"""Rough edges a new user hit (issue 14): each fix with the probe that showed it."""

import http.server
import json
import socket
import threading
import time
from pathlib import Path

import pytest
import torch
import yaml

from builders.errors import UserError

REPO = Path(__file__).resolve().parents[2]
TINY = yaml.safe_load((REPO / "daclip" / "configs" / "tiny.yaml").read_text())

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def not_found_server():
    """A loopback HTTP server that answers 404 to everything (a mirror without the file)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_error(404)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nobody listens once the socket is closed


# -- the hint to supply a file by hand names options that exist --------------------------------

def test_weights_fetch_failure_names_its_own_options(not_found_server, tmp_path, capsys):
    from benchmark.weights import main

    rc = main(["fetch", "--metrics", "lpips", "--weights-dir", str(tmp_path), "--mirror", not_found_server])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: could not obtain")
    assert "--from-dir" not in err[0]  # benchmark.weights has no such option
    assert "--mirror" in err[0] and str(tmp_path / "torch" / "hub") in err[0]


@pytest.mark.parametrize("name,hint", [("nafnet", "--weights nafnet=PATH"),
                                       ("daclip", "--option METHOD:daclip_weights=PATH")])
def test_method_weights_failure_names_options_that_exist(not_found_server, tmp_path, monkeypatch, name, hint):
    """What `benchmark.run --methods all` says for a method whose download fails."""
    from daclip.weights import WeightsEntry, WeightsUnavailable, resolve_weights

    from builders.hub import OFFLINE_ENVS

    for var in OFFLINE_ENVS:  # every download switch off
        monkeypatch.delenv(var, raising=False)
    table = {name: WeightsEntry(name, f"{name}.pth", url=f"{not_found_server}/{name}.pth")}
    with pytest.raises(WeightsUnavailable) as info:
        resolve_weights(name, root=tmp_path, table=table)
    msg = str(info.value)
    assert "--from-dir" not in msg and hint in msg and "HTTP 404" in msg
    if name == "daclip":
        assert "--weights daclip" not in msg  # DA-CLIP is not a method: --weights daclip=... is refused


# -- train_ir --daclip: the architecture recorded by train_clip, and toolkit configs by name --------

def test_train_ir_reads_the_config_of_a_custom_daclip(tmp_path):
    from daclip.train_clip import main as train_clip
    from daclip.train_ir import main as train_ir
    from test_train_ir import COMMON, make_train_set

    data = make_train_set(tmp_path / "data", types=("hazy", "noisy"), n=4)
    cfg16 = dict(TINY, embed_dim=16)  # not the tiny config: only config.json can tell
    cfg_file = tmp_path / "my-clip.yaml"
    cfg_file.write_text(yaml.safe_dump(cfg16))
    clip_out = tmp_path / "daclip"
    assert train_clip(["--root", str(data), "--captions", "none", "--model-cfg", str(cfg_file),
                       "--pretrained", "none", "--batch-size", "8", "--max-steps", "1", "--workers", "0",
                       "--val-split", "", "--out", str(clip_out)]) == 0
    cfg_file.unlink()  # the run folder alone must be enough
    assert json.loads((clip_out / "config.json").read_text())["open_clip_cfg"]["embed_dim"] == 16
    out = tmp_path / "nd"
    assert train_ir(["--method", "nafnet-degradation", "--preset", "tiny", "--daclip", str(clip_out / "daclip.pt"),
                     "--root", str(data), "--out", str(out), *COMMON, "--iters", "1", "--val-every", "0"]) == 0
    side = json.loads((out / "ema.pth.json").read_text())
    assert side["daclip_cfg"]["embed_dim"] == 16 and side["config"]["context_dim"] == 16


def test_daclip_model_accepts_the_toolkit_configs_by_name(tmp_path, capsys):
    from daclip.checkpoint import save_daclip
    from daclip.model import create_daclip, daclip_architecture
    from daclip.train_ir import main as train_ir
    from test_train_ir import COMMON, make_train_set

    assert daclip_architecture(None, "tiny") == ("custom", TINY)
    assert daclip_architecture(None, "ViT-B-32") == ("ViT-B-32", None)
    with pytest.raises(UserError, match="neither an open_clip model .* a toolkit config \\(tiny"):
        daclip_architecture(None, "tinyy")
    torch.manual_seed(0)
    ckpt = tmp_path / "plain" / "daclip.pt"  # no config.json beside it
    ckpt.parent.mkdir()
    save_daclip(create_daclip(model_cfg=TINY), ckpt)
    data = make_train_set(tmp_path / "data", types=("noisy",), n=2)
    args = ["--method", "nafnet-daclip", "--preset", "tiny", "--daclip", str(ckpt), "--root", str(data), *COMMON,
            "--iters", "1", "--val-every", "0"]
    assert train_ir([*args, "--out", str(tmp_path / "a"), "--daclip-model", "tiny"]) == 0
    assert train_ir([*args, "--out", str(tmp_path / "b"), "--daclip-model", "tinyy"]) == 2
    assert "unknown DA-CLIP model 'tinyy'" in capsys.readouterr().err


# -- no hub: one line, at once ------------------------------------------------------------------

@pytest.fixture
def unreachable_hub(monkeypatch, tmp_path, closed_port):
    """HF_HUB_OFFLINE unset, the endpoint a closed loopback port, an empty hub cache."""
    import huggingface_hub.constants as hub

    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    endpoint = f"http://127.0.0.1:{closed_port}"
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setattr(hub, "ENDPOINT", endpoint)
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", False, raising=False)
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    return endpoint


def test_captioning_fails_fast_without_the_hub(unreachable_hub, mini_root, tmp_path, capsys):
    import transformers  # noqa: F401  (imported before the clock starts: the import is not the hub)
    from transformers import AutoConfig, AutoProcessor, BlipForConditionalGeneration  # noqa: F401

    from captioning.run import main

    t0 = time.monotonic()
    rc = main(["--root", str(mini_root), "--model", "daclip-test/not-cached-anywhere", "--quiet", "--workers", "0"])
    elapsed = time.monotonic() - t0
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and elapsed < 5, elapsed
    assert len(err) == 1 and err[0].startswith("error: cannot reach the Hugging Face hub (cannot connect to "
                                               f"{unreachable_hub}")


def test_train_clip_fails_fast_without_the_hub(unreachable_hub, mini_root, tmp_path, capsys, caplog):
    import open_clip  # noqa: F401

    from daclip.train_clip import main

    t0 = time.monotonic()
    rc = main(["--root", str(mini_root), "--captions", "none", "--out", str(tmp_path / "run"), "--workers", "0",
               "--epochs", "1"])  # the default --pretrained: laion2b_s34b_b79k from the hub
    elapsed = time.monotonic() - t0
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and elapsed < 5, elapsed
    assert len(err) == 1 and "laion2b_s34b_b79k is not in the local cache" in err[0] and unreachable_hub in err[0]
    assert not [r for r in caplog.records if "Retrying" in r.getMessage()]  # no hub client retries


# -- captioning resume: the bar starts at the done count -----------------------------------------

def test_captioning_progress_bar_starts_at_the_done_count(tmp_path, capsys):
    from captioning.run import RunOptions, caption_dataset
    from captioning.blip import CaptionerConfig
    from captioning.store import CaptionRecord, write_store
    from captioning.tiny import build_tiny_blip
    from builders.manifest import read_manifest
    from test_train_ir import make_train_set

    root = make_train_set(tmp_path / "data", types=("hazy", "noisy"), n=3)  # 8 distinct GT images
    gts = sorted(set(read_manifest(root)["gt_sha256"]))
    write_store(root, {g: CaptionRecord(g, "a photo", "a photo", "earlier") for g in gts[:5]})
    blip = build_tiny_blip(tmp_path / "blip")
    opts = RunOptions(root=root, captioner=CaptionerConfig(model=str(blip), device="cpu", max_new_tokens=4),
                      batch_size=2, workers=0, progress=True)
    summary = caption_dataset(opts)
    assert summary.generated == 3 and summary.to_caption == 3
    err = capsys.readouterr().err
    assert "5/8" in err and "8/8" in err and "0/3" not in err


def test_a_negative_pixel_limit_is_refused_before_the_mini_set_is_built(tmp_path, monkeypatch, capsys):
    from benchmark.run import main as run_main

    monkeypatch.chdir(tmp_path)
    assert run_main(["--max-megapixels", "-3", "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == ["error: --max-megapixels must be >= 0 (0: no limit), got -3"]
    assert not (tmp_path / "datasets").exists() and not (tmp_path / "run").exists()
