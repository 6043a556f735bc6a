"""``sdapi train CONFIG.toml``: the same trainer in the foreground, from a sectioned kohya-style TOML."""

from __future__ import annotations

import re
import shutil

import pytest
from PIL import Image

from sdapi.files import legacy_hash
from sdapi.cli import build_parser, main
from sdapi.files import read_safetensors_header

CONFIG = """
[model]
pretrained_model_name_or_path = "demo-sd15.safetensors"

[dataset]
train_data_dir = "ds"
resolution = "64,64"
min_bucket_reso = 64
max_bucket_reso = 128

[training]
output_name = "cli"
max_train_epochs = 2
save_every_n_epochs = 1
network_dim = 2
network_alpha = 1
optimizer_type = "Prodigy"
learning_rate = 1.0
unet_lr = 1.0
text_encoder_lr = 1.0
gradient_accumulation_steps = 2
gradient_checkpointing = true
train_batch_size = 2
lr_scheduler = "cosine"
clip_skip = 2
max_token_length = 150
log_with = "tensorboard"
persistent_data_loader_workers = true
save_state = false
"""


def test_train_command_writes_the_files(data_dir, fresh_data_dir, settings, capsys):
    root = fresh_data_dir(data_dir)
    folder = root / "ds" / "3_cli"
    folder.mkdir(parents=True)
    for i in range(2):
        Image.new("RGB", (64, 64), (40 * i, 100, 200)).save(folder / f"{i}.png")
        (folder / f"{i}.txt").write_text("cli, a very long caption " + "word " * 90, encoding="utf-8")
    config = root / "cli.toml"
    config.write_text(CONFIG, encoding="utf-8")
    main(["train", str(config), "--data-dir", str(root), "--cache-dir", str(settings.cache_dir), "--device", "cpu"])
    loras = root / "models" / "Lora"
    assert (loras / "cli-000001.safetensors").is_file() and (loras / "cli.safetensors").is_file()
    metadata = read_safetensors_header(loras / "cli.safetensors")["__metadata__"]
    assert metadata["ss_optimizer"] == "prodigyopt.prodigy.Prodigy"
    # 2 images x 3 repeats / batch 2 = 3 batches per epoch; 2 per update -> 2 updates x 2 epochs.
    assert metadata["ss_steps"] == "4" and metadata["ss_gradient_accumulation_steps"] == "2"
    assert metadata["ss_clip_skip"] == "2" and metadata["ss_max_token_length"] == "150"
    assert metadata["ss_sd_model_hash"] == legacy_hash(root / "models" / "Stable-diffusion" / "demo-sd15.safetensors")
    from safetensors.torch import load_file

    tensors = load_file(loras / "cli.safetensors")
    for prefix in ("lora_unet_", "lora_te_"):  # both parts learned, through gradient checkpointing
        assert any(k.startswith(prefix) and k.endswith("lora_up.weight") and t.abs().sum() > 0
                   for k, t in tensors.items())
    assert list(root.glob("training/cli/*/logs/*/network_train/events.out.tfevents.*"))
    config.write_text(CONFIG.replace('"ds"', '"missing"'), encoding="utf-8")
    with pytest.raises(SystemExit, match="train_data_dir"):
        main(["train", str(config), "--data-dir", str(root), "--cache-dir", str(settings.cache_dir)])


SMALL = """
pretrained_model_name_or_path = "demo-sd15.safetensors"
train_data_dir = "{data}"
resolution = "64,64"
enable_bucket = false
output_name = "{name}"
max_train_steps = 2
network_dim = 2
network_alpha = 1
"""


def train_flags() -> set[str]:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return {flag for action in sub.choices["train"]._actions for flag in action.option_strings}


def small_dataset(folder):
    (folder / "2_small").mkdir(parents=True)
    Image.new("RGB", (64, 64), (10, 200, 30)).save(folder / "2_small" / "a.png")


