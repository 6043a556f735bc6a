"""The built-in page, end to end: Debian's headless Chromium, driven by Playwright, uses ``/ui`` of a real
``sdapi serve`` process on the demo checkpoints, as a person would.

Every request the browser sends goes through the docs test's router, which lets loopback requests through and
aborts the rest, so the page is checked to work offline. Screenshots go to ``$SDAPI_ARTIFACTS/ui`` (else a
temporary folder, printed). Nothing here waits for a fixed short time: every wait is for something the page
shows, with a timeout long enough for a slow shared runner.

The tests run in file order on one server: the training test leaves the LoRA the generation test picks.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from tests.e2e.test_docs_browser import CHROMIUM, CHROMIUM_ARGS, PageVisit
from tests.e2e.test_real_server import REPO, _child_env, _free_port, _log_tail, _stop, _wait_ready
from tests.live_server import serve_in_thread

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium "
                                "(apt-get install chromium; .ci/run installs it)")

WAIT_MS = 600_000  # generous: two shared CPU cores may be busy with other jobs
JOB_TIMEOUT_S = 600
# Long enough that the test always sees it running and interrupts it, however fast the machine.
LONG_STEPS = 10_000
PROMPT = "a red circle on a blue background"
DATASET = Path("datasets") / "uitest"
FINAL = ("done", "failed", "cancelled")


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    root = os.environ.get("SDAPI_ARTIFACTS")
    folder = Path(root) / "ui" if root else tmp_path_factory.mktemp("ui-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots of the page: {folder}")
    return folder


def write_dataset(root: Path) -> None:
    """Two solid-colour pictures with captions in kohya's ``<repeats>_<name>`` layout."""
    folder = root / DATASET / "1_uitest"
    folder.mkdir(parents=True)
    for colour in ("red", "blue"):
        Image.new("RGB", (64, 64), colour).save(folder / f"{colour}.png")
        (folder / f"{colour}.txt").write_text(f"uitest, {colour}", encoding="utf-8")


@pytest.fixture(scope="module")
def server(data_dir, fresh_data_dir, tmp_path_factory):
    """A real server process over a copy of the demo checkpoints and a tiny dataset; yields its URL."""
    root = fresh_data_dir(data_dir)
    write_dataset(root)
    port = _free_port()
    log_path = tmp_path_factory.mktemp("sdapi-ui-log") / "server.log"
    cmd = [sys.executable, "-m", "sdapi", "serve", "--data-dir", str(root), "--port", str(port), "--threads", "2",
           "--cache-dir", str(tmp_path_factory.mktemp("sdapi-ui-cache")), "--max-steps", str(LONG_STEPS)]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=_child_env(), stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_ready(proc, url, log_path)
        yield url
    finally:
        _stop(proc)
        print(f"server log tail:\n{_log_tail(log_path, 2000)}")


