"""LoRA training over HTTP on the demo checkpoint: jobs, files, validation, cancel, samples, TensorBoard, shim.

One app over its own copy of the data dir (trained files must not show up in other modules' LoRA lists). The
fitted dataset is one solid-colour 64x64 image, which a LoRA can fit: the loss must go down.
"""

from __future__ import annotations

import hashlib
import json
import struct
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from sdapi.app import create_app
from sdapi.engine.lora_format import KOHYA_SUFFIXES, split_key
from sdapi.engine.lora_targets import target_table
from sdapi.settings import Settings
from tests.conftest import decode_png

MODEL = "demo-sd15.safetensors"
FITTED = dict(
    pretrained_model_name_or_path=MODEL, train_data_dir="datasets/solid", resolution="64,64", min_bucket_reso=64,
    max_bucket_reso=128, output_name="solid", max_train_epochs=3, save_every_n_epochs=1, network_dim=4,
    network_alpha=2, conv_dim=2, conv_alpha=1, unet_lr=1e-2, text_encoder_lr=1e-4, lr_scheduler="constant",
    shuffle_caption=False, seed=7, sample_prompts="solid red --w 64 --h 64 --s 2 --d 3", sample_every_n_epochs=1,
)
LONG = dict(pretrained_model_name_or_path=MODEL, train_data_dir="datasets/two", resolution="64,64",
            min_bucket_reso=64, max_bucket_reso=128, max_train_epochs=200, save_every_n_epochs=0, network_dim=2,
            network_alpha=1, optimizer_type="Lion", lr_warmup_steps=0.05, min_snr_gamma=5, noise_offset=0.1,
            flip_aug=True, keep_tokens=1, caption_tag_dropout_rate=0.3, caption_dropout_rate=0.1)


def write_images(folder: Path, colours: list[tuple[int, int, int]], caption: str, size=(64, 64)) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, colour in enumerate(colours):
        Image.new("RGB", size, colour).save(folder / f"img{i}.png")
        (folder / f"img{i}.txt").write_text(caption, encoding="utf-8")


@pytest.fixture(scope="module")
def train_client(data_dir, fresh_data_dir, settings):
    root = fresh_data_dir(data_dir)
    write_images(root / "datasets" / "solid" / "13_solid", [(220, 20, 20)], "solid red")
    write_images(root / "datasets" / "two" / "1_pair", [(20, 220, 20), (20, 20, 220)], "pair, green, blue")
    write_images(root / "datasets" / "reg" / "1_thing", [(128, 128, 128)], "thing")
    with TestClient(create_app(Settings(data_dir=root, cache_dir=settings.cache_dir, num_threads=2)),
                    raise_server_exceptions=False) as client:
        yield client


