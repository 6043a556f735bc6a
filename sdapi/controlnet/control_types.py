"""``/controlnet/control_types``: the extension's control-type filter (``global_state.select_control_type``), which
gives each preprocessor tag its preprocessors, the ControlNet files whose names match it, and the defaults its UI
picks.

Model names match a tag by the tag itself or its aliases (``normalmap`` also matches ``normal``...), plus
``union`` for the tags a ControlNet-Union model handles. With no checkpoint version known (as in the API), every
model passes the extension's SD1/SDXL check.
"""

from __future__ import annotations

from sdapi.controlnet.preprocessors import PREPROCESSORS, Preprocessor, sorted_preprocessors

FILTER_ALIASES = {
    "instructp2p": ["ip2p"],
    "segmentation": ["seg"],
    "normalmap": ["normal"],
    "t2i-adapter": ["t2i_adapter", "t2iadapter", "t2ia"],
    "ip-adapter": ["ip_adapter", "ipadapter"],
    "openpose": ["openpose", "densepose"],
    "instant-id": ["instant_id", "instantid"],
    "scribble": ["sketch"],
    "tile": ["blur"],
}
UNION_TAGS = ("openpose", "depth", "softedge", "scribble", "canny", "lineart", "mlsd", "normalmap", "segmentation",
              "inpaint", "tile")
NONE_MODEL = "None"


def all_tags() -> list[str]:
    """``All``, then every preprocessor tag sorted."""
    return ["All"] + sorted({tag for p in PREPROCESSORS for tag in p.tags})


def model_filters(tag: str) -> set[str]:
    """The lower-case name parts that put a model under ``tag``."""
    tag = tag.lower()
    return {tag, *FILTER_ALIASES.get(tag, []), *(["union"] if tag in UNION_TAGS else [])}


def _preprocessors_for(tag: str) -> list[Preprocessor]:
    return [p for p in sorted_preprocessors() if tag in p.tags or p.shown == "none"]


def _default_model(models: list[str]) -> str:
    if len(models) == 1:
        return NONE_MODEL
    # The extension prefers a ControlNet 1.1 file ("11" in its name before the hash).
    return next((m for m in models if "11" in m.split("[")[0]), models[1])


def select_control_type(tag: str, model_names: list[str]) -> dict:
    """One tag's entry: ``module_list``, ``model_list``, ``default_option``, ``default_model``."""
    models = [NONE_MODEL] + list(model_names)
    if tag.lower() == "all":
        return {"module_list": [p.shown for p in sorted_preprocessors()], "model_list": models,
                "default_option": "none", "default_model": NONE_MODEL}
    pattern, filters = tag.lower(), model_filters(tag)
    matching = [m for m in models if m.lower() == "none" or pattern in m.lower()
                or any(f in m.lower() for f in filters)]
    preprocessors = _preprocessors_for(tag)
    default = preprocessors[0] if len(preprocessors) == 1 else preprocessors[1]
    return {"module_list": [p.shown for p in preprocessors], "model_list": matching,
            "default_option": default.shown, "default_model": _default_model(matching)}


def control_types(model_names: list[str]) -> dict:
    """``/controlnet/control_types``'s body."""
    return {"control_types": {tag: select_control_type(tag, model_names) for tag in all_tags()}}
