"""Running a registry row with our own k-diffusion loop: arguments as A1111 passes them, progress, interrupt."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from sdapi.engine import kdiffusion
from sdapi.engine.control import JobControl
from sdapi.engine.kdiffusion_runner import denoiser_schedule, run_kdiffusion, txt2img_kdiffusion
from sdapi.engine.prompt_conds import BatchConds
from sdapi.engine.sampler_noise import SamplerNoise
from sdapi.engine.samplers import find_sampler
from tests.unit.test_cfg_denoiser import SD15, FakeUnet


class StopAfter(JobControl):
    """Asks to stop after ``calls`` model calls."""

    def __init__(self, calls: int):
        super().__init__()
        self.remaining = calls

    def should_stop(self) -> bool:
        self.remaining -= 1
        return self.remaining < 0


def fake_model():
    return SimpleNamespace(pipe=SimpleNamespace(scheduler=SimpleNamespace(config=SD15)), unet=FakeUnet(),
                           dtype=torch.float32, device=torch.device("cpu"))


def conds():
    return BatchConds.fixed(torch.ones(1, 77, 8), -torch.ones(1, 77, 8))


def noise_source():
    return SamplerNoise([torch.Generator().manual_seed(1)], 4, (4, 8, 8), predraw=False)


def test_dpm_solvers_get_the_models_sigma_range_and_a_call_budget(monkeypatch):
    seen = {}

    def fake_fast(denoise, x, sigma_min, sigma_max, n, eta, noise, callback=None):
        seen.update(sigma_min=sigma_min, sigma_max=sigma_max, n=n, eta=eta)
        return x

    monkeypatch.setitem(kdiffusion.KDIFFUSION_LOOPS, "dpm_fast", kdiffusion.KDiffusionLoop(fake_fast, True, True))
    model = fake_model()
    txt2img_kdiffusion(model, find_sampler("DPM fast"), 6, torch.randn(1, 4, 8, 8), noise_source(), conds(), 7.0)
    schedule = denoiser_schedule(model)
    assert seen == {"sigma_min": schedule.sigma_min, "sigma_max": schedule.sigma_max, "n": 6, "eta": 1.0}


def test_img2img_range_is_the_schedule_tail(monkeypatch):
    seen = {}
    tail = torch.tensor([5.0, 2.0, 1.0, 0.0])

    def fake_fast(denoise, x, sigma_min, sigma_max, n, eta, noise, callback=None):
        seen.update(sigma_min=sigma_min, sigma_max=sigma_max, n=n)
        return x

    monkeypatch.setitem(kdiffusion.KDIFFUSION_LOOPS, "dpm_fast", kdiffusion.KDiffusionLoop(fake_fast, True, True))
    run_kdiffusion(fake_model(), find_sampler("DPM fast"), torch.randn(1, 4, 8, 8), tail, noise_source(), conds(),
                   7.0, model_sigma_range=False)
    assert seen == {"sigma_min": 1.0, "sigma_max": 5.0, "n": 3}


def test_an_interrupt_returns_the_last_reported_denoised_prediction():
    control = StopAfter(3)
    reported = []
    original = control.step
    control.step = lambda step, latents=None: (reported.append((step, latents)), original(step, latents))
    out = txt2img_kdiffusion(fake_model(), find_sampler("DPM++ 2S a"), 4, torch.randn(1, 4, 8, 8), noise_source(),
                             conds(), 7.0, control)
    # Calls 0 and 1 make step 0 (denoised reported), call 2 starts step 1 (reported), call 3 is refused.
    assert [step for step, _ in reported] == [0, 1]
    assert torch.equal(out, reported[-1][1])
