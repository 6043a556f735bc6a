"""A server process killed (SIGKILL) mid-training leaves a consistent state for the next one.

The first process trains with an epoch file every epoch and is killed right after the first file is recorded;
a partially written file (as a kill during a save leaves it) is planted too. The next server marks the job failed,
keeps and lists the finished files, and removes the partial one.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from fastapi.testclient import TestClient
from PIL import Image

from sdapi.app import create_app
from sdapi.settings import Settings

TRAINING_PROCESS = """
import json, sys, time
from pathlib import Path
import torch
torch.set_num_threads(1)
from sdapi.app import build_state
from sdapi.protocol.training import TrainRequest
from sdapi.settings import Settings
state = build_state(Settings(data_dir=Path(sys.argv[1]), cache_dir=Path(sys.argv[2]), num_threads=1))
print(state.training.submit(TrainRequest(**json.loads(sys.argv[3])))["job_id"], flush=True)
time.sleep(600)
"""
JOB = dict(pretrained_model_name_or_path="demo-sd15.safetensors", train_data_dir="datasets/crash", resolution="64,64",
           min_bucket_reso=64, max_bucket_reso=128, output_name="crash", max_train_epochs=500, save_every_n_epochs=1,
           network_dim=2, network_alpha=1, optimizer_type="AdamW")


def recorded_outputs(db: Path, job_id: str) -> list:
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT outputs FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return json.loads(row[0]) if row else []


def test_killed_training_process_leaves_consistent_state(data_dir, fresh_data_dir, settings):
    root = fresh_data_dir(data_dir)
    folder = root / "datasets" / "crash" / "2_crash"
    folder.mkdir(parents=True)
    Image.new("RGB", (64, 64), (10, 200, 90)).save(folder / "a.png")
    process = subprocess.Popen([sys.executable, "-c", TRAINING_PROCESS, str(root), str(settings.cache_dir),
                                json.dumps(JOB)], stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        job_id = process.stdout.readline().strip()
        assert job_id, "the training process did not start"
        db = root / "training" / "jobs.sqlite"
        deadline = time.monotonic() + 120
        while not recorded_outputs(db, job_id):
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    loras_dir = root / "models" / "Lora"
    partial = loras_dir / ".crash-000999.safetensors.12345.tmp"
    partial.write_bytes(b"half a file")

    with TestClient(create_app(Settings(data_dir=root, cache_dir=settings.cache_dir, num_threads=2)),
                    raise_server_exceptions=False) as client:
        view = client.get(f"/lora/train/{job_id}").json()
        assert view["status"] == "failed" and view["finished_at"] is not None
        assert view["error"]["type"] == "ServerRestarted" and "not resumed" in view["error"]["message"]
        assert "training crash" in view["error"]["log_tail"]
        assert view["outputs"], "the file saved before the kill must stay recorded"
        listed = {item["name"] for item in client.get("/sdapi/v1/loras").json()}
        on_disk = sorted(p.name for p in loras_dir.glob("crash*.safetensors"))
        assert sorted(Path(o["path"]).name for o in view["outputs"]) == on_disk
        assert {Path(name).stem for name in on_disk} <= listed
        assert not partial.exists() and not [p for p in loras_dir.iterdir() if p.name.startswith(".")]
        assert client.get(f"/lora/train/{job_id}/loss").status_code == 200
        assert client.post(f"/lora/train/{job_id}/cancel").status_code == 409
        r = client.post("/sdapi/v1/txt2img", json={"prompt": "x <lora:crash:1>", "width": 64, "height": 64,
                                                     "steps": 2})
        assert r.status_code == 200, r.text
