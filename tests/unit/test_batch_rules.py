"""Which engine jobs may share a sampling batch (:func:`sdapi.engine.batching.batch_key`), row by row, and how
they are gathered within the image limit (:func:`merge_groups`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from PIL import Image

from sdapi.engine.api import GenerationJob
from sdapi.engine.batching import batch_key, merge_groups
from sdapi.engine.params import Img2ImgParams, LoraActivation, SamplerSettings, Txt2ImgParams
from sdapi.engine.sampling.registry import find_sampler


def txt2img(**fields) -> Txt2ImgParams:
    base = dict(prompts=["a cat"], negative_prompts=[""], seeds=[1], subseeds=[2], subseed_strength=0.0,
                sampler=find_sampler("Euler a"), steps=4, cfg_scale=7.0, width=64, height=64)
    return Txt2ImgParams(**{**base, **fields})


def img2img(**fields) -> Img2ImgParams:
    base = dict(prompts=["a cat"], negative_prompts=[""], seeds=[1], subseeds=[2], subseed_strength=0.0,
                sampler=find_sampler("Euler a"), steps=4, cfg_scale=7.0, width=64, height=64,
                init_images=[Image.new("RGB", (64, 64))])
    return Img2ImgParams(**{**base, **fields})


def job(params, checkpoint: str = "a.safetensors") -> GenerationJob:
    return GenerationJob(checkpoint=Path(checkpoint), params=params)


BASE = job(txt2img())

# Per-image fields: a job that differs from BASE only here shares its batch.
SAME_BATCH = {
    "another prompt": job(txt2img(prompts=["a dog on a hill"], negative_prompts=["fog"])),
    "other seeds": job(txt2img(seeds=[5], subseeds=[6], subseed_strength=0.4)),
    "another guidance scale": job(txt2img(cfg_scale=3.5)),
    "a batch of two": job(txt2img(prompts=["a", "b"], negative_prompts=["", ""], seeds=[1, 2], subseeds=[2, 3],
                                  batch_size=2)),
    "another clip skip": job(txt2img(clip_skip=2)),
}

# Shared fields: a job that differs from BASE here gets another key.
OTHER_BATCH = {
    "another checkpoint": job(txt2img(), "b.safetensors"),
    "another sampler": job(txt2img(sampler=find_sampler("DPM++ 2M"))),
    "other steps": job(txt2img(steps=5)),
    "another size": job(txt2img(width=72)),
    "a LoRA": job(txt2img(loras=[LoraActivation(path="l.safetensors", name="l")])),
    "eta": job(txt2img(sampler_settings=SamplerSettings(eta=0.5))),
    "img2img": job(img2img()),
}

ALONE = {
    "several batches": job(txt2img(n_iter=2)),
    "DPM adaptive": job(txt2img(sampler=find_sampler("DPM adaptive"))),
    "AND with DDIM": job(txt2img(prompts=["a cat AND a dog"], sampler=find_sampler("DDIM"))),
    "DDIM at guidance 1": job(txt2img(sampler=find_sampler("DDIM"), cfg_scale=1.0)),
    "s_min_uncond": job(txt2img(sampler_settings=SamplerSettings(s_min_uncond=0.5))),
}


@pytest.mark.parametrize("name", SAME_BATCH)
def test_per_image_fields_share_the_batch(name):
    assert batch_key(SAME_BATCH[name]) == batch_key(BASE) is not None


@pytest.mark.parametrize("name", OTHER_BATCH)
def test_shared_fields_split_batches(name):
    assert batch_key(OTHER_BATCH[name]) not in (None, batch_key(BASE))


@pytest.mark.parametrize("name", ALONE)
def test_jobs_that_run_alone_have_no_key(name):
    assert batch_key(ALONE[name]) is None


def test_img2img_shares_only_with_the_same_strength_and_mask_presence():
    plain = batch_key(job(img2img()))
    assert batch_key(job(img2img(seeds=[9], cfg_scale=4.0))) == plain
    assert batch_key(job(img2img(denoising_strength=0.5))) != plain
    assert batch_key(job(img2img(mask=Image.new("L", (64, 64), 255)))) != plain


def test_merge_groups_keeps_order_and_the_image_limit():
    two = job(txt2img(prompts=["a", "b"], negative_prompts=["", ""], seeds=[1, 2], subseeds=[2, 3], batch_size=2))
    jobs = [BASE, OTHER_BATCH["other steps"], two, ALONE["several batches"], BASE, two]
    assert merge_groups(jobs, max_images=4) == [[0, 2, 4], [1], [3], [5]]
    assert merge_groups(jobs, max_images=1) == [[0], [1], [2], [3], [4], [5]]
    assert merge_groups([dataclasses.replace(BASE)] * 3, max_images=8) == [[0, 1, 2]]