def wait_for(client, job_id: str, statuses=("done", "failed", "cancelled"), timeout=120.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = client.get(f"/lora/train/{job_id}").json()
        if view["status"] in statuses:
            return view
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still {view['status']}")


def submit(client, **body) -> str:
    r = client.post("/lora/train", json=body)
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "queued"
    return r.json()["job_id"]


@pytest.fixture(scope="module")
def fitted(train_client):
    """The full job: 3 epochs of 13 steps, an epoch file after epochs 1 and 2, the final file, samples."""
    job_id = submit(train_client, **FITTED)
    steps_seen = set()
    deadline = time.monotonic() + 120
    while (view := train_client.get(f"/lora/train/{job_id}").json())["status"] not in ("done", "failed"):
        steps_seen.add(view["progress"]["step"])
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert view["status"] == "done", view["error"]
    return view, steps_seen


def read_file(path: str) -> tuple[dict, dict, bytes]:
    from safetensors.torch import load_file

    raw = Path(path).read_bytes()
    header = json.loads(raw[8:8 + struct.unpack("<Q", raw[:8])[0]])
    return load_file(path), header["__metadata__"], raw


def pixels(body: dict) -> np.ndarray:
    return np.asarray(decode_png(body["images"][0])).astype(int)


def txt2img(client, prompt: str) -> dict:
    r = client.post("/sdapi/v1/txt2img", json={"prompt": prompt, "width": 64, "height": 64, "steps": 3, "seed": 5,
                                                "override_settings": {"sd_model_checkpoint": MODEL}})
    assert r.status_code == 200, r.text
    return r.json()


# -- the full job -------------------------------------------------------------------------------------------


def test_job_progresses_and_records_loss(train_client, fitted):
    view, steps_seen = fitted
    assert view["progress"]["step"] == view["progress"]["total_steps"] == 39
    assert view["progress"]["epoch"] == 3 and view["progress"]["fraction"] == 1.0
    assert len(steps_seen - {0, 39}) > 0, "no intermediate progress was ever visible"
    assert view["dataset"]["steps_per_epoch"] == 13 and view["dataset"]["dirs"] == {
        "13_solid": {"n_repeats": 13, "img_count": 1}}
    losses = train_client.get(f"/lora/train/{view['job_id']}/loss").json()
    assert [row["step"] for row in losses] == list(range(1, 40))
    assert train_client.get(f"/lora/train/{view['job_id']}/loss?since_step=30").json() == losses[30:]
    first, last = np.mean([r["loss"] for r in losses[:10]]), np.mean([r["loss"] for r in losses[-10:]])
    assert last < 0.85 * first, (first, last)
    assert view["loss"]["average"] == pytest.approx(np.mean([r["loss"] for r in losses[-13:]]))
    assert losses[0]["lr_unet"] == pytest.approx(1e-2) and losses[0]["lr_te"] == pytest.approx(1e-4)
    log = train_client.get(f"/lora/train/{view['job_id']}/log").text
    assert "AdamW8bit needs bitsandbytes" in log and "job done" in log
    assert view["phase"] == "done"
    assert [job["phase"] for job in train_client.get("/lora/train").json()["jobs"] if job["job_id"] == view["job_id"]] \
        == ["done"]


def test_epoch_files_and_final_file_are_listed(train_client, fitted):
    view, _ = fitted
    names = [o["name"] for o in view["outputs"]]
    assert names == ["solid-000001", "solid-000002", "solid"]
    listed = {item["name"]: item for item in train_client.get("/sdapi/v1/loras").json()}
    loras_dir = train_client.app.state.sdapi.settings.loras_dir
    for output in view["outputs"]:
        assert Path(output["path"]).parent == loras_dir
        assert listed[output["name"]]["alias"] == "solid"
        assert listed[output["name"]]["metadata"]["ss_epoch"] == str(output["epoch"])
    assert not [p for p in loras_dir.iterdir() if p.name.startswith(".")]


def test_trained_lora_changes_the_image_through_the_prompt(train_client, fitted):
    plain = pixels(txt2img(train_client, "solid red"))
    zero = pixels(txt2img(train_client, "solid red <lora:solid:0>"))
    one = pixels(txt2img(train_client, "solid red <lora:solid:1>"))
    epoch1 = pixels(txt2img(train_client, "solid red <lora:solid-000001:1>"))
    assert np.array_equal(zero, plain)
    assert np.abs(one - plain).mean() > 1 and np.abs(epoch1 - one).mean() > 0.1


def test_samples_are_drawn_and_served(train_client, fitted):
    view, _ = fitted
    assert [s["epoch"] for s in view["samples"]] == [1, 2, 3]
    sample = view["samples"][-1]
    assert sample["prompt"] == "solid red" and sample["seed"] == 3
    r = train_client.get(sample["url"])
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert Image.open(__import__("io").BytesIO(r.content)).size == (64, 64)
    assert train_client.get(f"/lora/train/{view['job_id']}/samples/..%2Fjobs.sqlite").status_code == 404


def test_tensorboard_events_in_kohyas_layout(train_client, fitted):
    view, _ = fitted
    job_dir = train_client.app.state.sdapi.training.job_dir(view["job_id"])
    (events,) = job_dir.glob("logs/*/network_train/events.out.tfevents.*")
    raw, tags, offset, records = events.read_bytes(), [], 0, 0
    while offset < len(raw):
        (length,) = struct.unpack("<Q", raw[offset:offset + 8])
        data = raw[offset + 12:offset + 12 + length]
        tags += [t for t in (b"loss/current", b"loss/average", b"loss/epoch_average", b"lr/unet", b"lr/textencoder")
                 if t in data]
        offset += 16 + length
        records += 1
    assert b"brain.Event:2" in raw[:64] and records == 1 + 39 + 3
    assert tags.count(b"loss/current") == 39 and tags.count(b"loss/epoch_average") == 3


# -- the file contract --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def final_file(fitted):
    view, _ = fitted
    return read_file(view["outputs"][-1]["path"]), view


def test_only_kohya_keys_with_conv_shapes_and_alpha(final_file):
    (tensors, metadata, _), _ = final_file
    from sdapi.engine.demo_models import build_tiny_sd15_pipeline

    targets = target_table(build_tiny_sd15_pipeline(0))
    layers = {split_key(k)[0] for k in tensors}
    assert {split_key(k)[1] for k in tensors} == KOHYA_SUFFIXES
    assert all(name.startswith(("lora_unet_", "lora_te_text_model_")) for name in layers)
    locon = {n for n in layers if "resnets" in n or "samplers" in n}
    assert any(n.endswith("_conv1") for n in locon) and any("downsamplers_0_conv" in n for n in locon)
    for name in layers:
        module = targets[name].module
        down, up = tensors[f"{name}.lora_down.weight"], tensors[f"{name}.lora_up.weight"]
        is_conv = isinstance(module, torch.nn.Conv2d)
        assert down.dim() == up.dim() == (4 if is_conv else 2), name
        rank = 2 if is_conv and tuple(module.kernel_size) != (1, 1) else 4
        assert down.shape[0] == rank and down.dtype == torch.float16
        alpha = tensors[f"{name}.alpha"]
        assert alpha.dim() == 0 and float(alpha) == (1.0 if rank == 2 else 2.0)
    assert metadata["ss_network_dim"] == "4" and metadata["ss_network_alpha"] == "2.0"


def test_targets_match_kohyas_module_set(final_file):
    """Independently of the trainer's walk: attention/MLP layers by path, LoCon convs by path."""
    (tensors, _, _), _ = final_file
    from sdapi.engine.demo_lora import kohya_layers
    from sdapi.engine.demo_models import build_tiny_sd15_pipeline

    pipe = build_tiny_sd15_pipeline(0)
    expected = {n for n in kohya_layers(pipe) if "resnets" not in n and "samplers" not in n}
    for path, module in pipe.unet.named_modules():
        tail = path.split(".")[-1]
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)) and (
                (".resnets." in path and tail in ("conv1", "conv2", "time_emb_proj", "conv_shortcut"))
                or path.endswith("samplers.0.conv")):
            expected.add("lora_unet_" + path.replace(".", "_"))
    assert {split_key(k)[0] for k in tensors} == expected