def test_train_uses_the_servers_demo_checkpoint_when_the_models_folder_is_empty(tmp_path, settings):
    root = tmp_path / "data"
    small_dataset(root / "ds")
    config = tmp_path / "small.toml"
    config.write_text(SMALL.format(data="ds", name="demo"), encoding="utf-8")
    main(["train", str(config), "--data-dir", str(root), "--cache-dir", str(settings.cache_dir), "--device", "cpu"])
    metadata = read_safetensors_header(root / "models" / "Lora" / "demo.safetensors")["__metadata__"]
    assert metadata["ss_sd_model_name"] == "demo-sd15.safetensors" and metadata["ss_steps"] == "2"
    assert (settings.cache_dir / "demo" / "demo-sd15.safetensors").is_file()
    with pytest.raises(SystemExit) as refused:
        main(["train", str(config), "--data-dir", str(root), "--cache-dir", str(settings.cache_dir), "--no-demo"])
    assert "pretrained_model_name_or_path" in str(refused.value) and "--ckpt-dir" in str(refused.value)
    assert set(re.findall(r"--[a-z-]+", str(refused.value))) <= train_flags()


def test_train_takes_the_servers_folder_flags(data_dir, tmp_path, settings):
    models, sets, root = tmp_path / "ckpts", tmp_path / "sets", tmp_path / "data"
    models.mkdir()
    shutil.copy(data_dir / "models" / "Stable-diffusion" / "demo-sd15.safetensors", models / "demo-sd15.safetensors")
    small_dataset(sets / "ds")
    config = tmp_path / "outside.toml"
    config.write_text(SMALL.format(data=(sets / "ds").as_posix(), name="flags"), encoding="utf-8")
    base = ["train", str(config), "--data-dir", str(root), "--cache-dir", str(settings.cache_dir), "--no-demo",
            "--ckpt-dir", str(models)]
    with pytest.raises(SystemExit) as refused:
        main(base)
    assert "train_data_dir" in str(refused.value) and "--dataset-root" in str(refused.value)
    assert set(re.findall(r"--[a-z-]+", str(refused.value))) <= train_flags()
    main(base + ["--dataset-root", str(sets), "--lora-dir", str(tmp_path / "loras"), "--device", "cpu"])
    metadata = read_safetensors_header(tmp_path / "loras" / "flags.safetensors")["__metadata__"]
    assert metadata["ss_sd_model_hash"] == legacy_hash(models / "demo-sd15.safetensors")


def test_serve_and_train_share_their_folder_flags():
    serve = next(a for a in build_parser()._actions if a.dest == "command").choices["serve"]
    serve_flags = {flag for action in serve._actions for flag in action.option_strings}
    shared = {"--data-dir", "--ckpt-dir", "--ckpt", "--cache-dir", "--lora-dir", "--dataset-root", "--no-demo"}
    assert shared <= serve_flags and shared <= train_flags()


SDXL_CONFIG = """
[model]
pretrained_model_name_or_path = "demo-sdxl.safetensors"
model_train_type = "sdxl-lora"

[dataset]
train_data_dir = "ds"
resolution = "64,64"
enable_bucket = false
shuffle_caption = false

[training]
output_name = "cli-xl"
max_train_steps = 2
network_dim = 2
network_alpha = 1
network_train_unet_only = true
cache_text_encoder_outputs = true
no_half_vae = true
text_encoder_lr = [1e-4, 5e-5]
"""


def test_train_command_trains_an_sdxl_lora_with_kohyas_sdxl_options(tmp_path, settings):
    from sdapi.engine.demo_sdxl import write_demo_sdxl

    root = tmp_path / "data"
    write_demo_sdxl(root)
    small_dataset(root / "ds")
    config = tmp_path / "xl.toml"
    config.write_text(SDXL_CONFIG, encoding="utf-8")
    main(["train", str(config), "--data-dir", str(root), "--cache-dir", str(settings.cache_dir), "--no-demo",
          "--device", "cpu"])
    header = read_safetensors_header(root / "models" / "Lora" / "cli-xl.safetensors")
    metadata = header.pop("__metadata__")
    assert metadata["ss_base_model_version"] == "sdxl_base_v1-0" and metadata["ss_steps"] == "2"
    assert metadata["ss_sd_model_name"] == "demo-sdxl.safetensors" and metadata["sshs_model_hash"]
    assert header and all(key.startswith(("lora_unet_input_blocks_", "lora_unet_middle_block_",
                                          "lora_unet_output_blocks_")) for key in header)  # UNet only, SGM names
