"""LoRA training in Ray mode, through HTTP on the Ray front of ``tests/ray/conftest.py``: the job runs as a Ray task
on a CPU of its own beside the two engine replicas, reports to ``/lora/train`` as a single-process server's job
does, writes into the shared ``models/Lora`` (a replica then applies the LoRA), cancels, and generation keeps
running meanwhile.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import requests
from PIL import Image

from tests.ray.helpers import txt2img

ray = pytest.importorskip("ray", reason="Ray Serve is an optional extra: pip install -e '.[ray]' to run tests/ray")

MODEL = "demo-sd15.safetensors"
FINAL = ("done", "failed", "cancelled")
TINY = dict(pretrained_model_name_or_path=MODEL, train_data_dir="datasets/ray-solid", resolution="64,64",
            min_bucket_reso=64, max_bucket_reso=128, max_train_epochs=2, save_every_n_epochs=1, network_dim=4,
            network_alpha=2, unet_lr=1e-2, text_encoder_lr=1e-4, lr_scheduler="constant", shuffle_caption=False,
            seed=7, sample_prompts="solid red --w 64 --h 64 --s 2 --d 3", sample_every_n_epochs=2)
# Far more steps than the test ever lets it run: it is cancelled once generation has been seen to finish beside it.
LONG = dict(TINY, max_train_epochs=2000, save_every_n_epochs=0, sample_prompts=None, sample_every_n_epochs=None)


@pytest.fixture(scope="module")
def dataset(ray_data_dir) -> Path:
    """One solid red picture, two repeats: two steps an epoch."""
    folder = ray_data_dir / "datasets" / "ray-solid" / "2_solid"
    folder.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 64), (220, 20, 20)).save(folder / "img0.png")
    (folder / "img0.txt").write_text("solid red", encoding="utf-8")
    return folder


def submit(url: str, **body) -> str:
    r = requests.post(f"{url}/lora/train", json={k: v for k, v in body.items() if v is not None}, timeout=60)
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "queued"
    return r.json()["job_id"]


def view(url: str, job_id: str) -> dict:
    return requests.get(f"{url}/lora/train/{job_id}", timeout=10).json()


def wait_for(url: str, job_id: str, done=lambda v: v["status"] in FINAL,
             timeout: float = 300.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = view(url, job_id)
        if done(body):
            return body
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {body['status']}: {body.get('progress')}")


@pytest.fixture(scope="module")
def trained(ray_front, dataset):
    """The tiny job, run to its end: two epochs of two steps, an epoch file, the final file, a sample."""
    job_id = submit(ray_front, **TINY, output_name="ray-tiny")
    return wait_for(ray_front, job_id)


def test_a_training_job_reports_as_in_one_process(ray_front, trained):
    assert trained["status"] == "done", trained["error"]
    assert trained["progress"]["step"] == trained["progress"]["total_steps"] == 4
    assert trained["progress"]["epoch"] == 2 and trained["progress"]["fraction"] == 1.0
    losses = requests.get(f"{ray_front}/lora/train/{trained['job_id']}/loss", timeout=10).json()
    assert [row["step"] for row in losses] == [1, 2, 3, 4]
    assert [o["name"] for o in trained["outputs"]] == ["ray-tiny-000001", "ray-tiny"]
    log = requests.get(f"{ray_front}/lora/train/{trained['job_id']}/log", timeout=10).text
    assert "running on Ray node" in log and "job done" in log
    sample = trained["samples"][0]
    r = requests.get(f"{ray_front}/lora/train/{trained['job_id']}/samples/{sample['file']}", timeout=10)
    assert r.status_code == 200 and r.content.startswith(b"\x89PNG")


def test_the_trained_file_is_in_the_shared_lora_folder_and_a_replica_applies_it(ray_front, ray_data_dir, trained):
    assert (ray_data_dir / "models" / "Lora" / "ray-tiny.safetensors").is_file()
    names = [lora["name"] for lora in requests.get(f"{ray_front}/sdapi/v1/loras", timeout=10).json()]
    assert "ray-tiny" in names
    request = {"prompt": "solid red", "seed": 5, "steps": 3, "override_settings": {"sd_model_checkpoint": MODEL}}
    plain = txt2img(ray_front, **request)
    with_lora = txt2img(ray_front, **{**request, "prompt": "solid red <lora:ray-tiny:1>"})
    assert plain.status_code == with_lora.status_code == 200, with_lora.text
    assert "Lora hashes" in with_lora.json()["info"] and "ray-tiny" in with_lora.json()["info"]
    assert with_lora.json()["images"][0] != plain.json()["images"][0]


def test_generation_runs_while_training_and_cancel_stops_the_job(ray_front, dataset):
    job_id = submit(ray_front, **LONG, output_name="ray-long")
    running = wait_for(ray_front, job_id, done=lambda v: v["progress"]["step"] >= 1 or v["status"] in FINAL)
    assert running["status"] == "running", running
    r = txt2img(ray_front, seed=21)
    assert r.status_code == 200, r.text
    # The job is still training after the request finished beside it (it has thousands of steps to go).
    assert view(ray_front, job_id)["status"] == "running"
    cancel = requests.post(f"{ray_front}/lora/train/{job_id}/cancel", json={"save_current": True}, timeout=10)
    assert cancel.status_code == 200 and cancel.json()["cancel_requested"] is True
    ended = wait_for(ray_front, job_id)
    assert ended["status"] == ended["phase"] == "cancelled"
    assert 1 <= ended["progress"]["step"] < ended["progress"]["total_steps"]
    assert [o["name"] for o in ended["outputs"]] == ["ray-long-cancelled"]
    assert requests.post(f"{ray_front}/lora/train/{job_id}/cancel", timeout=10).status_code == 409


@ray.remote(num_cpus=1)
class CpuHolder:
    """Holds the Ray front's spare CPU, so that a training task has to wait for a device."""

    def ready(self) -> bool:
        return True


