"""End to end in headless Chromium: `python -m web` serves a tiny fractal checkpoint; the page
uploads a MIDI, generates, shows the piano roll, edits a note, inpaints a selected range (the
rest stays), plays, and downloads a MIDI that parses."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time

import httpx
import pytest
import symusic

from tests.spine import ROOT
from tests.web.conftest import chord_midi

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--window-size=1400,1100",
         "--autoplay-policy=no-user-gesture-required"]
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="headless Chromium + chromedriver not "
                                "installed: run `bash web/browser_setup.sh` (Debian chromium chromium-driver)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(fractal_ckpt, tmp_path):
    """The studio as a user starts it: `python -m web ckpt_path=...` (the real Hydra entry point)."""
    port, log_path = free_port(), tmp_path / "server.log"
    url = f"http://127.0.0.1:{port}"
    with log_path.open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "web", f"ckpt_path={fractal_ckpt}", f"port={port}",
                                 f"hydra.run.dir={tmp_path / 'run'}", f"jobs.root={tmp_path / 'jobs'}",
                                 "log_level=warning"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, "OMP_NUM_THREADS": "1"})
        try:
            deadline = time.monotonic() + 60
            while not _answers(url):
                if proc.poll() is not None:
                    raise AssertionError(f"python -m web exited {proc.returncode}:\n{log_path.read_text()}")
                if time.monotonic() > deadline:
                    raise AssertionError(f"the studio did not answer within 60 s:\n{log_path.read_text()}")
                time.sleep(0.2)
            yield url
        finally:
            proc.terminate()
            proc.wait(10)


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/models", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def browser(tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.downloads = downloads
    yield driver
    driver.quit()


def wait_for(driver, condition, timeout: float = 30.0, what: str = ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(condition)
        if value:
            return value
        time.sleep(0.1)
    status = driver.execute_script("return document.getElementById('status').textContent")
    raise AssertionError(f"timed out waiting for {what or condition} (status: {status})")


def click_at(driver, canvas, points: list[tuple[float, float]]) -> None:
    """Press at the first canvas pixel, move through the others, release (pixels -> CSS offsets
    from the element's centre, as Selenium wants them)."""
    from selenium.webdriver import ActionChains

    scale = canvas.size["width"] / int(canvas.get_attribute("width"))
    offsets = [(int(x * scale - canvas.size["width"] / 2), int(y * scale - canvas.size["height"] / 2))
               for x, y in points]
    chain = ActionChains(driver).move_to_element_with_offset(canvas, *offsets[0]).click_and_hold()
    for dx, dy in offsets[1:]:
        chain = chain.move_to_element_with_offset(canvas, dx, dy)
    chain.release().perform()


def point(driver, step: float, pitch: int) -> tuple[float, float]:
    return tuple(driver.execute_script("return rollView.pointOf(arguments[0], arguments[1])", step, pitch))


def test_upload_generate_inpaint_download_in_chromium(server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    driver = browser
    driver.get(server)
    wait_for(driver, "return document.querySelectorAll('#model option').length", what="the model list")
    upload = chord_midi(tmp_path / "chords.mid")
    driver.find_element(By.ID, "midi-file").send_keys(str(upload))
    Select(driver.find_element(By.ID, "midi-use")).select_by_value("chroma")
    driver.find_element(By.ID, "seed").clear()
    driver.find_element(By.ID, "seed").send_keys("5")
    driver.find_element(By.ID, "generate").click()
    wait_for(driver, "return document.body.dataset.state === 'done'", what="the first job")
    canvas = driver.find_element(By.ID, "roll")
    first = canvas.get_attribute("data-job")
    shown = int(canvas.get_attribute("data-notes"))
    before = httpx.get(f"{server}/jobs/{first}/roll").json()
    assert shown == len(before["notes"]) > 0, "the piano roll shows the result's notes"
    assert httpx.get(f"{server}/jobs/{first}").json()["request"]["upload"] == "chords.mid"
    assert len(driver.find_elements(By.CSS_SELECTOR, "#layer-toggles input")) == 7  # 3 curves, 3 levels, notes
    pixels = driver.execute_script(
        "const c = document.getElementById('roll'), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        "let lit = 0; for (let i = 0; i < d.length; i += 4) if (d[i] + d[i + 1] + d[i + 2] > 200) lit++; return lit;")
    assert pixels > 500, "the canvas is drawn"

    # edit: add a note in bar 1 (outside the range to inpaint), then select beats 5-6 and inpaint
    driver.find_element(By.ID, "edit-mode").click()
    pitches = sorted(p for _, p, _, _ in before["notes"])
    pitch = pitches[len(pitches) // 2]
    covered = {s + k for s, p, d, _ in before["notes"] if p == pitch for k in range(d)}
    target = (next(s for s in range(16) if s not in covered), pitch)
    click_at(driver, canvas, [point(driver, *target)])
    assert int(canvas.get_attribute("data-notes")) == shown + 1, "a click in edit mode adds a note"
    driver.find_element(By.ID, "edit-mode").click()
    click_at(driver, canvas, [point(driver, 16, pitch), point(driver, 20, pitch), point(driver, 23, pitch)])
    selection = driver.execute_script("return rollView.view.selection")
    assert selection == {"start": 16, "end": 24}
    inpaint = driver.find_element(By.ID, "inpaint")
    assert inpaint.is_enabled()
    inpaint.click()
    second = wait_for(driver, "const j = document.getElementById('roll').dataset.job;"
                              f"return document.body.dataset.state === 'done' && j !== '{first}' && j", what="inpainting")
    after = httpx.get(f"{server}/jobs/{second}/roll").json()
    assert after["changed"]["start_step"] == 16 and after["changed"]["end_step"] == 24
    def kept(notes):
        return sorted(tuple(n[:2]) for n in notes if not 16 <= n[0] < 24)

    assert kept(after["notes"]) == sorted(kept(before["notes"]) + [target])  # the rest, and the edit, stay
    assert int(canvas.get_attribute("data-notes")) == len(after["notes"])

    if os.environ.get("MUSICPLAT_WEB_SCREENSHOT"):  # docs/web.md's picture: the page after inpainting
        driver.find_element(By.CSS_SELECTOR, "#layer-toggles input[data-layer='level:0']").click()
        click_at(driver, canvas, [point(driver, 16, pitch), point(driver, 23, pitch)])
        driver.save_screenshot(os.environ["MUSICPLAT_WEB_SCREENSHOT"])
    driver.find_element(By.ID, "play").click()
    wait_for(driver, "return rollView.view.cursor !== null", 5, "the playback cursor")
    driver.find_element(By.ID, "stop").click()

    driver.find_element(By.ID, "download").click()
    deadline, files = time.monotonic() + 15, []
    while time.monotonic() < deadline and not files:
        files = [p for p in driver.downloads.iterdir() if p.suffix == ".mid"]
        time.sleep(0.1)
    assert files, f"no MIDI downloaded into {driver.downloads}: {list(driver.downloads.iterdir())}"
    score = symusic.Score(str(files[0]))
    assert files[0].name == f"musicplat_{second[:8]}.mid" and score.note_num() == len(after["notes"])
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE" and "favicon" not in e["message"]]
    assert not errors, errors
