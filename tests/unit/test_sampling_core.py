"""The one sampling core: the arguments each row's function gets as A1111 passes them, progress, interrupt, and
the image-conditioned passes."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from sdapi.engine.sampling import core, kdiffusion
from sdapi.engine.sampling.conds import BatchConds
from sdapi.engine.sampling.core import SamplingStart, denoiser_schedule, sample
from sdapi.engine.sampling.noise import SamplerNoise
from sdapi.engine.sampling.registry import find_sampler
from sdapi.serving.control import JobControl
from tests.unit.test_cfg_denoiser import SD15, FakeUnet


class StopAfter(JobControl):
    """Asks to stop after ``calls`` model calls."""

    def __init__(self, calls: int):
        super().__init__()
        self.remaining = calls
        self.reported: list[tuple[int, torch.Tensor]] = []

    def should_stop(self) -> bool:
        self.remaining -= 1
        return self.remaining < 0

    def step(self, step: int, preview=None) -> None:
        self.reported.append((step, preview))
        super().step(step, preview)


def fake_model():
    return SimpleNamespace(pipe=SimpleNamespace(scheduler=SimpleNamespace(config=SD15)), unet=FakeUnet(),
                           dtype=torch.float32, device=torch.device("cpu"), v_prediction=False, sdxl=False)


def conds():
    return BatchConds.fixed(torch.ones(1, 77, 8), -torch.ones(1, 77, 8))


def noise_source():
    return SamplerNoise([torch.Generator().manual_seed(1)], 4, (4, 8, 8), predraw=False)


def run(name: str, start: SamplingStart, events=None, model=None):
    return sample(model or fake_model(), find_sampler(name), start, torch.randn(1, 4, 8, 8), conds(), 7.0,
                  noise_source(), [1], events=events)


def capture(monkeypatch, function: str) -> dict:
    seen: dict = {}

    def fake(denoise, x, **kwargs):
        seen.update(kwargs, x=x)
        return x

    monkeypatch.setitem(kdiffusion.KDIFFUSION_FUNCTIONS, function, fake)
    monkeypatch.setattr(core, "KDIFFUSION_FUNCTIONS", kdiffusion.KDIFFUSION_FUNCTIONS)
    return seen


def test_dpm_solvers_get_the_models_sigma_range_and_a_call_budget(monkeypatch):
    seen = capture(monkeypatch, "dpm_fast")
    run("DPM fast", SamplingStart(6))
    schedule = denoiser_schedule(fake_model())
    assert (seen["sigma_min"], seen["sigma_max"], seen["n"], seen["eta"]) == (
        schedule.sigma_min, schedule.sigma_max, 6, 1.0)


def test_an_image_pass_gets_the_schedule_tail(monkeypatch):
    seen = capture(monkeypatch, "dpm_fast")
    latent = torch.zeros(1, 4, 8, 8)
    run("DPM fast", SamplingStart(10, t_enc=4, latent=latent))
    sigmas = core.a1111_sigmas(denoiser_schedule(fake_model()), 10)
    tail = sigmas[10 - 4 - 1:]
    assert seen["sigma_min"] == pytest.approx(float(tail[-2])) and seen["sigma_max"] == pytest.approx(float(tail[0]))
    assert seen["n"] == 5


def test_txt2img_starts_at_noise_times_the_first_sigma(monkeypatch):
    seen = capture(monkeypatch, "euler")
    noise = torch.randn(1, 4, 8, 8)
    sample(fake_model(), find_sampler("Euler"), SamplingStart(5), noise, conds(), 7.0, noise_source(), [1])
    sigmas = core.a1111_sigmas(denoiser_schedule(fake_model()), 5)
    assert torch.equal(seen["x"], noise * sigmas[0]) and torch.equal(seen["sigmas"], sigmas)
    assert seen["s_churn"] == 0.0 and "eta" not in seen


def test_an_interrupt_returns_the_last_reported_denoised_prediction():
    control = StopAfter(3)
    out = run("DPM++ 2S a", SamplingStart(4), events=control)
    # Calls 0 and 1 make step 0 (denoised reported), call 2 starts step 1 (reported), call 3 is refused.
    assert [step for step, _ in control.reported] == [0, 1]
    assert torch.equal(out, control.reported[-1][1])


@pytest.mark.parametrize("name", ["DDIM", "PLMS", "UniPC"])
def test_compvis_samplers_report_their_updates_and_stop_between_them(name):
    control = StopAfter(2)
    out = run(name, SamplingStart(8), events=control)
    steps = [step for step, _ in control.reported]
    assert steps == list(range(1, len(steps) + 1)) and steps
    assert torch.equal(out, control.reported[-1][1])


@pytest.mark.parametrize("name", ["PLMS", "UniPC"])
def test_image_passes_with_plms_or_unipc_run_as_ddim(name, monkeypatch):
    used = []
    monkeypatch.setitem(core._COMPVIS_RUNNERS, "ddim", lambda *args: used.append("ddim") or args[3])
    run(name, SamplingStart(10, t_enc=4, latent=torch.zeros(1, 4, 8, 8)))
    assert used == ["ddim"]


def test_a_zero_strength_image_pass_returns_the_latent():
    latent = torch.randn(1, 4, 8, 8)
    assert run("Euler a", SamplingStart(0, t_enc=-1, latent=latent)) is latent


def test_and_with_compvis_samplers_is_a1111s_assertion():
    anded = BatchConds.fixed(torch.ones(2, 77, 8), -torch.ones(1, 77, 8))
    anded = BatchConds(((anded.subprompts[0][0], anded.subprompts[1][0]),), anded.negatives[:1])
    with pytest.raises(AssertionError, match="composition via AND"):
        sample(fake_model(), find_sampler("DDIM"), SamplingStart(4), torch.randn(1, 4, 8, 8), anded, 7.0,
               noise_source(), [1])


def test_ddim_runs_ldms_timesteps_even_where_they_outnumber_the_steps():
    model = fake_model()
    run("DDIM", SamplingStart(30), model=model)
    # 1000 // 30 = 33 and range(0, 1000, 33) has 31 entries: ldm runs all of them (A1111 does not fix 30 up).
    timesteps = [int(call.t[0]) for call in model.unet.calls]
    assert timesteps == list(range(991, 0, -33))


def test_unsupported_noise_schedules_are_refused():
    model = fake_model()
    model.pipe.scheduler.config = {**SD15, "rescale_betas_zero_snr": True}
    with pytest.raises(core.UnsupportedRequest):
        run("Euler", SamplingStart(4), model=model)
