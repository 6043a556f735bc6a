"""Real clients against a real server (uvicorn on a loopback port): webuiapi 0.9.17, its recorded requests,
HTTP Basic auth, CORS, and a client that hangs up mid-job."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
import requests
import webuiapi

from sdapi.app import create_app
from sdapi.settings import Settings
from tests.conftest import SHARED
from tests.live_server import serve_in_thread

RECORDED_REQUESTS = Path(__file__).resolve().parents[1] / "fixtures" / "a1111" / "webuiapi-0.9.17.requests.jsonl"


@pytest.fixture(scope="module")
def server(client):
    """A real server over the session's state (models already loaded)."""
    with serve_in_thread(create_app(state=client.app.state.sdapi, load_model=False)) as url:
        yield url


@pytest.fixture()
def api(server):
    parsed = urlparse(server)
    return webuiapi.WebUIApi(host=parsed.hostname, port=parsed.port, sampler="Euler a", steps=3)


@pytest.fixture()
def restore_checkpoint(state):
    checkpoint = state.selected_checkpoint()
    yield
    state.activate(checkpoint)


def test_webuiapi_listings(api):
    assert {"Euler a", "DDIM"} <= set(api.util_get_sampler_names())
    assert any(t.startswith("demo-sd15.safetensors") for t in api.util_get_model_names())
    assert api.get_options()["samples_format"] == "png"
    assert "api_auth" in api.get_cmd_flags()
    assert [u["name"] for u in api.get_upscalers()][:3] == ["None", "Lanczos", "Nearest"]
    assert api.get_scripts() == {
        "txt2img": ["prompt matrix", "prompts from file or textbox", "x/y/z plot"],
        "img2img": ["loopback", "outpainting mk2", "poor man's outpainting", "prompt matrix",
                    "prompts from file or textbox", "sd upscale", "x/y/z plot"]}
    for call in (api.get_hypernetworks, api.get_face_restorers, api.get_realesrgan_models, api.get_prompt_styles,
                 api.get_embeddings, api.get_memory, api.refresh_checkpoints):
        call()


@pytest.fixture()
def demo_extras(state):
    """The demo embedding and VAE in the session's data dir for one test, listed, then gone again."""
    from sdapi.engine.demo_embedding import write_demo_embedding
    from sdapi.engine.demo_vae import write_demo_vae

    paths = [write_demo_embedding(state.settings.data_dir), write_demo_vae(state.settings.data_dir)]
    yield paths
    for path in paths:
        path.unlink()
    state.vaes.refresh()
    state.sort_out_embeddings(state.selected_checkpoint())


def test_webuiapi_lists_embeddings_and_vaes(api, demo_extras):
    assert api.session.post(f"{api.baseurl}/refresh-embeddings").status_code == 200
    assert api.session.post(f"{api.baseurl}/refresh-vae").status_code == 200
    loaded = api.get_embeddings()["loaded"]
    assert loaded["demo-embedding"]["vectors"] == 2 and loaded["demo-embedding"]["shape"] == 32
    assert api.get_sd_vae() == [{"model_name": "demo-vae.safetensors", "filename": str(demo_extras[1].resolve())}]
    result = api.txt2img(prompt="a demo-embedding cat", seed=7, steps=2, width=64, height=64,
                         override_settings={"sd_vae": "demo-vae.safetensors"})
    assert "TI hashes" in result.info["infotexts"][0] and "VAE: demo-vae.safetensors" in result.info["infotexts"][0]


def test_webuiapi_set_model_txt2img_png_info(api, state, restore_checkpoint):
    title = next(t for t in api.util_get_model_names() if t.startswith("demo-sd15-b."))
    api.util_set_model(title)
    current = api.util_get_current_model()
    assert current.startswith("demo-sd15-b.safetensors")
    result = api.txt2img(prompt="cute squirrel", negative_prompt="ugly", seed=1003, cfg_scale=7, steps=3,
                         width=64, height=64)
    assert result.image.size == (64, 64)
    assert result.info["seed"] == 1003 and result.info["sd_model_hash"] in current
    info = api.png_info(result.image)
    assert info.info == result.info["infotexts"][0]


