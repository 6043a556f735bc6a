"""A1111 v1.2.1's UniPC sampler: UniPC-bh1, order 3, data prediction, multistep, ``lower_order_final``, on the
time-uniform grid of DPM-Solver's discrete VP schedule (A1111's default ``uni_pc_*`` options).

Written after the UniPC code A1111 v1.2.1 ships (``modules/models/diffusion/uni_pc``), keeping its expressions and
their order. A1111's hooks: before every model call it stops if interrupted and picks the conditioning for its
update counter; after every update it stores ``x`` as the latent an interrupt returns and counts the update.
"""

from __future__ import annotations

import torch

from sdapi.engine.sampling.compvis import CompVisRun
from sdapi.engine.sampling.denoiser import check_stop
from sdapi.engine.sampling.schedules import UniPcTimes


class _UniPcModel:
    """The data-prediction model at grid time ``k`` (A1111's ``UniPC.model_fn`` with its hooks)."""

    def __init__(self, run: CompVisRun, times: UniPcTimes):
        self.run = run
        self.times = times

    def __call__(self, x: torch.Tensor, k: int) -> torch.Tensor:
        check_stop(self.run.guidance.stop)
        t_model = self.times.model_t[k].expand(x.shape[0]).to(x.device)
        out = self.run.guidance(x, t_model)
        alpha_t, sigma_t = self.times.alpha[k], self.times.sigma[k]
        noise = alpha_t * out + sigma_t * x if self.run.v_prediction else out
        return (x - sigma_t * noise) / alpha_t


def _bh1_update(model: _UniPcModel, x: torch.Tensor, model_prev: list[torch.Tensor], k_prev: list[int], k: int,
                order: int, use_corrector: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``multistep_uni_pc_bh_update`` (variant bh1, data prediction) from the previous grid times to ``k``."""
    times = model.times
    lambda_prev_0, lambda_t = times.lam[k_prev[-1]], times.lam[k]
    model_prev_0 = model_prev[-1]
    sigma_prev_0, sigma_t = times.sigma[k_prev[-1]], times.sigma[k]
    alpha_t = torch.exp(times.log_alpha[k])
    h = lambda_t - lambda_prev_0
    rks, d1s = [], []
    for i in range(1, order):
        rk = (times.lam[k_prev[-(i + 1)]] - lambda_prev_0) / h
        rks.append(rk)
        d1s.append((model_prev[-(i + 1)] - model_prev_0) / rk)
    rks.append(1.)
    rks = torch.tensor(rks, device=x.device)
    hh = -h
    h_phi_1 = torch.expm1(hh)
    h_phi_k = h_phi_1 / hh - 1
    factorial_i = 1
    b_h = hh
    r_rows, b = [], []
    for i in range(1, order + 1):
        r_rows.append(torch.pow(rks, i - 1))
        b.append(h_phi_k * factorial_i / b_h)
        factorial_i *= (i + 1)
        h_phi_k = h_phi_k / hh - 1 / factorial_i
    r_matrix = torch.stack(r_rows)
    b = torch.tensor(b, device=x.device)
    stacked = torch.stack(d1s, dim=1) if d1s else None
    x_t_ = (sigma_t / sigma_prev_0) * x - (alpha_t * h_phi_1) * model_prev_0
    if stacked is not None:
        rhos_p = torch.tensor([0.5], device=x.device) if order == 2 else torch.linalg.solve(r_matrix[:-1, :-1], b[:-1])
        pred_res = torch.einsum("k,bkchw->bchw", rhos_p, stacked)
    else:
        pred_res = 0
    x_t = x_t_ - (alpha_t * b_h) * pred_res
    if not use_corrector:
        return x_t, None
    rhos_c = torch.tensor([0.5], device=x.device) if order == 1 else torch.linalg.solve(r_matrix, b)
    model_t = model(x_t, k)
    corr_res = torch.einsum("k,bkchw->bchw", rhos_c[:-1], stacked) if stacked is not None else 0
    x_t = x_t_ - (alpha_t * b_h) * (corr_res + rhos_c[-1] * (model_t - model_prev_0))
    return x_t, model_t


@torch.no_grad()
def sample_unipc(run: CompVisRun, x: torch.Tensor, times: UniPcTimes, order: int = 3) -> torch.Tensor:
    """UniPC from unit noise over ``times`` (``steps + 1`` grid times, ``steps >= order``)."""
    steps = len(times.model_t) - 1
    model = _UniPcModel(run, times)
    model_prev = [model(x, 0)]
    k_prev = [0]
    for init_order in range(1, order):
        x, model_x = _bh1_update(model, x, model_prev, k_prev, init_order, init_order, use_corrector=True)
        run.update(x)
        model_prev.append(model_x)
        k_prev.append(init_order)
    for step in range(order, steps + 1):
        step_order = min(order, steps + 1 - step)
        x, model_x = _bh1_update(model, x, model_prev, k_prev, step, step_order, use_corrector=step != steps)
        run.update(x)
        model_prev = model_prev[1:] + model_prev[-1:]
        k_prev = k_prev[1:] + [step]
        if step < steps:
            model_prev[-1] = model_x if model_x is not None else model(x, step)
    return x
