"""Sample images during training, drawn through the same generation path as txt2img, on the model being trained.

The LoRA hooks are attached, so the samples show the LoRA at weight 1 exactly as ``<lora:name:1>`` would.
"""

from __future__ import annotations

import torch
from PIL import Image

from sdapi.engine.generation import run_txt2img
from sdapi.engine.model import LoadedModel, prompt_encoder
from sdapi.engine.params import Txt2ImgParams
from sdapi.engine.sampling.registry import find_sampler
from sdapi.engine.training.plan import SamplePrompt
from sdapi.engine.training.setup import text_encoders


def draw_sample(pipe, sample: SamplePrompt, clip_skip: int | None, device: torch.device) -> Image.Image:
    """One sample image.

    Args:
        pipe: the training pipeline (LoRA hooks attached).
        sample: prompt, size, seed, sampler.
        clip_skip: the job's clip skip (A1111 counting).
        device: where the pipeline runs.
    """
    model = LoadedModel(pipe=pipe, encoder=prompt_encoder(pipe, device),
                        device=device, dtype=pipe.unet.dtype)
    params = Txt2ImgParams(prompts=[sample.prompt], negative_prompts=[sample.negative_prompt], seeds=[sample.seed],
                           subseeds=[sample.seed], subseed_strength=0.0, sampler=find_sampler(sample.sampler),
                           steps=sample.steps, cfg_scale=sample.cfg_scale, width=sample.width, height=sample.height,
                           clip_skip=clip_skip or 1)
    modes = [(m, m.training) for m in (pipe.unet, *text_encoders(pipe))]
    try:
        for module, _ in modes:
            module.eval()
        with torch.no_grad():
            return run_txt2img(model, params, None)[0]
    finally:
        for module, was_training in modes:
            module.train(was_training)