def test_metadata_strings_and_hashes(final_file):
    (_, metadata, raw), view = final_file
    assert all(isinstance(v, str) for v in metadata.values())
    data_start = 8 + struct.unpack("<Q", raw[:8])[0]
    assert metadata["sshs_model_hash"] == hashlib.sha256(raw[data_start:]).hexdigest()
    assert view["outputs"][-1]["shorthash"] == metadata["sshs_model_hash"][:12]
    assert metadata["sshs_legacy_hash"] == hashlib.sha256(b"").hexdigest()[:8]  # files under 1 MiB
    assert json.loads(metadata["ss_tag_frequency"]) == {"13_solid": {"solid red": 1}}
    assert json.loads(metadata["ss_dataset_dirs"]) == {"13_solid": {"n_repeats": 13, "img_count": 1}}
    assert json.loads(metadata["ss_network_args"]) == {"conv_dim": "2", "conv_alpha": "1.0"}
    assert metadata["ss_output_name"] == "solid" and metadata["ss_sd_model_name"] == MODEL
    checkpoint = Path(view["effective_config"]["output_dir"]).parent / "Stable-diffusion" / MODEL
    base = checkpoint.read_bytes()
    assert len(base) > 0x110000  # the legacy hash reads 64 KiB at 1 MiB: it must be inside the file
    assert metadata["ss_sd_model_hash"] == hashlib.sha256(base[0x100000:0x110000]).hexdigest()[:8]
    assert metadata["ss_new_sd_model_hash"] == hashlib.sha256(base).hexdigest()
    assert metadata["ss_base_model_version"] == "sd_v1" and metadata["ss_v2"] == "False"
    assert (metadata["ss_epoch"], metadata["ss_steps"], metadata["ss_num_train_images"]) == ("3", "39", "13")
    assert metadata["ss_resolution"] == "(64, 64)" and metadata["ss_optimizer"] == "torch.optim.adamw.AdamW"
    assert metadata["modelspec.architecture"] == "stable-diffusion-v1/lora"


