"""``/sdapi/v1/txt2img`` request and response models, mirroring A1111 v1.2.1 field for field.

Field order and defaults are those of A1111 v1.2.1's generated model (the order in which
``response.parameters`` is echoed). Defaults are *not* validated, exactly as in pydantic v1,
so ``denoising_strength`` and ``subseed_strength`` echo as the int ``0`` unless the client sent
a value (then it is coerced to float: ``0.5`` → ``0.5``, ``0`` → ``0.0``).
"""

from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field

from .base import A1111Request
from .coercion import LaxBool, LaxDict, LaxFloat, LaxInt, LaxStr, LaxStrList
from .scripts import ScriptArgs

__all__ = ["StableDiffusionProcessingTxt2Img", "TextToImageResponse"]


class StableDiffusionProcessingTxt2Img(A1111Request):
    model_config = ConfigDict(title="StableDiffusionProcessingTxt2Img")

    # StableDiffusionProcessingTxt2Img.__init__ (subclass) parameters
    enable_hr: Optional[LaxBool] = False
    denoising_strength: Optional[LaxFloat] = 0  # base-class default (int 0) wins in A1111's merge
    firstphase_width: Optional[LaxInt] = 0
    firstphase_height: Optional[LaxInt] = 0
    hr_scale: Optional[LaxFloat] = 2.0
    hr_upscaler: Optional[LaxStr] = None
    hr_second_pass_steps: Optional[LaxInt] = 0
    hr_resize_x: Optional[LaxInt] = 0
    hr_resize_y: Optional[LaxInt] = 0
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
    script_name: Optional[LaxStr] = None
    send_images: Optional[LaxBool] = True
    save_images: Optional[LaxBool] = False
    alwayson_scripts: Optional[LaxDict] = {}
    # Later A1111 (v1.9+) fields: read, never echoed in ``parameters`` (v1.2.1 clients compare that dict).
    scheduler: Optional[LaxStr] = Field(default=None, exclude=True)
    hr_scheduler: Optional[LaxStr] = Field(default=None, exclude=True)
    refiner_checkpoint: Optional[LaxStr] = Field(default=None, exclude=True)
    refiner_switch_at: Optional[LaxFloat] = Field(default=None, exclude=True)
    disable_extra_networks: Optional[LaxBool] = Field(default=False, exclude=True)
    firstpass_image: Optional[LaxStr] = Field(default=None, exclude=True)
    comments: Optional[LaxDict] = Field(default=None, exclude=True)
    hr_checkpoint_name: Optional[LaxStr] = Field(default=None, exclude=True)
    hr_sampler_name: Optional[LaxStr] = Field(default=None, exclude=True)
    hr_prompt: Optional[LaxStr] = Field(default="", exclude=True)
    hr_negative_prompt: Optional[LaxStr] = Field(default="", exclude=True)
    force_task_id: Optional[LaxStr] = Field(default=None, exclude=True)
    infotext: Optional[LaxStr] = Field(default=None, exclude=True)


class TextToImageResponse(BaseModel):
    model_config = ConfigDict(title="TextToImageResponse")

    images: Optional[list[str]] = Field(
        default=None, title="Image", description="The generated image in base64 format."
    )
    parameters: dict[str, Any]
    info: str
