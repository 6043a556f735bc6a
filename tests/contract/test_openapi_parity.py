"""Our ``/openapi.json`` against A1111 v1.2.1's frozen one (``schemas/openapi.json``, never edited).

Checked for the components and paths sdapi implements: component names, every A1111 property present in ours
with the same ``default`` (compared as JSON, so ``7.0`` is not ``7``), the same type once pydantic v2's
rendering is normalised (``Optional[X]`` → ``anyOf: [X, null]``, ``dict`` → ``additionalProperties: true``),
the same ``required`` list, and the same methods and request/response schema references per path.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

FROZEN = Path(__file__).resolve().parents[2] / "schemas" / "openapi.json"

COMPONENTS = ["StableDiffusionProcessingTxt2Img", "TextToImageResponse", "SamplerItem", "SDModelItem", "Options",
              "Flags", "ProgressResponse", "PNGInfoRequest", "PNGInfoResponse", "MemoryResponse", "UpscalerItem",
              "HypernetworkItem", "FaceRestorerItem", "RealesrganItem", "PromptStyleItem", "EmbeddingItem",
              "EmbeddingsResponse", "ScriptsList", "PreprocessResponse", "InterrogateRequest",
              "StableDiffusionProcessingImg2Img", "ImageToImageResponse", "ExtrasSingleImageRequest",
              "ExtrasSingleImageResponse", "ExtrasBatchImagesRequest", "ExtrasBatchImagesResponse", "FileData"]
IMPLEMENTED_PATHS = ["/sdapi/v1/txt2img", "/sdapi/v1/samplers", "/sdapi/v1/sd-models", "/sdapi/v1/refresh-checkpoints",
                     "/sdapi/v1/options", "/sdapi/v1/cmd-flags", "/sdapi/v1/progress", "/sdapi/v1/interrupt",
                     "/sdapi/v1/skip", "/sdapi/v1/png-info", "/sdapi/v1/memory", "/sdapi/v1/upscalers",
                     "/sdapi/v1/hypernetworks", "/sdapi/v1/face-restorers", "/sdapi/v1/realesrgan-models",
                     "/sdapi/v1/prompt-styles", "/sdapi/v1/embeddings", "/sdapi/v1/scripts",
                     "/sdapi/v1/unload-checkpoint", "/sdapi/v1/reload-checkpoint", "/sdapi/v1/preprocess",
                     "/sdapi/v1/interrogate", "/sdapi/v1/img2img", "/sdapi/v1/extra-single-image",
                     "/sdapi/v1/extra-batch-images"]
_MISSING = object()


@pytest.fixture(scope="module")
def frozen() -> dict:
    return json.loads(FROZEN.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def ours(client) -> dict:
    r = client.get("/openapi.json")
    assert r.status_code == 200
    return r.json()


def _as_json(value) -> str:
    return "<no default>" if value is _MISSING else json.dumps(value, sort_keys=True)


def _type_of(prop: dict) -> dict:
    """A property's type with documentation and pydantic-v2-only rendering removed."""
    prop = {k: v for k, v in prop.items() if k not in ("title", "description", "default")}
    if prop.get("additionalProperties") is True:
        prop.pop("additionalProperties")
    if "anyOf" in prop:
        alternatives = [_type_of(a) for a in prop["anyOf"] if a != {"type": "null"}]
        if len(alternatives) == 1:
            rest = {k: v for k, v in prop.items() if k != "anyOf"}
            prop = {**alternatives[0], **rest}
    if "allOf" in prop and len(prop["allOf"]) == 1:  # pydantic v1's way to attach a default to a $ref
        prop = {**prop["allOf"][0], **{k: v for k, v in prop.items() if k != "allOf"}}
    if "items" in prop:
        prop["items"] = _type_of(prop["items"])
    return prop


@pytest.mark.parametrize("component", COMPONENTS)
def test_component_exists(ours, frozen, component):
    assert component in frozen["components"]["schemas"]
    assert component in ours["components"]["schemas"]


@pytest.mark.parametrize("component", COMPONENTS)
def test_component_properties_and_defaults(ours, frozen, component):
    theirs = frozen["components"]["schemas"][component]
    mine = ours["components"]["schemas"][component]
    missing = sorted(set(theirs["properties"]) - set(mine["properties"]))
    assert missing == []
    wrong_defaults = {
        name: (_as_json(prop.get("default", _MISSING)), _as_json(mine["properties"][name].get("default", _MISSING)))
        for name, prop in theirs["properties"].items()
        if _as_json(prop.get("default", _MISSING)) != _as_json(mine["properties"][name].get("default", _MISSING))
    }
    assert wrong_defaults == {}, "property: (A1111 default, our default)"
    wrong_types = {
        name: (_type_of(prop), _type_of(mine["properties"][name]))
        for name, prop in theirs["properties"].items()
        if _type_of(prop) != _type_of(mine["properties"][name])
    }
    assert wrong_types == {}, "property: (A1111 type, our type)"
    assert sorted(mine.get("required", [])) == sorted(theirs.get("required", []))


def test_txt2img_defaults_keep_int_and_float_apart(ours):
    props = ours["components"]["schemas"]["StableDiffusionProcessingTxt2Img"]["properties"]
    assert json.dumps(props["cfg_scale"]["default"]) == "7.0"
    assert json.dumps(props["denoising_strength"]["default"]) == "0"


@pytest.mark.parametrize("path", IMPLEMENTED_PATHS)
def test_implemented_path_has_a1111_methods_and_schemas(ours, frozen, path):
    assert path in frozen["paths"] and path in ours["paths"]
    assert sorted(ours["paths"][path]) == sorted(frozen["paths"][path])
    for method, theirs in frozen["paths"][path].items():
        mine = ours["paths"][path][method]
        assert mine.get("requestBody") == theirs.get("requestBody")
        assert sorted(mine["responses"]) == sorted(theirs["responses"])
        assert mine["responses"]["200"].get("content") == theirs["responses"]["200"].get("content")


def test_every_a1111_path_we_serve_has_a1111_methods(ours, frozen):
    shared = set(ours["paths"]) & set(frozen["paths"])
    assert set(IMPLEMENTED_PATHS) <= shared
    wrong = {p: (sorted(frozen["paths"][p]), sorted(ours["paths"][p]))
             for p in shared if sorted(ours["paths"][p]) != sorted(frozen["paths"][p])}
    assert wrong == {}, "path: (A1111 methods, ours)"


def test_docs_page_is_html(client):
    r = client.get("/docs")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in r.text