def test_our_merge_equals_what_diffusers_applies(final_file):
    """diffusers' load_lora_weights + fuse_lora gives W + up·down·alpha/rank for every layer in the file."""
    (tensors, _, _), view = final_file
    from sdapi.engine.demo_models import build_tiny_sd15_pipeline

    pipe = build_tiny_sd15_pipeline(0)
    targets = target_table(pipe)
    before = {name: target.module.weight.detach().clone() for name, target in targets.items()}
    saved = Path(view["outputs"][-1]["path"])
    # Folder plus weight_name: offline, diffusers before 0.37 needs the file named this way.
    pipe.load_lora_weights(str(saved.parent), weight_name=saved.name, adapter_name="solid")
    pipe.fuse_lora(lora_scale=1.0, adapter_names=["solid"])
    for name in {split_key(k)[0] for k in tensors}:
        down = tensors[f"{name}.lora_down.weight"].float()
        up = tensors[f"{name}.lora_up.weight"].float()
        scale = float(tensors[f"{name}.alpha"]) / down.shape[0]
        expected = before[name] + (up.flatten(1) @ down.flatten(1)).reshape(before[name].shape) * scale
        fused = targets[name].module
        weight = fused.base_layer.weight if hasattr(fused, "base_layer") else fused.weight
        assert torch.allclose(weight.detach(), expected, atol=1e-5), name


# -- validation and dry run ---------------------------------------------------------------------------------