def test_webuiapi_progress_interrupt_skip_wait(api):
    assert api.get_progress()["state"]["job_count"] == 0
    api.interrupt()
    api.skip()
    api.util_wait_for_ready(check_interval=0.1)
    result = api.txt2img(prompt="after interrupt", seed=5, steps=2, width=64, height=64, batch_size=2)
    assert len(result.images) == 2


# -- the recorded webuiapi requests, replayed ----------------------------------------------------------------

# What A1111 v1.2.1 (no extensions) answers, where it is not 200, and why.
# (/sdapi/v1/latent-upscale-modes, added in v1.4, is served: clients list the hires fix modes with it.)
NOT_IN_V121: set[str] = set()  # later endpoints the recording has (/sd-vae, /schedulers) are served


def _recorded() -> list[dict]:
    return [json.loads(line) for line in RECORDED_REQUESTS.read_text().splitlines() if line.strip()]


def _expected_status(req: dict) -> int:
    path = req["path"]
    if path in NOT_IN_V121:
        return 404
    body = req.get("body") or {}
    if body.get("alwayson_scripts"):
        return 422  # "always on script ADetailer not found": the recording stub claimed those extensions
    return 200


@pytest.fixture(scope="module")
def installed_models(settings, tmp_path_factory):
    """What the recorded requests name and A1111 downloads on first use, installed as files a user drops in:
    a tiny Real-ESRGAN x4plus ("R-ESRGAN 4x+", used by the extras requests) and a tiny BLIP captioner
    (interrogate "clip")."""
    import shutil

    import torch

    from tests.api.test_model_files import realesrgan_x2_state_dict
    from tests.unit.dataset_helpers import write_tiny_blip

    upscaler = settings.data_dir / "models" / "RealESRGAN" / "RealESRGAN_x4plus.pth"
    upscaler.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"params_ema": realesrgan_x2_state_dict(in_channels=3)}, upscaler)
    blip = write_tiny_blip(settings.blip_models_dir / "replay")
    yield
    upscaler.unlink()
    shutil.rmtree(blip, ignore_errors=True)


def test_recorded_requests_are_a_copy_of_the_shared_set():
    shared = SHARED / "fixtures/a1111/recorded-requests/webuiapi-0.9.17.requests.jsonl"
    if not shared.exists():
        pytest.skip("shared fixtures not mounted")
    assert RECORDED_REQUESTS.read_bytes() == (
        SHARED / "fixtures/a1111/recorded-requests/webuiapi-0.9.17.requests.jsonl").read_bytes()


@pytest.mark.parametrize("index", range(len(_recorded())))
def test_recorded_webuiapi_request(server, index, restore_checkpoint, installed_models):
    req = _recorded()[index]
    body = req.get("body")
    if req["path"] == "/sdapi/v1/txt2img":
        body = {**body, "steps": min(body.get("steps", 3), 3), "width": 64, "height": 64}
    r = requests.request(req["method"], server + req["path"], json=body, timeout=120)
    assert r.status_code == _expected_status(req), r.text
    payload = r.json()  # well-formed JSON in every case
    if r.status_code >= 400:
        assert "detail" in payload
        if r.status_code != 404:
            assert set(payload) == {"error", "detail", "body", "errors"}
    if req["path"] in ("/sdapi/v1/txt2img", "/sdapi/v1/img2img") and body.get("alwayson_scripts") and \
            not body.get("script_name"):
        # What webuiapi sends to a server whose /scripts lists no extensions: the same body without them.
        clean = {k: v for k, v in body.items() if k != "alwayson_scripts"}
        r = requests.post(server + req["path"], json=clean, timeout=120)
        assert r.status_code == 200, r.text


