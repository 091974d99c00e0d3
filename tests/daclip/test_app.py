"""python -m daclip.app: the Gradio demo, driven end to end in headless Chromium (selenium)."""

import importlib.util
import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import daclip
from builders.io import save_image

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


def photo(h=48, w=64, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([128 + 80 * np.sin(x / 7), 128 + 80 * np.cos(y / 5), (x + y) % 256], axis=2)
    return np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8)


def test_demo_restore_equals_the_api(tmp_path, tiny_daclip):
    from daclip.app import NO_PREDICTION, DemoConfig, available_methods, restore_for_demo

    img = photo()
    cfg = DemoConfig(device="cpu")
    ready, missing = available_methods(cfg)
    assert ready["Classical (type-aware)"] == "classical" and "nafnet" in missing
    out, label = restore_for_demo(cfg, img, "classical", "noisy")
    assert np.array_equal(out, daclip.restore(img, method="classical", task="noisy").image)
    assert label == NO_PREDICTION
    cfg = DemoConfig(daclip=str(tiny_daclip), daclip_model="tiny", device="cpu")
    out, probs = restore_for_demo(cfg, img, "classical", "auto (DA-CLIP)")
    api = daclip.restore(img, method="classical", daclip=str(tiny_daclip), daclip_model="tiny", device="cpu")
    assert np.array_equal(out, api.image) and probs == api.probabilities


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the demo exited with {proc.returncode}: {proc.stderr.read()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"the demo did not answer on {url} within {timeout} s")


def _driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1300,1000",
                 f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-')}"):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


def _fetch_png(url: str) -> np.ndarray:
    with urllib.request.urlopen(url, timeout=30) as r:
        with Image.open(io.BytesIO(r.read())) as im:
            assert im.format == "PNG"  # lossless on the way back, so pixels can be compared
            return np.asarray(im.convert("RGB"))


@pytest.mark.timeout(300)
def test_demo_round_trip_in_headless_chromium(tmp_path, tiny_daclip):
    missing = [what for what, ok in (("gradio (pip install 'daclip-toolkit[demo]')", importlib.util.find_spec("gradio")),
                                     ("selenium (pip install 'daclip-toolkit[test]')", importlib.util.find_spec("selenium")),
                                     ("chromium (Debian package chromium)", CHROMIUM),
                                     ("chromedriver (Debian package chromium-driver)", CHROMEDRIVER)) if not ok]
    if missing:
        pytest.skip("the demo test needs " + ", ".join(missing))
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    upload = tmp_path / "upload.png"
    save_image(upload, photo())
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "GRADIO_ANALYTICS_ENABLED": "False", "OMP_NUM_THREADS": "1",
           "DACLIP_OFFLINE": "1", "DACLIP_WEIGHTS_DIR": str(tmp_path / "cache"), "NO_PROXY": "127.0.0.1,localhost",
           "GRADIO_TEMP_DIR": str(tmp_path / "gradio")}
    proc = subprocess.Popen([sys.executable, "-m", "daclip.app", "--port", str(port), "--device", "cpu",
                             "--daclip", str(tiny_daclip), "--daclip-model", "tiny"],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    driver = None
    try:
        url = f"http://127.0.0.1:{port}/"
        _wait_for(url, proc)
        driver = _driver()
        driver.get(url)
        wait = WebDriverWait(driver, 60)
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#input input[type=file]"))).send_keys(str(upload))
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#input img")))
        driver.find_element(By.XPATH, "//*[@id='method']//label[contains(., 'Classical (type-aware)')]").click()
        seen = None
        for task in ("auto (DA-CLIP)", "noisy"):
            driver.find_element(By.XPATH, f"//*[@id='task']//label[contains(., '{task}')]").click()
            driver.find_element(By.ID, "restore").click()
            img = wait.until(lambda d: next((e for e in d.find_elements(By.CSS_SELECTOR, "#output img")
                                             if e.get_attribute("src") and e.get_attribute("src") != seen), None))
            seen = img.get_attribute("src")
            got = _fetch_png(seen)
            api = daclip.restore(upload, method="classical", task=None if task.startswith("auto") else task,
                                 daclip=str(tiny_daclip), daclip_model="tiny", device="cpu")
            assert got.shape == (48, 64, 3)
            assert np.array_equal(got, api.image), task
            # The predicted type is shown beside the result (the top class of the label).
            def top_class(d):
                lines = d.find_element(By.ID, "degradation").text.splitlines()
                return lines[1] if len(lines) > 1 and lines[1] in api.probabilities else None

            assert wait.until(top_class) == api.degradation
        driver.save_screenshot(str(tmp_path / "demo.png"))
    finally:
        if driver is not None:
            driver.quit()
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