@pytest.mark.parametrize("change, field", [
    ({"train_data_dir": "datasets/missing"}, "train_data_dir"),
    ({"train_data_dir": "/etc"}, "train_data_dir"),
    ({"train_data_dir": "datasets/../../"}, "train_data_dir"),
    ({"train_data_dir": "datasets/broken"}, "train_data_dir"),
    ({"train_data_dir": "datasets/empty"}, "train_data_dir"),
    ({"resolution": "100,64"}, "resolution"),
    ({"resolution": "128,128", "max_bucket_reso": 64}, "max_bucket_reso"),
    ({"pretrained_model_name_or_path": "nope.safetensors"}, "pretrained_model_name_or_path"),
    ({"pretrained_model_name_or_path": "models/Lora/demo-lora.safetensors"}, "pretrained_model_name_or_path"),
    ({"pretrained_model_name_or_path": "datasets/broken.safetensors"}, "pretrained_model_name_or_path"),
    ({"max_token_length": 100}, "max_token_length"),
    ({"output_name": "demo-lora"}, "output_name"),
    ({"output_name": "../x"}, "output_name"),
    ({"optimizer_type": "Adam9000"}, "optimizer_type"),
    ({"lr_scheduler": "sawtooth"}, "lr_scheduler"),
    ({"network_args": ["block_dims=2,2"]}, "network_args"),
    ({"sample_prompts": "x --w 63"}, "sample_prompts"),
    ({"no_such_key": 1}, "no_such_key"),
    ({"network_dim": 0}, "network_dim"),
])
def test_bad_inputs_are_refused_with_their_field(train_client, change, field):
    root = train_client.app.state.sdapi.settings.data_dir
    (root / "datasets" / "empty").mkdir(parents=True, exist_ok=True)
    (root / "datasets" / "broken" / "1_b").mkdir(parents=True, exist_ok=True)
    (root / "datasets" / "broken" / "1_b" / "x.png").write_bytes(b"\x89PNG broken")
    (root / "datasets" / "broken.safetensors").write_bytes(b"\x10" + b"\x00" * 7 + b"{not json}......")
    before = len(train_client.get("/lora/train").json()["jobs"])
    r = train_client.post("/lora/train", json={**FITTED, "output_name": "refused", **change})
    assert r.status_code == 422, r.text
    assert field in [str(part) for item in r.json()["detail"] for part in item["loc"]]
    assert len(train_client.get("/lora/train").json()["jobs"]) == before
    assert str(root) not in r.text and "Traceback" not in r.text and ".py" not in r.text


PATH_FIELDS = [
    ({"log_prefix": "{outside}/lp_"}, "log_prefix"),
    ({"log_prefix": "../lp_"}, "log_prefix"),
    ({"log_prefix": "lp\x00"}, "log_prefix"),
    ({"log_prefix": "lp" * 300}, "log_prefix"),
    ({"logging_dir": "{outside}"}, "logging_dir"),
    ({"logging_dir": "logs/../../x"}, "logging_dir"),
    ({"logging_dir": "models/Stable-diffusion"}, "logging_dir"),
    ({"output_dir": "{outside}"}, "output_dir"),
    ({"output_dir": "models/Stable-diffusion"}, "output_dir"),
    ({"output_dir": "models"}, "output_dir"),
    ({"output_dir": "models/Lora/../../.."}, "output_dir"),
    ({"output_dir": "x" * 5000}, "output_dir"),
    ({"output_name": ".."}, "output_name"),
    ({"output_name": "a/b"}, "output_name"),
    ({"output_name": "a\x00b"}, "output_name"),
    ({"output_name": "n" * 300}, "output_name"),
    ({"caption_extension": "/../../x"}, "caption_extension"),
    ({"caption_extension": "a/b"}, "caption_extension"),
    ({"caption_extension": ".."}, "caption_extension"),
    ({"caption_extension": "\x00"}, "caption_extension"),
    ({"sample_prompts": "{outside}/prompts.txt"}, "sample_prompts"),
    ({"sample_prompts": "../prompts.txt"}, "sample_prompts"),
    ({"network_weights": "{outside}/w.safetensors"}, "network_weights"),
    ({"network_weights": "models/Lora/../../w.safetensors"}, "network_weights"),
    ({"vae": "{outside}/vae.safetensors"}, "vae"),
    ({"reg_data_dir": "{outside}"}, "reg_data_dir"),
    ({"pretrained_model_name_or_path": "{outside}/model.safetensors"}, "pretrained_model_name_or_path"),
]


@pytest.mark.parametrize("change, field", PATH_FIELDS)
def test_every_path_field_stays_in_the_allowed_folders(train_client, tmp_path, change, field):
    root = train_client.app.state.sdapi.settings.data_dir
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "prompts.txt").write_text("a prompt --w 64 --h 64")
    (outside / "w.safetensors").write_bytes(b"x")
    (outside / "model.safetensors").write_bytes(b"x")
    (outside / "vae.safetensors").write_bytes(b"x")
    write_images(outside / "1_reg", [(1, 2, 3)], "outside")
    change = {key: value.replace("{outside}", str(outside)) for key, value in change.items()}
    for dry_run in (True, False):
        r = train_client.post("/lora/train", json={**FITTED, "output_name": "refused", **change, "dry_run": dry_run})
        assert r.status_code == 422, r.text
        assert field in [str(part) for item in r.json()["detail"] for part in item["loc"]], r.text
        assert str(root) not in r.text and "Traceback" not in r.text
    assert sorted(p.name for p in outside.iterdir()) == ["1_reg", "model.safetensors", "prompts.txt", "vae.safetensors",
                                                         "w.safetensors"]
    assert not (root / "models" / "Stable-diffusion" / "network_train").exists()