@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture()
def visit(chromium, server):
    """The page opened in a fresh browser context; afterwards, it must have loaded nothing from elsewhere and
    raised no script error."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page_visit = PageVisit(context, server)
    page_visit.page.set_default_timeout(WAIT_MS)
    yield page_visit
    try:
        assert page_visit.external_requests() == [], "the page loaded something from outside this machine"
        assert page_visit.script_errors == []
    finally:
        context.close()


def open_page(visit: PageVisit, path: str = "/ui") -> None:
    visit.open(path)
    visit.page.wait_for_selector("body[data-ready=true]")
    assert not visit.page.locator("#error").is_visible(), visit.page.locator("#error").inner_text()


def fill_generate(page, prompt: str, steps: int, seed: int = -1, batch_size: int = 1) -> None:
    page.fill("textarea[name=prompt]", prompt)
    page.fill("input[name=steps]", str(steps))
    page.fill("input[name=width]", "64")
    page.fill("input[name=height]", "64")
    page.fill("input[name=seed]", str(seed))
    page.fill("input[name=batch_size]", str(batch_size))
    page.select_option("select[name=sampler_name]", "Euler a")
    page.select_option("select[name=sd_model_checkpoint]", label=checkpoint_title(page, "demo-sd15.safetensors"))


def checkpoint_title(page, filename: str) -> str:
    titles = page.locator("select[name=sd_model_checkpoint] option").all_inner_texts()
    return next(t for t in titles if t.startswith(filename))


def pixels(data_url_or_b64: str) -> np.ndarray:
    data = base64.b64decode(data_url_or_b64.split(",", 1)[-1])
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def wait_for_job(url: str, job_id: str, statuses=FINAL) -> dict:
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while (view := requests.get(f"{url}/lora/train/{job_id}", timeout=30).json())["status"] not in statuses:
        assert time.monotonic() < deadline, f"job {job_id} still {view['status']} after {JOB_TIMEOUT_S} s"
        time.sleep(0.5)
    return view


# -- the tests, in the order they run ----------------------------------------------------------------------------

@pytest.mark.slow
def test_page_fills_its_lists_from_the_api(visit, server):
    open_page(visit, "/")
    page = visit.page
    samplers = [s["name"] for s in requests.get(f"{server}/sdapi/v1/samplers", timeout=30).json()]
    assert page.locator("select[name=sampler_name] option").all_inner_texts() == samplers
    titles = [m["title"] for m in requests.get(f"{server}/sdapi/v1/sd-models", timeout=30).json()]
    assert page.locator("select[name=sd_model_checkpoint] option").all_inner_texts() == titles
    assert "demo-lora" in page.locator("#lora option").all_inner_texts()
    axis_types = page.locator("select[name=x_type] option").all_inner_texts()
    assert {"Seed", "CFG Scale", "Prompt S/R"} <= set(axis_types)
    assert page.locator("select[name=x_type]").input_value() == "Seed"


@pytest.mark.slow
def test_training_monitor_draws_loss_shows_samples_and_cancels(visit, server, artifacts):
    base = {"pretrained_model_name_or_path": "demo-sd15.safetensors", "train_data_dir": str(DATASET),
            "resolution": "64,64", "enable_bucket": False}
    short = requests.post(f"{server}/lora/train", timeout=60, json={
        **base, "output_name": "uitest", "max_train_epochs": 2, "save_every_n_epochs": 1,
        "sample_prompts": "uitest, red --w 64 --h 64 --s 4", "sample_every_n_epochs": 1}).json()
    # So long that it is still running when the test cancels it, on any machine.
    long = requests.post(f"{server}/lora/train", timeout=60, json={
        **base, "output_name": "uitest-long", "max_train_steps": 1_000_000, "save_every_n_epochs": 0}).json()
    assert short["status"] == "queued" and long["status"] == "queued", (short, long)

    open_page(visit, "/ui#training")
    page = visit.page
    page.click(f"#jobs tr[data-job='{short['job_id']}']")
    page.wait_for_function("document.querySelector('#job-status').textContent.startsWith('done')")
    assert page.locator("#job-title").inner_text().startswith("uitest (")
    total = wait_for_job(server, short["job_id"])["progress"]["total_steps"]
    assert total == 4
    page.wait_for_function(f"document.querySelector('#loss-chart').dataset.points === '{total}'")
    loss_points = page.locator("#loss-chart polyline.loss").get_attribute("points").split()
    assert len(loss_points) == total and len(set(loss_points)) == total  # four distinct points drawn
    assert page.locator("#loss-chart polyline.average").count() == 1
    page.wait_for_function("document.querySelectorAll('#job-samples img').length === 2 && "
                           "[...document.querySelectorAll('#job-samples img')].every(i => i.naturalWidth === 64)")
    assert page.locator("#job-samples figcaption").all_inner_texts()[0].startswith("epoch 1")
    assert page.locator("#job-cancel").is_disabled()
    page.screenshot(path=str(artifacts / "training-done.png"), full_page=True)

    page.click(f"#jobs tr[data-job='{long['job_id']}']")
    # The curve grows while the job runs; Cancel stops it at its next step.
    page.wait_for_function("Number(document.querySelector('#loss-chart').dataset.points) >= 2")
    page.screenshot(path=str(artifacts / "training-running.png"), full_page=True)
    page.click("#job-cancel")
    page.wait_for_function("document.querySelector('#job-status').textContent.startsWith('cancelled')")
    assert wait_for_job(server, long["job_id"])["status"] == "cancelled"
    assert page.locator("#job-cancel").is_disabled()
    page.screenshot(path=str(artifacts / "training-cancelled.png"), full_page=True)


@pytest.mark.slow
def test_progress_bar_and_preview_move_and_interrupt_stops(visit, artifacts):
    open_page(visit)
    page = visit.page
    fill_generate(page, PROMPT, LONG_STEPS)
    page.click("#generate-button")
    page.wait_for_function("document.querySelector('#progress').value > 0")
    first = page.eval_on_selector("#progress", "bar => bar.value")
    page.wait_for_function(f"document.querySelector('#progress').value > {first}")
    assert "step " in page.inner_text("#progress-text")
    page.wait_for_function("document.querySelector('#preview').src.startsWith('data:image/')")
    assert page.locator("#preview").is_visible()
    page.screenshot(path=str(artifacts / "progress.png"), full_page=True)

    page.click("#interrupt")
    # An interrupted job still answers with the image it had: it lands in the gallery.
    page.wait_for_selector("#gallery .card img")
    assert page.inner_text("#progress-text").startswith("Finished")
    assert f"Steps: {LONG_STEPS}" in page.locator("#gallery .card .infotext").first.inner_text()
    assert page.locator("#preview").is_hidden() and page.locator("#interrupt").is_disabled()


@pytest.mark.slow
def test_generation_lands_in_gallery_and_its_payload_makes_it_again(visit, server, artifacts):
    open_page(visit)
    page = visit.page
    fill_generate(page, PROMPT, steps=8)
    # The LoRA the training test wrote is listed; "Add to prompt" puts its tag at the prompt's end.
    page.select_option("#lora", "uitest")
    page.click("#add-lora")
    assert page.input_value("textarea[name=prompt]") == f"{PROMPT} <lora:uitest:1>"
    page.click("#generate-button")
    card = page.locator("#gallery .card").first
    card.locator("img").wait_for()
    infotext = card.locator(".infotext").inner_text()
    assert infotext.startswith(f"{PROMPT} <lora:uitest:1>\nSteps: 8, Sampler: Euler a, CFG scale: 7.0, Seed: ")
    assert "Size: 64x64" in infotext and "Model: demo-sd15" in infotext and 'Lora hashes: "uitest: ' in infotext
    seed = int(infotext.split("Seed: ")[1].split(",")[0])

    card.locator("button.copy").click()
    payload = json.loads(card.locator("textarea.payload").input_value())
    assert payload["seed"] == seed != -1  # the seed the image was made with, not the form's -1
    assert payload["prompt"] == f"{PROMPT} <lora:uitest:1>"
    assert (payload["steps"], payload["width"], payload["height"], payload["sampler_name"]) == (8, 64, 64, "Euler a")
    assert payload["override_settings"]["sd_model_checkpoint"].startswith("demo-sd15.safetensors")
    page.screenshot(path=str(artifacts / "gallery.png"), full_page=True)

    again = requests.post(f"{server}/sdapi/v1/txt2img", json=payload, timeout=JOB_TIMEOUT_S)
    assert again.status_code == 200, again.text
    assert json.loads(again.json()["info"])["infotexts"][0] == infotext
    assert np.array_equal(pixels(again.json()["images"][0]), pixels(card.locator("img").get_attribute("src")))


@pytest.mark.slow
def test_xyz_viewer_shows_the_grid_and_each_cell(visit, artifacts):
    open_page(visit)
    page = visit.page
    fill_generate(page, PROMPT, steps=4, seed=7)
    page.click("nav a[data-tab=xyz]")
    page.select_option("select[name=x_type]", "Prompt S/R")
    page.fill("input[name=x_values]", "red, green")
    page.select_option("select[name=y_type]", "CFG Scale")
    page.fill("input[name=y_values]", "3, 7")
    page.click("#xyz-button")
    page.wait_for_selector("#xyz-result .card.grid img")
    cells = page.locator("#xyz-result .cell")
    assert cells.count() == 4
    texts = cells.locator(".infotext").all_inner_texts()
    assert [t.split("\n")[0] for t in texts] == [PROMPT, PROMPT.replace("red", "green")] * 2  # x fastest
    assert ["CFG scale: 3.0" in t for t in texts] == [True, True, False, False]
    assert all("Seed: 7," in t for t in texts)
    grid_width = page.eval_on_selector("#xyz-result .card.grid img", "img => img.naturalWidth")
    assert grid_width > 2 * 64  # two columns and the row legend
    assert "Script: X/Y/Z plot" in page.locator("#xyz-result .card.grid .infotext").inner_text()
    page.screenshot(path=str(artifacts / "xyz.png"), full_page=True)


def test_api_auth_guards_the_page_in_a_browser(chromium, tmp_path):
    """With --api-auth the browser is challenged and, with nothing to answer, gets no page; with credentials the
    page and its API calls work. (An in-thread server with no checkpoint: the page's lists need none.)"""
    from playwright.sync_api import Error as PlaywrightError

    from sdapi.app import create_app
    from sdapi.settings import Settings

    guarded = Settings(data_dir=tmp_path, cache_dir=tmp_path / "cache", demo_when_empty=False,
                       api_auth="alice:s3:cr3t")
    with serve_in_thread(create_app(guarded, load_model=False)) as url:
        anonymous = chromium.new_context()
        try:
            # Headless Chromium cannot ask anyone for a password: it fails the navigation instead of showing 401.
            try:
                status = anonymous.new_page().goto(url + "/ui").status
            except PlaywrightError as exc:
                status = 401 if "ERR_INVALID_AUTH_CREDENTIALS" in str(exc) else str(exc)
            assert status == 401
        finally:
            anonymous.close()
        context = chromium.new_context(http_credentials={"username": "alice", "password": "s3:cr3t"})
        try:
            page_visit = PageVisit(context, url)
            open_page(page_visit)
            assert page_visit.page.locator("select[name=sampler_name] option").count() > 10
            assert page_visit.script_errors == [] and page_visit.external_requests() == []
        finally:
            context.close()
