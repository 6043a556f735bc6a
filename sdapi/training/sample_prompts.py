"""kohya's sample prompt lines: ``prompt --n negative --w 512 --h 768 --l 7 --s 24 --d 1337 --ss euler_a``.

One prompt per line; ``#`` lines and blank lines are skipped. kohya sampler names map onto A1111 sampler names,
because samples are drawn with sdapi's own txt2img loop.
"""

from __future__ import annotations

import re
from sdapi.engine.training.plan import SamplePrompt
from sdapi.training.errors import ConfigError

# kohya --sample_sampler / --ss value → A1111 sampler name.
KOHYA_SAMPLERS = {
    "ddim": "DDIM", "pndm": "PLMS", "lms": "LMS", "k_lms": "LMS", "euler": "Euler", "k_euler": "Euler",
    "euler_a": "Euler a", "k_euler_a": "Euler a", "heun": "Heun", "dpm_2": "DPM2", "k_dpm_2": "DPM2",
    "dpm_2_a": "DPM2 a", "k_dpm_2_a": "DPM2 a", "dpmsolver": "DPM++ 2M", "dpmsolver++": "DPM++ 2M",
    "dpmsingle": "DPM++ 2S a",
}
OPTION = re.compile(r"^(n|w|h|l|s|d|ss)\s+(.*)$", re.DOTALL)


def sampler_name(kohya: str, field: str = "sample_sampler") -> str:
    """The A1111 name of a kohya sampler name (an A1111 name passes through)."""
    if kohya in KOHYA_SAMPLERS.values():
        return kohya
    try:
        return KOHYA_SAMPLERS[kohya.lower()]
    except KeyError:
        raise ConfigError(field, f"unknown sampler {kohya!r}; use one of {', '.join(KOHYA_SAMPLERS)}") from None


def _apply_option(values: dict, key: str, text: str) -> None:
    converters = {"n": ("negative_prompt", str), "w": ("width", int), "h": ("height", int),
                  "l": ("cfg_scale", float), "s": ("steps", int), "d": ("seed", int)}
    if key == "ss":
        values["sampler"] = sampler_name(text.strip(), "sample_prompts")
        return
    name, convert = converters[key]
    try:
        values[name] = convert(text.strip())
    except ValueError:
        raise ConfigError("sample_prompts", f"--{key} {text.strip()!r} is not a number") from None


def parse_line(line: str, defaults: SamplePrompt) -> SamplePrompt:
    """One prompt line with its ``--x`` options over ``defaults``."""
    prompt, *options = re.split(r"\s--", line)
    values = {**defaults.__dict__, "prompt": prompt.strip()}
    for option in options:
        match = OPTION.match(option.strip())
        if match is None:
            raise ConfigError("sample_prompts", f"unknown option --{option.strip().split(' ')[0]}")
        _apply_option(values, match.group(1), match.group(2))
    sample = SamplePrompt(**values)
    if sample.width % 8 or sample.height % 8 or sample.width <= 0 or sample.height <= 0:
        raise ConfigError("sample_prompts", f"sample size {sample.width}x{sample.height} is not a multiple of 8")
    if not 1 <= sample.steps <= 150:
        raise ConfigError("sample_prompts", f"--s {sample.steps}: steps must be 1..150")
    return sample


def parse_prompts(text: str, defaults: SamplePrompt) -> list[SamplePrompt]:
    """Every sample of a kohya prompt text (one per non-comment line)."""
    lines = [line.strip() for line in text.splitlines()]
    return [parse_line(line, defaults) for line in lines if line and not line.startswith("#")]