@pytest.mark.parametrize("change", [
    {"output_dir": "models/Lora"}, {"output_dir": "models/Lora/sub"}, {"output_dir": "outputs/mine"},
    {"logging_dir": "logs", "log_prefix": "lp_"}, {"caption_extension": ".caption"},
])
def test_allowed_folders_and_plain_names_pass(train_client, change):
    r = train_client.post("/lora/train", json={**FITTED, "output_name": "allowed", **change, "dry_run": True})
    assert r.status_code == 200, r.text


def test_a_caption_symlinked_outside_is_refused_as_dataset_tags_refuses_it(train_client, tmp_path):
    root = train_client.app.state.sdapi.settings.data_dir
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("the secret first line\n", encoding="utf-8")
    folder = root / "datasets" / "leaky" / "1_leak"
    write_images(folder, [(9, 9, 9)], "unused")
    (folder / "img0.txt").unlink()
    (folder / "img0.txt").symlink_to(outside / "secret.txt")
    assert train_client.get("/dataset/tags", params={"path": "datasets/leaky"}).status_code == 403
    r = train_client.post("/lora/train", json={**FITTED, "output_name": "leak", "train_data_dir": "datasets/leaky",
                                               "dry_run": True})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "train_data_dir"], r.text
    assert "secret" not in r.text and str(root) not in r.text and "1_leak/img0.txt" in r.text


def test_dry_run_reports_buckets_and_steps_without_training(train_client):
    root = train_client.app.state.sdapi.settings.data_dir
    write_images(root / "datasets" / "mixed" / "3_mix", [(1, 1, 1)] * 2, "a", size=(128, 64))
    write_images(root / "datasets" / "mixed" / "2_tall", [(1, 1, 1)], "b", size=(64, 128))
    before = len(train_client.get("/lora/train").json()["jobs"])
    r = train_client.post("/lora/train", json={**FITTED, "output_name": "dry", "train_data_dir": "datasets/mixed",
                                               "resolution": "128,128", "train_batch_size": 4, "max_train_epochs": 5,
                                               "dry_run": True})
    assert r.status_code == 200, r.text
    dataset = r.json()["dataset"]
    assert dataset["buckets"] == [{"resolution": [64, 128], "count": 2}, {"resolution": [128, 64], "count": 6}]
    assert (dataset["steps_per_epoch"], dataset["total_steps"], dataset["images"]) == (1 + 2, 15, 3)
    assert r.json()["effective_config"]["unet_lr"] == 1e-2
    assert len(train_client.get("/lora/train").json()["jobs"]) == before


@pytest.mark.parametrize("limits, epochs, total", [
    ({"max_train_steps": 6}, 1, 6),               # steps alone: that many steps (13 per epoch)
    ({"max_train_steps": 30}, 3, 30),
    ({"max_train_epochs": 2}, 2, 26),
    ({"max_train_epochs": 2, "max_train_steps": 6}, 2, 26),  # both: epochs win, as kohya
    ({}, 124, 1600),                              # neither: kohya's 1600 steps
])
def test_max_train_steps_and_epochs_follow_kohyas_rule(train_client, limits, epochs, total):
    body = {key: value for key, value in FITTED.items() if key != "max_train_epochs"}
    r = train_client.post("/lora/train", json={**body, "output_name": "limits", **limits, "dry_run": True})
    assert r.status_code == 200, r.text
    dataset = r.json()["dataset"]
    assert (dataset["epochs"], dataset["total_steps"]) == (epochs, total)
    assert r.json()["effective_config"]["max_train_epochs"] == limits.get("max_train_epochs")


