"""ControlNet inside the one sampling core: the residuals a pass's ControlNet units add to every UNet call.

The extension (Mikubill/sd-webui-controlnet, ``scripts/hook.py``) runs each enabled unit's ControlNet on the
UNet's own input, timesteps and context right before the UNet, and adds the unit's outputs to the UNet's skip
connections and middle block. This module does the same for the diffusers UNet: the summed outputs go in as
``down_block_additional_residuals`` / ``mid_block_additional_residual``.

Per unit, as ``hook.py`` does:

* guidance window: a unit acts on a call only when ``sampling_step / sampling_steps`` (A1111's ``state`` numbers,
  which the sampler's step callback advances: the first two calls of a k-diffusion pass both see step 0) lies in
  ``[guidance_start, guidance_end]``;
* ``weight`` scales every output; with soft injection ("My prompt is more important" or "ControlNet is more
  important", and canny/mlsd maps in a hires pass) output ``i`` of the 13 is scaled by ``0.825 ** (12 - i)``
  instead (the middle block keeps the full weight);
* "ControlNet is more important" (the extension's ``cfg_injection``) zeroes the outputs on the uncond rows, so
  only the prompt rows of CFG are controlled;
* an inpainting UNet's extra input channels are cut off before the ControlNet sees the latent.

A unit of weight 0 is skipped outright, so the UNet is called exactly as without it (bit-identical images).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

# The extension's soft-injection decay per output, counted back from the middle block.
SOFT_DECAY = 0.825
CONTROL_OUTPUTS = 13


def layer_scales(weight: float, soft: bool) -> list[float]:
    """The extension's per-output scales: ``weight`` for each of the 13 outputs, or its soft ramp."""
    if soft:
        return [weight * SOFT_DECAY ** float(CONTROL_OUTPUTS - 1 - i) for i in range(CONTROL_OUTPUTS)]
    return [weight] * CONTROL_OUTPUTS


@dataclass
class ControlUnit:
    """One ControlNet unit of a pass.

    Args:
        model: the loaded ``ControlNetModel``.
        hint: the control map, ``(1, 3, H, W)`` in ``[0, 1]`` at the pass's pixel size.
        weight: the unit's weight.
        start, end: the guidance window (fractions of the pass's steps).
        soft: scale by :func:`layer_scales`' soft ramp.
        cond_only: only the prompt rows get the residuals ("ControlNet is more important").
    """

    model: Any
    hint: torch.Tensor
    weight: float
    start: float = 0.0
    end: float = 1.0
    soft: bool = False
    cond_only: bool = False


@dataclass
class ControlRun:
    """The ControlNet units of one sampling pass and where that pass is (A1111's sampling step and steps)."""

    units: list[ControlUnit]
    step: int = 0
    steps: int = 1
    calls: list[tuple[int, int]] = field(default_factory=list)  # (step, units run) of every UNet call

    def progress(self, step: int, steps: int) -> None:
        """The sampler reported ``step`` of ``steps`` (its step callback)."""
        self.step, self.steps = step, max(1, steps)

    def active(self) -> list[ControlUnit]:
        """The units acting on the next call: inside their window, weight not 0."""
        fraction = self.step / self.steps
        return [u for u in self.units if u.weight != 0 and u.start <= fraction <= u.end]

    def residuals(self, x_in: torch.Tensor, t_in: torch.Tensor, context: torch.Tensor,
                  cond_mark: torch.Tensor | None, added: dict | None, dtype: torch.dtype) -> dict[str, Any]:
        """The UNet keyword arguments carrying every active unit's summed outputs (none when no unit acts).

        Args:
            x_in, t_in, context: the UNet call's input, timesteps and text context (in the model's dtype).
            cond_mark: 1 for each prompt row, 0 for each uncond row (``None``: all prompt rows).
            added: SDXL's ``added_cond_kwargs``, or ``None``.
        """
        units = self.active()
        self.calls.append((self.step, len(units)))
        if not units:
            return {}
        down: list[torch.Tensor] | None = None
        mid: torch.Tensor | None = None
        for unit in units:
            outputs = self._outputs(unit, x_in, t_in, context, added, dtype)
            mark = None
            if unit.cond_only and cond_mark is not None:
                mark = cond_mark.to(outputs[0].device, outputs[0].dtype).view(-1, 1, 1, 1)
            scaled = [o * scale if mark is None else o * mark * scale
                      for o, scale in zip(outputs, layer_scales(unit.weight, unit.soft))]
            # zip stops at the shorter list as the extension's does: fewer outputs (SDXL) use the first scales.
            unit_down, unit_mid = scaled[:-1], scaled[-1]
            down = unit_down if down is None else [a + b for a, b in zip(down, unit_down)]
            mid = unit_mid if mid is None else mid + unit_mid
        return {"down_block_additional_residuals": tuple(down), "mid_block_additional_residual": mid}

    @staticmethod
    def _outputs(unit: ControlUnit, x_in: torch.Tensor, t_in: torch.Tensor, context: torch.Tensor,
                 added: dict | None, dtype: torch.dtype) -> list[torch.Tensor]:
        """A unit's ControlNet outputs: its down outputs, then its middle output."""
        channels = unit.model.config.in_channels
        sample = x_in[:, :channels] if x_in.shape[1] != channels else x_in
        hint = unit.hint.to(sample.device, dtype).expand(sample.shape[0], -1, -1, -1)
        kwargs = {"added_cond_kwargs": added} if added is not None else {}
        down, mid = unit.model(sample, t_in, encoder_hidden_states=context, controlnet_cond=hint,
                               return_dict=False, **kwargs)
        return [*down, mid]
