"""End to end: a real ``sdapi serve`` process, started with an A1111 launch line, driven by the notes' script.

The server runs as its own process on a free loopback port (CPU, 2 threads) over a temporary data dir
holding copies of the session's demo checkpoints, so nothing is generated or downloaded at start-up.
``examples/txt2img.py`` (the original notes' script, unchanged but for URL/model/output folder) then runs
as a subprocess against it.

The generation is the notes' payload (30 steps, batch 4 at CFG 15, hires fix x2 with the Latent upscaler) on the
tiny demo UNet, at 128 -> 256 instead of the notes' 512 -> 1024 (``SDAPI_E2E_SIZE``): the full size takes many
minutes on 2 CPU cores.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from PIL import Image

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "examples" / "txt2img.py"
READY_TIMEOUT_S = 60
SCRIPT_TIMEOUT_S = int(os.environ.get("SDAPI_E2E_SCRIPT_TIMEOUT", "600"))
# The notes ask for 512x512 with hires fix x2: batch 4 at 1024x1024 is many minutes on 2 CPU cores even for the
# tiny UNet (attention over 128x128 latents), so CI runs the same payload at 128 -> 256.
NOTES_SIZE = int(os.environ.get("SDAPI_E2E_SIZE", "128"))
# The user's A1111 launch line; every flag must be accepted.
A1111_FLAGS = ("--listen", "--xformers", "--enable-insecure-extension-access", "--skip-install", "--api")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1", **extra)
    env.pop("SDAPI_DATA_DIR", None)
    # On a shared 2-core runner, OpenMP's default spin-waiting makes torch's 2 threads crawl whenever anything
    # else runs (the notes' request took 24 s idle, 2-3 min with other jobs); passive waiting keeps it ~30 s.
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return env


def _log_tail(path: Path, chars: int = 4000) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")[-chars:]
    except OSError:
        return "<no server log>"


def _wait_ready(proc: subprocess.Popen, url: str, log_path: Path) -> None:
    """Poll ``GET /sdapi/v1/sd-models`` until it answers 200, the process dies, or the timeout passes."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode} before it was ready:\n{_log_tail(log_path)}")
        try:
            if requests.get(f"{url}/sdapi/v1/sd-models", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.25)
    pytest.fail(f"server not ready after {READY_TIMEOUT_S} s:\n{_log_tail(log_path)}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


@pytest.fixture(scope="module")
def server(data_dir, fresh_data_dir, tmp_path_factory):
    """A real server process; yields ``(base_url, log_path)`` and always kills the process afterwards."""
    root = fresh_data_dir(data_dir)
    cache = tmp_path_factory.mktemp("sdapi-e2e-cache")
    port = _free_port()
    log_path = tmp_path_factory.mktemp("sdapi-e2e-log") / "server.log"
    cmd = [sys.executable, "-m", "sdapi", "serve", "--data-dir", str(root), "--cache-dir", str(cache),
           "--port", str(port), "--threads", "2", *A1111_FLAGS]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=_child_env(), stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_ready(proc, url, log_path)
        yield url, log_path
    finally:
        _stop(proc)


def test_launch_line_accepted(server):
    url, log_path = server
    models = requests.get(f"{url}/sdapi/v1/sd-models", timeout=10).json()
    assert "demo-sd15.safetensors" in {m["title"].split(" [")[0] for m in models}
    assert "Accepted A1111 flags with no effect here: --api --skip-install --enable-insecure-extension-access" \
        in _log_tail(log_path, 100_000)


def test_error_branch_prints_httpexception(server):
    """The notes' error branch (``print(f"{r['error']}:{r['errors']}")``) on an unknown sampler."""
    url, _ = server
    payload = {"prompt": "xxx", "sampler_index": "nope", "steps": 30, "width": 512, "height": 512,
               "override_settings": {"sd_model_checkpoint": "demo-sd15.safetensors"}}
    response = requests.post(url=f"{url}/sdapi/v1/txt2img", json=payload, timeout=60)
    r = response.json()
    assert response.status_code == 404, r
    assert "error" in r.keys()
    assert f"{r['error']}:{r['errors']}" == "HTTPException:"
    assert r["detail"] == "Sampler not found"


def test_notes_script_writes_four_pngs(server, tmp_path):
    url, log_path = server
    out = tmp_path / "test"
    started = time.monotonic()
    try:
        done = subprocess.run([sys.executable, str(SCRIPT)], cwd=tmp_path, capture_output=True, text=True,
                              timeout=SCRIPT_TIMEOUT_S,
                              env=_child_env(SDAPI_URL=url, SDAPI_OUT=str(out), SDAPI_SIZE=str(NOTES_SIZE)))
    except subprocess.TimeoutExpired:
        pytest.fail(f"examples/txt2img.py still running after {SCRIPT_TIMEOUT_S} s:\n{_log_tail(log_path)}")
    elapsed = time.monotonic() - started
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{_log_tail(log_path)}"
    assert done.stdout.strip().splitlines()[-1] == "4", f"{done.stdout}\n{_log_tail(log_path)}"
    files = sorted(out.iterdir())
    assert [f.name for f in files] == ["0.png", "1.png", "2.png", "3.png"]
    seeds = set()
    for f in files:
        data = f.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        Image.open(io.BytesIO(data)).verify()
        image = Image.open(io.BytesIO(data))
        image.load()
        assert image.format == "PNG" and image.mode == "RGB"
        assert image.size == (2 * NOTES_SIZE, 2 * NOTES_SIZE)  # the notes' hires fix, hr_scale 2
        parameters = image.info.get("parameters")
        assert parameters, f"{f.name} has no 'parameters' text chunk"
        assert "Sampler: DPM++ 2M Karras" in parameters
        assert "Clip skip: 2" in parameters
        assert "Steps: 30" in parameters and "CFG scale: 15.0" in parameters
        assert "Model: demo-sd15," in parameters
        seeds.add(parameters.split("Seed: ")[1].split(",")[0])
    assert len(seeds) == 4, "each image of the batch has its own seed"
    print(f"examples/txt2img.py took {elapsed:.1f} s")