def test_steps_alone_train_that_many_steps_and_both_say_which_won(train_client, fitted):
    body = {**FITTED, "output_name": "six", "max_train_steps": 6, "save_every_n_epochs": 0,
            "sample_prompts": None}
    del body["max_train_epochs"]
    view = wait_for(train_client, submit(train_client, **body))
    assert view["status"] == "done" and view["progress"]["step"] == 6, view
    _, metadata, _ = read_file(view["outputs"][-1]["path"])
    assert metadata["ss_steps"] == metadata["ss_max_train_steps"] == "6"
    both = wait_for(train_client, submit(train_client, **{**body, "output_name": "both", "max_train_epochs": 1}))
    assert both["status"] == "done" and both["progress"]["step"] == 13
    log = train_client.get(f"/lora/train/{both['job_id']}/log").text
    assert "max_train_epochs (1) wins over max_train_steps (6)" in log


@pytest.mark.parametrize("change, field", [({"max_train_steps": 10 ** 12}, "max_train_steps"),
                                           ({"max_train_epochs": 10 ** 9}, "max_train_epochs")])
def test_absurd_lengths_are_refused(train_client, change, field):
    r = train_client.post("/lora/train", json={**FITTED, "output_name": "absurd", **change, "dry_run": True})
    assert r.status_code == 422 and field in r.json()["detail"][0]["loc"], r.text


# -- cancel, queueing with generation, the shim -------------------------------------------------------------


