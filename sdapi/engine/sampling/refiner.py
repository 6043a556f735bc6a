"""Later A1111's refiner inside one sampling pass: from a fraction of the schedule on, another checkpoint denoises.

A1111 v1.10 (``sd_samplers_common.apply_refiner``, default measure) decides on every denoiser call: the step being
denoised is ``timestep = argmin |model sigmas - max(sigma)|`` (the timestep itself for DDIM/PLMS/UniPC), its
completed ratio ``(999 - timestep) / 1000``; once that reaches ``refiner_switch_at`` the refiner checkpoint is
loaded, the batch's conditioning is encoded again with the refiner's text encoders, and the call (and every later
one) goes to the refiner's UNet. The prompt schedule position (the call counter) carries on. With the option
``refiner_switch_by_sample_steps`` the ratio is instead the denoiser calls so far over the pass's calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from sdapi.engine.sampling.conds import BatchConds
from sdapi.engine.sampling.schedules import DiscreteSchedule

# The number of training timesteps the ratio is measured against (A1111 hard-codes 999 and 1000).
LAST_TIMESTEP = 999


@dataclass
class RefinerSwitch:
    """The switch to a refiner checkpoint within one sampling pass.

    Args:
        switch_at: ``refiner_switch_at``.
        take: loads the refiner and encodes the batch's conditioning for it: ``() -> (model, conds)``.
        by_steps: A1111's ``refiner_switch_by_sample_steps`` (ratio of denoiser calls, ``total_calls`` of them).
        total_calls: the pass's denoiser calls, for ``by_steps``.
    """

    switch_at: float
    take: Callable[[], tuple[Any, BatchConds]]
    by_steps: bool = False
    total_calls: int = 1
    switched: bool = field(default=False, init=False)

    def completed_ratio(self, schedule: DiscreteSchedule, level: torch.Tensor, calls: int, sigma: bool) -> float:
        """How far into the schedule this call is.

        Args:
            level: the call's sigmas (k-diffusion) or timesteps (CompVis samplers).
            calls: denoiser calls made so far in this pass.
            sigma: ``level`` holds sigmas.
        """
        if self.by_steps:
            return calls / max(1, self.total_calls)
        if sigma:
            timestep = int(torch.argmin(torch.abs(schedule.sigmas.float() - level.max().float().cpu())))
        else:
            timestep = int(level.max())
        return (LAST_TIMESTEP - timestep) / 1000

    def due(self, schedule: DiscreteSchedule, level: torch.Tensor, calls: int, sigma: bool) -> bool:
        """Whether this call switches to the refiner (only once)."""
        return not self.switched and self.completed_ratio(schedule, level, calls, sigma) >= self.switch_at

    def switch(self) -> tuple[Any, BatchConds]:
        """The refiner model and its conditioning, from now on."""
        self.switched = True
        return self.take()
