"""``/sdapi/v1/img2img`` request and response models, mirroring A1111 v1.2.1 field for field.

Order: the img2img subclass parameters, the base parameters (same as txt2img from ``prompt`` to
``override_settings_restore_afterwards``), then A1111's additional API fields. ``include_init_images``
is echoed in ``parameters`` (A1111 echoes ``vars(request)``); the handler, not the model, nulls
``init_images``/``mask`` in the echo unless it is true.
"""

from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field

from .base import A1111Request
from .coercion import LaxBool, LaxDict, LaxFloat, LaxInt, LaxList, LaxStr, LaxStrList
from .scripts import ScriptArgs

__all__ = ["StableDiffusionProcessingImg2Img", "ImageToImageResponse"]


class StableDiffusionProcessingImg2Img(A1111Request):
    model_config = ConfigDict(title="StableDiffusionProcessingImg2Img")

    # StableDiffusionProcessingImg2Img.__init__ (subclass) parameters
    init_images: Optional[LaxList] = None
    resize_mode: Optional[LaxInt] = 0
    denoising_strength: Optional[LaxFloat] = 0.75  # A1111 additional field overrides the base 0
    image_cfg_scale: Optional[LaxFloat] = None
    mask: Optional[LaxStr] = None
    mask_blur: Optional[LaxInt] = 4
    inpainting_fill: Optional[LaxInt] = 0
    inpaint_full_res: Optional[LaxBool] = True
    inpaint_full_res_padding: Optional[LaxInt] = 0
    inpainting_mask_invert: Optional[LaxInt] = 0
    initial_noise_multiplier: Optional[LaxFloat] = None
    # StableDiffusionProcessing.__init__ (base) parameters
    prompt: Optional[LaxStr] = ""
    styles: Optional[LaxStrList] = None
    seed: Optional[LaxInt] = -1
    subseed: Optional[LaxInt] = -1
    subseed_strength: Optional[LaxFloat] = 0
    seed_resize_from_h: Optional[LaxInt] = -1
    seed_resize_from_w: Optional[LaxInt] = -1
    sampler_name: Optional[LaxStr] = None
    batch_size: Optional[LaxInt] = 1
    n_iter: Optional[LaxInt] = 1
    steps: Optional[LaxInt] = 50
    cfg_scale: Optional[LaxFloat] = 7.0
    width: Optional[LaxInt] = 512
    height: Optional[LaxInt] = 512
    restore_faces: Optional[LaxBool] = False
    tiling: Optional[LaxBool] = False
    do_not_save_samples: Optional[LaxBool] = False
    do_not_save_grid: Optional[LaxBool] = False
    negative_prompt: Optional[LaxStr] = None
    eta: Optional[LaxFloat] = None
    s_min_uncond: Optional[LaxFloat] = 0.0
    s_churn: Optional[LaxFloat] = 0.0
    s_tmax: Optional[LaxFloat] = None
    s_tmin: Optional[LaxFloat] = 0.0
    s_noise: Optional[LaxFloat] = 1.0
    override_settings: Optional[LaxDict] = None
    override_settings_restore_afterwards: Optional[LaxBool] = True
    script_args: Optional[ScriptArgs] = []  # copied per instance by pydantic; a dict: sdapi's named form
    # A1111's additional API fields
    sampler_index: Optional[LaxStr] = "Euler"
    include_init_images: Optional[LaxBool] = False
    script_name: Optional[LaxStr] = None
    send_images: Optional[LaxBool] = True
    save_images: Optional[LaxBool] = False
    alwayson_scripts: Optional[LaxDict] = {}
    # Later A1111 (v1.9+) fields: read, never echoed in ``parameters`` (v1.2.1 clients compare that dict).
    scheduler: Optional[LaxStr] = Field(default=None, exclude=True)
    refiner_checkpoint: Optional[LaxStr] = Field(default=None, exclude=True)
    refiner_switch_at: Optional[LaxFloat] = Field(default=None, exclude=True)
    disable_extra_networks: Optional[LaxBool] = Field(default=False, exclude=True)
    firstpass_image: Optional[LaxStr] = Field(default=None, exclude=True)
    comments: Optional[LaxDict] = Field(default=None, exclude=True)
    mask_round: Optional[LaxBool] = Field(default=True, exclude=True)
    latent_mask: Optional[LaxStr] = Field(default=None, exclude=True)
    force_task_id: Optional[LaxStr] = Field(default=None, exclude=True)
    infotext: Optional[LaxStr] = Field(default=None, exclude=True)


class ImageToImageResponse(BaseModel):
    model_config = ConfigDict(title="ImageToImageResponse")

    images: Optional[list[str]] = Field(
        default=None, title="Image", description="The generated image in base64 format."
    )
    parameters: dict[str, Any]
    info: str
