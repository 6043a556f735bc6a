"""A dataset prepared through ``/sdapi/v1/preprocess`` and ``/dataset/tags`` trains in the LoRA job, and the LoRA
records the very tag frequencies ``GET /dataset/tags`` reported.

Its own app over a copy of the data dir: the trained file must not show up in other modules' LoRA lists.
"""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sdapi.app import create_app
from sdapi.settings import Settings
from tests.unit.dataset_helpers import face_picture, solid

pytest.importorskip("sdapi.training.service", reason="the LoRA training job (issue 8) is not in this tree")


def metadata(path: str) -> dict:
    raw = Path(path).read_bytes()
    return json.loads(raw[8:8 + struct.unpack("<Q", raw[:8])[0]])["__metadata__"]


def test_a_prepared_dataset_trains_and_its_tag_frequency_is_recorded(data_dir, fresh_data_dir, settings):
    root = fresh_data_dir(data_dir)
    raw = root / "datasets" / "raw"
    raw.mkdir(parents=True)
    face_picture(128, 64, face_x=90, face_width=40).save(raw / "portrait.png")
    (raw / "portrait.txt").write_text("1girl, long hair, smile", encoding="utf-8")
    solid((200, 30, 30), (64, 64)).save(raw / "red.png")
    (raw / "red.txt").write_text("1girl, long hair, red background", encoding="utf-8")
    app = create_app(Settings(data_dir=root, cache_dir=settings.cache_dir, num_threads=2))
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.post("/sdapi/v1/preprocess", json={
            "process_src": "datasets/raw", "process_dst": "datasets/aki/2_aki", "process_width": 64,
            "process_height": 64, "preprocess_txt_action": "copy", "process_keep_original_size": False,
            "process_flip": True, "process_split": False, "process_caption": False, "process_focal_crop": True})
        assert r.json() == {"info": "preprocess complete"}
        r = client.post("/dataset/tags", json={"path": "datasets/aki", "operations": [
            {"op": "remove", "tags": ["long hair"]}, {"op": "add", "tags": ["akichan"]}]})
        assert r.status_code == 200 and r.json()["changed"] == 4
        frequency = client.get("/dataset/tags", params={"path": "datasets/aki"}).json()["tag_frequency"]
        assert frequency == {"2_aki": {"akichan": 4, "1girl": 4, "smile": 2, "red background": 2}}

        r = client.post("/lora/train", json={
            "pretrained_model_name_or_path": "demo-sd15.safetensors", "train_data_dir": "datasets/aki",
            "resolution": "64,64", "min_bucket_reso": 64, "max_bucket_reso": 128, "output_name": "aki",
            "max_train_epochs": 1, "network_dim": 2, "network_alpha": 1, "keep_tokens": 1, "shuffle_caption": True,
            "seed": 3})
        assert r.status_code == 202, r.text
        job_id = r.json()["job_id"]
        deadline = time.monotonic() + 180
        while (view := client.get(f"/lora/train/{job_id}").json())["status"] not in ("done", "failed", "cancelled"):
            assert time.monotonic() < deadline, view
            time.sleep(0.1)
        assert view["status"] == "done", view.get("error")
    final = metadata(view["outputs"][-1]["path"])
    assert json.loads(final["ss_tag_frequency"]) == frequency
    assert json.loads(final["ss_dataset_dirs"]) == {"2_aki": {"n_repeats": 2, "img_count": 4}}