def test_cancel_mid_run_while_generation_waits(train_client, fitted):
    state = train_client.app.state.sdapi
    job_id = submit(train_client, **LONG, output_name="long")
    queued = submit(train_client, **LONG, output_name="never")
    deadline = time.monotonic() + 60
    while train_client.get(f"/lora/train/{job_id}").json()["progress"]["step"] < 3:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    progress = train_client.get("/sdapi/v1/progress").json()
    assert progress["state"]["job_count"] == 1 and progress["textinfo"].startswith("LoRA training")
    assert progress["state"]["sampling_steps"] == 400 and 0 < progress["progress"] < 1
    assert state.engine.pipelines.loaded() == []  # the inference pipeline was freed for training
    state.settings.train_busy = "reject"
    try:
        refused = train_client.post("/sdapi/v1/txt2img", json={"prompt": "x", "width": 64, "height": 64, "steps": 2})
    finally:
        state.settings.train_busy = "queue"
    assert refused.status_code == 409 and refused.json()["detail"] == "busy: lora training"
    generated = {}
    worker = threading.Thread(target=lambda: generated.update(r=txt2img(train_client, "solid red")))
    worker.start()
    worker.join(0.5)
    assert worker.is_alive(), "txt2img must wait for the training job"
    r = train_client.post(f"/lora/train/{queued}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert train_client.post(f"/lora/train/{job_id}/cancel", json={"save_current": True}).status_code == 200
    view = wait_for(train_client, job_id)
    assert view["status"] == view["phase"] == "cancelled" and 3 <= view["progress"]["step"] < 400
    assert [o["name"] for o in view["outputs"]] == ["long-cancelled"]
    assert train_client.post(f"/lora/train/{job_id}/cancel").status_code == 409
    worker.join(60)
    assert "r" in generated and state.engine.pipelines.loaded()  # generation reloaded its checkpoint
    assert train_client.get(f"/lora/train/{queued}").json()["status"] == "cancelled"
    assert train_client.get("/lora/train/unknown").status_code == 404


def test_a_second_job_for_the_same_output_is_refused_while_the_first_is_active(train_client, fitted):
    first = submit(train_client, **LONG, output_name="twin")
    try:
        for overwrite in (False, True):
            r = train_client.post("/lora/train", json={**LONG, "output_name": "twin", "overwrite": overwrite})
            assert r.status_code == 409, r.text
            body = r.json()
            assert set(body) == {"error", "detail", "body", "errors"} and "twin" in body["errors"]
            assert first in body["errors"]
        shim = train_client.post("/api/run", json={**LONG, "output_name": "twin"}).json()
        assert shim["status"] == "fail" and "twin" in shim["message"]
        elsewhere = train_client.post("/lora/train", json={**LONG, "output_name": "twin",
                                                           "output_dir": "models/Lora/elsewhere", "dry_run": True})
        assert elsewhere.status_code == 200, elsewhere.text
    finally:
        train_client.post(f"/lora/train/{first}/cancel")
    assert wait_for(train_client, first)["status"] == "cancelled"
    again = submit(train_client, **LONG, output_name="twin")  # free again once the first has ended
    train_client.post(f"/lora/train/{again}/cancel")
    assert wait_for(train_client, again)["status"] == "cancelled"


def test_lora_scripts_shim(train_client, fitted):
    body = {**LONG, "output_name": "shim", "max_train_epochs": 1, "model_train_type": "sd-lora",
            "reg_data_dir": "datasets/reg", "prior_loss_weight": 0.5, "cache_latents_to_disk": True,
            "enable_preview": False, "ui_custom_params": "", "gpu_ids": ["0"]}
    r = train_client.post("/api/run", json=body)
    assert r.status_code == 200 and r.json()["status"] == "success", r.text
    task_id = r.json()["message"].rsplit(" ", 1)[1]
    tasks = {t["id"]: t["status"] for t in train_client.get("/api/tasks").json()["data"]["tasks"]}
    assert tasks[task_id] in ("CREATED", "RUNNING", "FINISHED")
    view = wait_for(train_client, task_id)
    tasks = {t["id"]: t["status"] for t in train_client.get("/api/tasks").json()["data"]["tasks"]}
    assert tasks[task_id] == "FINISHED" and view["status"] == "done"
    _, metadata, _ = read_file(view["outputs"][-1]["path"])  # reg images balanced to the 2 training images
    assert metadata["ss_num_reg_images"] == "2" and metadata["ss_prior_loss_weight"] == "0.5"
    assert view["dataset"]["steps_per_epoch"] == 4 and view["progress"]["step"] == 4
    job_dir = train_client.app.state.sdapi.training.job_dir(task_id)
    assert len(list((job_dir / "latents").glob("*.pt"))) == 3 * 2  # 3 images, flipped and not
    refused = train_client.post("/api/run", json={**body, "train_data_dir": "datasets/missing"})
    assert refused.status_code == 200 and refused.json()["status"] == "fail"
    assert "train_data_dir" in refused.json()["message"]
    long_id = train_client.post("/api/run", json={**body, "output_name": "shim2", "max_train_epochs": 100}).json()
    long_id = long_id["message"].rsplit(" ", 1)[1]
    assert train_client.get(f"/api/tasks/terminate/{long_id}").json()["status"] == "success"
    wait_for(train_client, long_id)
    tasks = {t["id"]: t["status"] for t in train_client.get("/api/tasks").json()["data"]["tasks"]}
    assert tasks[long_id] == "TERMINATED"


def test_a_job_that_fails_reports_its_error_and_log_tail(train_client, fitted):
    job_id = submit(train_client, **{**LONG, "output_name": "broken", "optimizer_type": "AdamW",
                                     "optimizer_args": ["no_such_argument=1"]})
    view = wait_for(train_client, job_id)
    assert view["status"] == view["phase"] == "failed" and view["error"]["type"] == "TypeError"
    assert "no_such_argument" in view["error"]["message"] and "Traceback" in view["error"]["log_tail"]
    assert view["outputs"] == [] and train_client.get("/sdapi/v1/progress").json()["state"]["job_count"] == 0
    assert txt2img(train_client, "after a failed job")["images"]  # the worker goes on