# -- auth, CORS ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def guarded(client, settings):
    guarded_settings = Settings(data_dir=settings.data_dir, cache_dir=settings.cache_dir, api_auth="alice:s3:cr3t",
                                cors_allow_origins="http://ui.example", num_threads=2)
    app = create_app(guarded_settings, state=client.app.state.sdapi, load_model=False)
    with serve_in_thread(app) as url:
        yield url


def test_api_auth_refuses_without_or_with_wrong_credentials(guarded):
    r = requests.get(guarded + "/sdapi/v1/sd-models", timeout=30)
    assert r.status_code == 401
    assert r.json() == {"error": "HTTPException", "detail": "Not authenticated", "body": "", "errors": ""}
    r = requests.get(guarded + "/sdapi/v1/sd-models", auth=("alice", "wrong"), timeout=30)
    assert r.status_code == 401 and r.json()["detail"] == "Incorrect username or password"
    r = requests.post(guarded + "/sdapi/v1/txt2img", json={"prompt": "x"}, auth=("mallory", "s3:cr3t"), timeout=30)
    assert r.status_code == 401


def test_api_auth_lets_webuiapi_in_and_hides_the_password(guarded):
    parsed = urlparse(guarded)
    api = webuiapi.WebUIApi(host=parsed.hostname, port=parsed.port, username="alice", password="s3:cr3t")
    assert api.get_sd_models()
    flags = api.get_cmd_flags()
    assert flags["api_auth"] == "alice:********" and "s3:cr3t" not in json.dumps(flags)
    assert requests.get(guarded + "/openapi.json", timeout=30).status_code == 200  # docs stay open, as in A1111


def test_cors_allows_the_configured_origin(guarded):
    r = requests.options(guarded + "/sdapi/v1/txt2img", timeout=30, headers={
        "Origin": "http://ui.example", "Access-Control-Request-Method": "POST"})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "http://ui.example"
    r = requests.options(guarded + "/sdapi/v1/txt2img", timeout=30, headers={
        "Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in r.headers


def test_large_responses_are_gzipped_and_timed(server):
    r = requests.get(server + "/sdapi/v1/options", timeout=30)
    assert r.headers.get("content-encoding") == "gzip"
    assert float(r.headers["x-process-time"]) >= 0


# -- a client that hangs up ----------------------------------------------------------------------------------

def _send_and_hang_up(url: str, payload: dict) -> None:
    parsed = urlparse(url)
    body = json.dumps(payload).encode()
    with socket.create_connection((parsed.hostname, parsed.port)) as sock:
        sock.sendall(b"POST /sdapi/v1/txt2img HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        time.sleep(0.5)


def test_a_client_that_hangs_up_leaves_no_ghost_job(server, state):
    long_job = {"prompt": "ghost", "width": 256, "height": 256, "steps": 400}
    _send_and_hang_up(server, long_job)  # running when the client leaves: interrupted
    deadline = time.monotonic() + 30
    while state.queue.busy and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not state.queue.busy
    assert requests.get(server + "/sdapi/v1/progress", timeout=30).json()["state"]["job_count"] == 0


def test_a_queued_job_whose_client_hangs_up_never_runs(server, state):
    import threading

    holder = {}
    first = threading.Thread(target=lambda: holder.setdefault("r", requests.post(
        server + "/sdapi/v1/txt2img", json={"prompt": "first", "width": 256, "height": 256, "steps": 400},
        timeout=120)))
    first.start()
    deadline = time.monotonic() + 30
    while state.control.snapshot()["sampling_step"] < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    _send_and_hang_up(server, {"prompt": "queued ghost", "width": 256, "height": 256, "steps": 400})
    deadline = time.monotonic() + 10
    while state.queue.pending and time.monotonic() < deadline:
        time.sleep(0.02)
    assert state.queue.pending == 0  # dropped from the queue as soon as its client left
    requests.post(server + "/sdapi/v1/interrupt", timeout=30)
    first.join(60)
    assert holder["r"].status_code == 200
    time.sleep(0.3)
    assert not state.queue.busy