def test_a_job_waiting_for_a_device_is_cancelled_before_it_starts(ray_front, dataset):
    holder = CpuHolder.remote()
    try:
        assert ray.get(holder.ready.remote(), timeout=60)
        job_id = submit(ray_front, **LONG, output_name="ray-waiting")
        log = lambda: requests.get(f"{ray_front}/lora/train/{job_id}/log", timeout=10).text  # noqa: E731
        deadline = time.monotonic() + 60
        while "waiting for a device on the Ray cluster (1 CPU)" not in log():
            assert time.monotonic() < deadline, log()
            time.sleep(0.1)
        assert view(ray_front, job_id)["status"] == "preparing"
        assert requests.post(f"{ray_front}/lora/train/{job_id}/cancel", timeout=10).status_code == 200
        ended = wait_for(ray_front, job_id)
    finally:
        ray.kill(holder)
    assert ended["status"] == "cancelled" and ended["outputs"] == [] and ended["progress"]["step"] == 0
    assert "running on Ray node" not in log()


def training_worker_pids() -> list[int]:
    """The processes running a training task now (Ray names a worker's process after the task it runs:
    ``sdapi-lora-train-<job>``)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cmdline").read_bytes().startswith(b"ray::sdapi-lora-train-"):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the training worker's process in /proc")
def test_a_job_whose_worker_dies_fails_and_generation_goes_on(ray_front, dataset):
    job_id = submit(ray_front, **LONG, output_name="ray-killed")
    running = wait_for(ray_front, job_id, done=lambda v: v["progress"]["step"] >= 1 or v["status"] in FINAL)
    assert running["status"] == "running", running
    pids = training_worker_pids()
    assert len(pids) == 1, pids
    os.kill(pids[0], signal.SIGKILL)
    ended = wait_for(ray_front, job_id)
    assert ended["status"] == "failed" and ended["error"]["type"] == "ReplicaLost", ended["error"]
    assert "/" not in ended["error"]["message"]  # no server paths
    assert txt2img(ray_front, seed=41).status_code == 200
