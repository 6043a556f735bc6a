"""A1111's two guidances (k-diffusion's CFG denoiser, the CompVis samplers' guided output) on a UNet stand-in
that records what it is given."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from sdapi.engine.errors import SamplingInterrupted
from sdapi.engine.sampling.denoiser import CfgDenoiser, CompVisGuidance, combine_denoised
from sdapi.serving.control import JobControl
from sdapi.engine.sampling.conds import BatchConds
from sdapi.engine.sampling.schedules import model_schedule

SD15 = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000}


class FakeUnet:
    """eps = 0.5 * input + mean of the text conditioning; records each call."""

    def __init__(self):
        self.calls = []

    def __call__(self, x, t, encoder_hidden_states):
        self.calls.append(SimpleNamespace(x=x.clone(), t=t.clone(), cond=encoder_hidden_states.clone()))
        eps = 0.5 * x[:, :4] + encoder_hidden_states.mean(dim=(1, 2))[:, None, None, None]
        return SimpleNamespace(sample=eps)


def make(cond_tokens: int = 77, uncond_tokens: int = 77, images: int = 1, v_prediction: bool = False, **kwargs):
    unet = FakeUnet()
    model = SimpleNamespace(unet=unet, dtype=torch.float32, v_prediction=v_prediction)
    cond = torch.full((images, cond_tokens, 8), 1.0)
    uncond = torch.full((images, uncond_tokens, 8), -1.0)
    denoiser = CfgDenoiser(model, model_schedule(SD15), BatchConds.fixed(cond, uncond), 7.0, **kwargs)
    return denoiser, unet


def test_denoised_is_combined_from_scaled_unet_calls_at_fractional_timesteps():
    denoiser, unet = make()
    schedule = model_schedule(SD15)
    x, sigma = torch.randn(1, 4, 8, 8), torch.tensor([3.0])
    out = denoiser(x, sigma)
    (call,) = unet.calls
    c_in = 1 / (sigma ** 2 + 1.0) ** 0.5
    assert torch.allclose(call.x, torch.cat([x, x]) * c_in)
    assert torch.equal(call.t, schedule.sigma_to_t(torch.tensor([3.0, 3.0])))
    eps_cond, eps_uncond = 0.5 * x * c_in + 1.0, 0.5 * x * c_in - 1.0
    cond, uncond = x - 3.0 * eps_cond, x - 3.0 * eps_uncond
    assert torch.allclose(out, uncond + (cond - uncond) * 7.0, atol=1e-5)
    assert denoiser.step == 1


def test_different_token_lengths_use_separate_unet_calls():
    denoiser, unet = make(cond_tokens=154, uncond_tokens=77, images=2)
    denoiser(torch.randn(2, 4, 8, 8), torch.tensor([2.0, 2.0]))
    assert [c.cond.shape[:2] for c in unet.calls] == [(2, 154), (2, 77)]


def test_and_parts_are_weighted_rows_of_their_image():
    rows = torch.stack([torch.full((4, 2, 2), v) for v in (10.0, 20.0, 30.0, 1.0, 2.0)])
    # image 0 has parts in rows 0 and 1, image 1 in row 2; uncond rows 3 and 4.
    out = combine_denoised(rows, [[(0, 1.0), (1, 0.5)], [(2, 1.0)]], 2, 2.0)
    assert torch.allclose(out[0], torch.full((4, 2, 2), 1.0 + (10 - 1) * 2.0 + (20 - 1) * 1.0))
    assert torch.allclose(out[1], torch.full((4, 2, 2), 2.0 + (30 - 2) * 2.0))


def test_interrupt_stops_before_the_next_model_call():
    control = JobControl()
    denoiser, unet = make(stop=control)
    control.interrupt()
    with pytest.raises(SamplingInterrupted):
        denoiser(torch.randn(1, 4, 8, 8), torch.tensor([1.0]))
    assert unet.calls == []


def test_mask_keeps_the_original_and_image_cond_follows_the_scaled_input():
    init = torch.full((1, 4, 8, 8), 5.0)
    mask = torch.zeros(1, 4, 8, 8)
    mask[..., :4] = 1.0
    image_cond = torch.full((1, 5, 8, 8), 9.0)
    denoiser, unet = make(mask=mask, init_latent=init, image_cond=image_cond)
    out = denoiser(torch.randn(1, 4, 8, 8), torch.tensor([2.0]))
    assert torch.equal(out[..., :4], init[..., :4]) and not torch.equal(out[..., 4:], init[..., 4:])
    assert unet.calls[0].x.shape[1] == 9 and torch.equal(unet.calls[0].x[:, 4:], image_cond.expand(2, -1, -1, -1))


def test_v_prediction_models_are_wrapped_as_kdiffusions_v_denoiser():
    denoiser, unet = make(v_prediction=True)
    x, sigma = torch.randn(1, 4, 8, 8), torch.tensor([3.0])
    out = denoiser(x, sigma)
    c_in = 1 / (sigma ** 2 + 1.0) ** 0.5
    v_cond, v_uncond = 0.5 * x * c_in + 1.0, 0.5 * x * c_in - 1.0
    c_skip, c_out = 1 / (sigma ** 2 + 1), -sigma / (sigma ** 2 + 1) ** 0.5
    cond, uncond = v_cond * c_out + x * c_skip, v_uncond * c_out + x * c_skip
    assert torch.allclose(out, uncond + (cond - uncond) * 7.0, atol=1e-5)


def test_s_min_uncond_skips_the_uncond_rows_every_second_call_below_it():
    denoiser, unet = make(s_min_uncond=5.0)
    x = torch.randn(1, 4, 8, 8)
    for sigma in (8.0, 8.0, 2.0, 2.0):
        denoiser(x, torch.tensor([sigma]))
    # Calls 1 and 3 are odd; only call 3 is below s_min_uncond.
    assert [c.x.shape[0] for c in unet.calls] == [2, 2, 2, 1]


def test_compvis_guidance_pads_the_uncond_and_guides_the_raw_output():
    unet = FakeUnet()
    model = SimpleNamespace(unet=unet, dtype=torch.float32, v_prediction=False)
    cond, uncond = torch.full((1, 154, 8), 1.0), torch.full((1, 77, 8), -1.0)
    guidance = CompVisGuidance(model, BatchConds.fixed(cond, uncond), 7.0)
    x, t = torch.randn(1, 4, 8, 8), torch.tensor([500])
    out = guidance(x, t)
    (call,) = unet.calls
    assert call.cond.shape[:2] == (2, 154) and float(call.cond[0, -1, 0]) == -1.0  # uncond first, padded
    assert torch.allclose(out, (0.5 * x - 1.0) + 7.0 * ((0.5 * x + 1.0) - (0.5 * x - 1.0)), atol=1e-5)


def test_compvis_guidance_at_scale_one_makes_no_uncond_call():
    unet = FakeUnet()
    model = SimpleNamespace(unet=unet, dtype=torch.float32, v_prediction=False)
    conds = BatchConds.fixed(torch.full((1, 77, 8), 1.0), torch.full((1, 77, 8), -1.0))
    CompVisGuidance(model, conds, 1.0)(torch.randn(1, 4, 8, 8), torch.tensor([10]))
    assert [c.cond.shape[0] for c in unet.calls] == [1]
