"""``POST /lora/train`` and the job views: kohya / lora-scripts parameter names, lora-scripts' defaults.

No logic here beyond field types and defaults; :mod:`sdapi.training.validate` checks what the fields mean.
Unknown keys are refused (422) so a typo never trains silently with a default; ``extra_args`` takes anything.
"""

from __future__ import annotations

from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field


class TrainRequest(BaseModel):
    """A LoRA training job, named as kohya's ``train_network.py`` arguments (lora-scripts' JSON pastes as is)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    # model
    model_train_type: Literal["sd-lora", "sdxl-lora"] = Field(
        "sd-lora", description="lora-scripts' trainer choice; the checkpoint decides, sdxl-lora insists on SDXL")
    backend: Literal["builtin"] = "builtin"
    pretrained_model_name_or_path: str = Field(description="checkpoint title/filename from /sdapi/v1/sd-models")
    v2: bool = False
    v_parameterization: bool = False
    vae: Optional[str] = None

    # dataset
    train_data_dir: str = Field(description="a folder of N_name subfolders, or a flat folder of images")
    repeats: Optional[int] = Field(None, ge=1, description="repeats for a flat folder (null: 7/5/3/1 by count)")
    class_tokens: Optional[str] = None
    reg_data_dir: Optional[str] = None
    prior_loss_weight: float = 1.0
    resolution: Union[str, int] = "512,512"
    enable_bucket: bool = True
    min_bucket_reso: int = 256
    max_bucket_reso: int = 1024
    bucket_reso_steps: int = 64
    bucket_no_upscale: bool = True

    # captions
    caption_extension: str = ".txt"
    caption_separator: str = ","
    shuffle_caption: bool = True
    keep_tokens: int = Field(0, ge=0)
    keep_tokens_separator: str = ""
    caption_prefix: Optional[str] = None
    caption_suffix: Optional[str] = None
    caption_dropout_rate: float = Field(0.0, ge=0, le=1)
    caption_dropout_every_n_epochs: int = Field(0, ge=0)
    caption_tag_dropout_rate: float = Field(0.0, ge=0, le=1)
    max_token_length: Optional[int] = 225
    weighted_captions: bool = False
    flip_aug: bool = False
    color_aug: bool = False
    random_crop: bool = False

    # output
    output_name: str = "lora"
    output_dir: Optional[str] = None
    save_model_as: Literal["safetensors"] = "safetensors"
    save_precision: Literal["fp16", "bf16", "float"] = "fp16"
    save_every_n_epochs: Optional[int] = Field(2, ge=0)
    save_last_n_epochs: Optional[int] = Field(None, ge=1)
    overwrite: bool = False

    # schedule (kohya's rule: epochs win when both are set; neither means 1600 steps)
    max_train_epochs: Optional[int] = Field(None, ge=1, le=100_000)
    max_train_steps: Optional[int] = Field(None, ge=1, le=10_000_000)
    train_batch_size: int = Field(1, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    gradient_checkpointing: bool = False

    # network
    network_module: str = "networks.lora"
    network_dim: int = Field(32, ge=1, le=4096)
    network_alpha: float = 32
    network_args: list[str] = Field(default_factory=list)
    conv_dim: Optional[int] = Field(None, ge=1, le=4096)
    conv_alpha: Optional[float] = None
    lycoris_algo: Optional[str] = None
    network_dropout: Optional[float] = Field(None, ge=0, lt=1)
    network_weights: Optional[str] = None
    network_train_unet_only: bool = False
    network_train_text_encoder_only: bool = False

    # learning rate and optimizer
    learning_rate: float = 1e-4
    unet_lr: Optional[float] = 1e-4
    text_encoder_lr: Optional[Union[float, list[float]]] = Field(
        1e-5, description="one rate, or kohya's list: [CLIP-L, bigG] on SDXL")
    lr_scheduler: str = "cosine_with_restarts"
    lr_warmup_steps: float = Field(0, ge=0)
    lr_scheduler_num_cycles: int = Field(1, ge=1)
    lr_restart_cycles: Optional[int] = Field(None, ge=1, description="lora-scripts' old name for the cycles")
    lr_scheduler_power: float = 1.0
    optimizer_type: Optional[str] = Field(None, description="null: AdamW8bit with bitsandbytes on CUDA, else AdamW")
    optimizer_args: list[str] = Field(default_factory=list)
    optimizer_args_custom: list[str] = Field(default_factory=list)
    network_args_custom: list[str] = Field(default_factory=list)
    prodigy_d0: Optional[float] = None
    prodigy_d_coef: Optional[float] = None
    max_grad_norm: float = 1.0

    # precision and speed
    mixed_precision: Literal["no", "fp16", "bf16"] = "fp16"
    full_fp16: bool = False
    full_bf16: bool = False
    xformers: bool = False
    sdpa: bool = True
    cache_latents: bool = True
    cache_latents_to_disk: bool = False
    no_half_vae: bool = False
    cache_text_encoder_outputs: bool = Field(False, description="SDXL: encode each caption once (UNet only)")
    cache_text_encoder_outputs_to_disk: bool = False
    lowram: bool = False
    persistent_data_loader_workers: bool = False
    max_data_loader_n_workers: Optional[int] = None
    vae_batch_size: int = Field(1, ge=1)
    gpu_ids: Optional[list[str]] = None

    # noise and loss
    clip_skip: Optional[int] = Field(2, ge=1, le=12)
    seed: Optional[int] = Field(1337, ge=-1, le=2 ** 32 - 1, description="-1 or null: random")
    noise_offset: Optional[float] = Field(None, ge=0)
    multires_noise_iterations: Optional[int] = Field(None, ge=1)
    multires_noise_discount: float = 0.3
    min_snr_gamma: Optional[float] = Field(None, gt=0)
    min_timestep: Optional[int] = Field(None, ge=0, le=1000)
    max_timestep: Optional[int] = Field(None, ge=1, le=1000)
    loss_type: Literal["l2"] = "l2"

    # samples
    sample_prompts: Optional[str] = None
    enable_preview: Optional[bool] = None
    positive_prompts: Optional[str] = None
    negative_prompts: Optional[str] = None
    sample_width: int = 512
    sample_height: int = 512
    sample_cfg: float = 7
    sample_steps: int = 24
    sample_seed: int = 2333
    sample_sampler: str = "euler_a"
    sample_every_n_epochs: Optional[int] = Field(None, ge=1)
    sample_at_first: bool = False

    # logging
    log_with: Optional[Literal["tensorboard"]] = "tensorboard"
    logging_dir: Optional[str] = None
    log_prefix: Optional[str] = None

    # metadata
    training_comment: Optional[str] = None
    metadata_title: Optional[str] = None
    metadata_author: Optional[str] = None
    metadata_description: Optional[str] = None
    metadata_trigger_phrase: Optional[str] = None

    dry_run: bool = False
    extra_args: dict[str, Any] = Field(default_factory=dict, description="for the kohya backend only; ignored")


class CancelRequest(BaseModel):
    """``POST /lora/train/{id}/cancel``."""

    model_config = ConfigDict(extra="forbid")

    save_current: bool = False
