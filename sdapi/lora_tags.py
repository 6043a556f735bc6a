"""``<lora:…>`` tags → the LoRA files and multipliers a job applies, plus the ``Lora hashes`` infotext value.

A1111 behaviour kept here (``extensions-builtin/Lora/extra_networks_lora.py``):

* ``<lora:NAME>`` and ``<lora:NAME:MULT>`` (v1.2.1): the multiplier defaults to 1.0 and applies to the text
  encoder and the UNet; ``<lora:NAME:TE:UNET>`` and named ``te=``/``unet=`` (v1.5+) set them apart, the UNet one
  defaulting to the text-encoder one. Negative multipliers are allowed.
* NAME is a file name or an alias (``ss_output_name``); an unknown one is logged
  ("Couldn't find Lora with name …") and the job goes on without it.
* Option ``sd_lora`` ("Add Lora to prompt") adds that LoRA, at ``extra_networks_default_multiplier``, to every
  prompt that does not mention it: the tag is appended to the prompts shown in infotexts.
* ``Lora hashes`` (v1.3+): ``"<name as written>: <12 hex>, …"``, ``:`` and ``,`` removed from the names.

Differences: a tag whose multiplier is not a number is skipped with a log line (A1111 v1.2.1 dropped every LoRA
of the job then); files sdapi cannot apply (LoHa, LoKr, …) are skipped with an error line before the job.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sdapi.engine.params import LoraActivation
from sdapi.loras import LoraCatalog
from sdapi.options import Options
from sdapi.prompts.extra_networks import ExtraNetworkParams

log = logging.getLogger("sdapi")

LORA_NETWORK = "lora"
NO_LORA = "None"
_HASH_NAME_SYMBOLS = str.maketrans("", "", ":,")


@dataclass(frozen=True)
class LoraTag:
    """One ``<lora:…>`` tag, parsed.

    Args:
        name: the file name or alias as written.
        te_multiplier: text-encoder strength.
        unet_multiplier: UNet strength.
    """

    name: str
    te_multiplier: float
    unet_multiplier: float


@dataclass
class LoraSelection:
    """What a job's ``<lora:…>`` tags resolved to.

    Args:
        activations: files and multipliers for the engine, in prompt order.
        hashes: ``{name as written: 12-hex hash}`` of the applied files.
        appended_tag: the ``sd_lora`` tag appended to the prompts, or ``""``.
        warnings: the tags that were not applied, and why (for the response's ``info``).
    """

    activations: list[LoraActivation] = field(default_factory=list)
    hashes: dict[str, str] = field(default_factory=dict)
    appended_tag: str = ""
    warnings: list[str] = field(default_factory=list)

    def hashes_text(self) -> str | None:
        """The ``Lora hashes`` infotext value, or ``None`` when no applied file has a hash."""
        return ", ".join(f"{name}: {value}" for name, value in self.hashes.items()) or None


def parse_lora_tag(params: ExtraNetworkParams) -> LoraTag:
    """Read a tag's name and multipliers.

    Args:
        params: the tag's arguments.

    Returns:
        The parsed tag.

    Raises:
        ValueError: when a multiplier is not a number or the name is missing.
    """
    positional, named = params.positional, params.named
    if not positional or not positional[0]:
        raise ValueError("the tag names no LoRA")
    te = float(positional[1]) if len(positional) > 1 else 1.0
    te = float(named.get("te", te))
    unet = float(positional[2]) if len(positional) > 2 else te
    unet = float(named.get("unet", unet))
    return LoraTag(positional[0], te, unet)


def parse_lora_tags(params_list: list[ExtraNetworkParams], warnings: list[str] | None = None) -> list[LoraTag]:
    """Parse every ``<lora:…>`` tag, skipping malformed ones with a warning (logged, and added to ``warnings``)."""
    tags = []
    for params in params_list:
        try:
            tags.append(parse_lora_tag(params))
        except ValueError as exc:
            _warn(warnings, f"<lora:{':'.join(params.items)}> was ignored: {exc}")
    return tags


def _warn(warnings: list[str] | None, message: str, level: int = logging.WARNING) -> None:
    log.log(level, "%s", message)
    if warnings is not None:
        warnings.append(message)


def default_lora_tag(tags: list[LoraTag], catalog: LoraCatalog, options: Options) -> LoraTag | None:
    """The ``sd_lora`` option's LoRA when it is set, exists (by file name) and is not already mentioned."""
    wanted = options.get("sd_lora") if "sd_lora" in options else NO_LORA
    if not wanted or wanted == NO_LORA or any(tag.name == wanted for tag in tags):
        return None
    if not any(entry.name == wanted for entry in catalog.items()):
        return None
    multiplier = float(options.get("extra_networks_default_multiplier"))
    return LoraTag(wanted, multiplier, multiplier)


def select_loras(networks: dict[str, list[ExtraNetworkParams]], catalog: LoraCatalog | None,
                 options: Options) -> LoraSelection:
    """Resolve a job's extra networks (from its first prompt) against the catalog.

    Args:
        networks: from :func:`sdapi.prompts.extra_networks.parse_prompts`.
        catalog: the LoRA catalog (``None``: no LoRA support, tags are only stripped).
        options: for ``sd_lora`` and ``extra_networks_default_multiplier``.

    Returns:
        The selection; unknown names and unusable files are logged and left out.
    """
    for network in networks:
        if network != LORA_NETWORK:
            log.warning("Skipping unknown extra network: %s", network)
    selection = LoraSelection()
    if catalog is None:
        return selection
    tags = parse_lora_tags(networks.get(LORA_NETWORK, []), selection.warnings)
    extra = default_lora_tag(tags, catalog, options)
    if extra is not None:
        tags.append(extra)
        selection.appended_tag = f"<lora:{extra.name}:{options.get('extra_networks_default_multiplier')}>"
    for tag in tags:
        entry = catalog.find(tag.name)
        if entry is None:
            _warn(selection.warnings, f"Couldn't find Lora with name {tag.name}")
            continue
        if entry.problem is not None:
            _warn(selection.warnings, f"Lora {tag.name} is {entry.problem}, which sdapi cannot apply; it was skipped",
                  logging.ERROR)
            continue
        selection.activations.append(LoraActivation(str(entry.filename), tag.name, tag.te_multiplier,
                                                    tag.unet_multiplier))
        shorthash = catalog.shorthash(entry)
        if shorthash:
            selection.hashes[tag.name.translate(_HASH_NAME_SYMBOLS)] = shorthash
    return selection
