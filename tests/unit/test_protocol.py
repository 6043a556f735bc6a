"""sdapi.protocol: A1111 v1.2.1 wire models, v1 coercion, OpenAPI parity, v1 validation errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from pydantic import ValidationError

from sdapi.protocol.base import LATER_FIELDS
from sdapi.protocol import (
    ImageToImageResponse,
    SamplerItem,
    SDModelItem,
    StableDiffusionProcessingImg2Img,
    StableDiffusionProcessingTxt2Img,
    TextToImageResponse,
    v1_validation_errors,
)

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "a1111-v1.2.1"
FROZEN_OPENAPI = ROOT / "schemas" / "openapi.json"


def _load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def _recordings(path: str, status: int = 200) -> list[Path]:
    out = []
    for p in sorted(FIXTURES.rglob("*.json")):
        if p.name.startswith("openapi"):
            continue
        rec = json.loads(p.read_text())
        if rec.get("path") == path and rec.get("status") == status and "parameters" in (rec.get("response") or {}):
            out.append(p)
    return out


TXT2IMG_RECORDINGS = _recordings("/sdapi/v1/txt2img")
IMG2IMG_RECORDINGS = _recordings("/sdapi/v1/img2img")


def _dumps(obj) -> str:
    # no sort_keys: key order is part of the echo
    return json.dumps(obj)


# --------------------------------------------------------------------------------------------
# (a) parameters echo
# --------------------------------------------------------------------------------------------


def test_recordings_found():
    assert len(TXT2IMG_RECORDINGS) >= 9
    assert [p.name for p in IMG2IMG_RECORDINGS] == ["post-img2img-basic.json"]


@pytest.mark.parametrize("path", TXT2IMG_RECORDINGS, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_txt2img_parameters_echo(path):
    rec = json.loads(path.read_text())
    req = StableDiffusionProcessingTxt2Img(**rec["request"])
    assert _dumps(req.model_dump()) == _dumps(rec["response"]["parameters"])
    # also through validation from JSON text and the JSON dump mode
    req2 = StableDiffusionProcessingTxt2Img.model_validate_json(json.dumps(rec["request"]))
    assert _dumps(req2.model_dump()) == _dumps(rec["response"]["parameters"])
    assert req2.model_dump_json() == json.dumps(rec["response"]["parameters"], separators=(",", ":"))


def test_txt2img_default_echo_is_the_minimal_recording():
    rec = _load("post-txt2img-minimal-64px.json")
    expected = dict(rec["response"]["parameters"])
    expected.update(prompt="", width=512, height=512, steps=50)
    assert _dumps(StableDiffusionProcessingTxt2Img().model_dump()) == _dumps(expected)


@pytest.mark.parametrize("path", IMG2IMG_RECORDINGS, ids=lambda p: p.name)
def test_img2img_parameters_echo(path):
    rec = json.loads(path.read_text())
    req = StableDiffusionProcessingImg2Img(**rec["request"])
    dumped = req.model_dump()
    expected = rec["response"]["parameters"]
    assert list(dumped) == list(expected)
    strip = ("init_images", "mask")
    assert _dumps({k: v for k, v in dumped.items() if k not in strip}) == _dumps(
        {k: v for k, v in expected.items() if k not in strip}
    )
    # what the handler does when include_init_images is false
    assert req.include_init_images is False
    assert _dumps({**dumped, "init_images": None, "mask": None}) == _dumps(expected)


def test_img2img_defaults():
    d = StableDiffusionProcessingImg2Img().model_dump()
    assert _dumps(d["denoising_strength"]) == "0.75"
    assert d["include_init_images"] is False
    assert d["init_images"] is None and d["mask"] is None
    assert d["mask_blur"] == 4 and d["inpaint_full_res"] is True
    assert _dumps(d["subseed_strength"]) == "0"


def test_denoising_strength_int_default_but_client_value_is_float():
    assert _dumps(StableDiffusionProcessingTxt2Img().model_dump()["denoising_strength"]) == "0"
    assert _dumps(StableDiffusionProcessingTxt2Img(denoising_strength=0.5).model_dump()["denoising_strength"]) == "0.5"
    assert _dumps(StableDiffusionProcessingTxt2Img(denoising_strength=0).model_dump()["denoising_strength"]) == "0.0"
    m = StableDiffusionProcessingTxt2Img()
    assert m.model_dump(mode="json")["denoising_strength"] == 0
    assert '"denoising_strength":0,' in m.model_dump_json()
    assert '"cfg_scale":7.0,' in m.model_dump_json()


def test_mutable_defaults_not_shared():
    a, b = StableDiffusionProcessingTxt2Img(), StableDiffusionProcessingTxt2Img()
    a.script_args.append(1)
    a.alwayson_scripts["x"] = {}
    assert b.script_args == [] and b.alwayson_scripts == {}


def test_response_models():
    r = TextToImageResponse(images=["aGk="], parameters={"denoising_strength": 0}, info="{}")
    assert r.model_dump_json() == '{"images":["aGk="],"parameters":{"denoising_strength":0},"info":"{}"}'
    assert TextToImageResponse(parameters={}, info="").images is None
    assert ImageToImageResponse(parameters={}, info="").model_dump() == {"images": None, "parameters": {}, "info": ""}
    with pytest.raises(ValidationError):
        TextToImageResponse(images=[])


def test_sampler_items_from_recording():
    rec = _load("get-samplers.json")
    for item in rec["response"]:
        assert SamplerItem(**item).model_dump() == item
    # A1111's sampler options hold Python bools; Dict[str, str] renders them as "True"
    assert SamplerItem(name="DPM2", aliases=["k_dpm_2"], options={"discard_next_to_last_sigma": True}).options == {
        "discard_next_to_last_sigma": "True"
    }


@pytest.mark.parametrize("name", ["get-sd-models.json", "get-sd-models-hashed.json"])
def test_sd_model_items_from_recording(name):
    rec = _load(name)
    for item in rec["response"]:
        assert _dumps(SDModelItem(**item).model_dump()) == _dumps(item)


# --------------------------------------------------------------------------------------------
# (b) pydantic-v1 coercion, row by row
# --------------------------------------------------------------------------------------------

T2I = StableDiffusionProcessingTxt2Img
I2I = StableDiffusionProcessingImg2Img

COERCION_OK = [
    # (model, field, sent, expected)  — expected compared as JSON text (type matters)
    (T2I, "steps", "20", 20),
    (T2I, "steps", 20.7, 20),
    (T2I, "steps", -3.9, -3),
    (T2I, "steps", " 20 ", 20),
    (T2I, "steps", True, 1),
    (T2I, "steps", 20, 20),
    (T2I, "seed", "-1", -1),
    (T2I, "seed", 4294967296, 4294967296),
    (I2I, "inpainting_mask_invert", False, 0),
    (I2I, "inpainting_mask_invert", True, 1),
    (T2I, "cfg_scale", 7, 7.0),
    (T2I, "cfg_scale", "7.5", 7.5),
    (T2I, "cfg_scale", "7", 7.0),
    (T2I, "cfg_scale", True, 1.0),
    (T2I, "cfg_scale", False, 0.0),
    (T2I, "hr_scale", 2, 2.0),
    (T2I, "denoising_strength", 0.5, 0.5),
    (T2I, "enable_hr", "True", True),
    (T2I, "enable_hr", "true", True),
    (T2I, "enable_hr", "1", True),
    (T2I, "enable_hr", "yes", True),
    (T2I, "enable_hr", "on", True),
    (T2I, "enable_hr", "Y", True),
    (T2I, "enable_hr", "t", True),
    (T2I, "enable_hr", 1, True),
    (T2I, "enable_hr", 1.0, True),
    (T2I, "enable_hr", "False", False),
    (T2I, "enable_hr", "off", False),
    (T2I, "enable_hr", "no", False),
    (T2I, "enable_hr", "n", False),
    (T2I, "enable_hr", "0", False),
    (T2I, "enable_hr", 0, False),
    (T2I, "prompt", 0, "0"),
    (T2I, "prompt", 7.5, "7.5"),
    (T2I, "prompt", True, "True"),
    (T2I, "sampler_index", 0, "0"),
    (T2I, "styles", ["a", 1], ["a", "1"]),
    (T2I, "script_args", [7, "x", [], True], [7, "x", [], True]),
    (T2I, "override_settings", {"CLIP_stop_at_last_layers": 2}, {"CLIP_stop_at_last_layers": 2}),
    (T2I, "override_settings", [["CLIP_stop_at_last_layers", 2]], {"CLIP_stop_at_last_layers": 2}),
    (T2I, "alwayson_scripts", {"x": {"args": [1]}}, {"x": {"args": [1]}}),
    (I2I, "init_images", ["aGk="], ["aGk="]),
    (I2I, "mask", "aGk=", "aGk="),
]


@pytest.mark.parametrize("model,field,sent,expected", COERCION_OK, ids=lambda x: repr(x)[:30])
def test_coercion_ok(model, field, sent, expected):
    m = model(**{field: sent})
    assert _dumps(getattr(m, field)) == _dumps(expected)
    # same through JSON text
    m2 = model.model_validate_json(json.dumps({field: sent}))
    assert _dumps(m2.model_dump()[field]) == _dumps(expected)


FIELDS_T2I = list(T2I.model_fields)
FIELDS_I2I = list(I2I.model_fields)


@pytest.mark.parametrize("field", FIELDS_T2I)
def test_null_accepted_for_every_txt2img_field(field):
    assert getattr(T2I(**{field: None}), field) is None


@pytest.mark.parametrize("field", FIELDS_I2I)
def test_null_accepted_for_every_img2img_field(field):
    assert getattr(I2I(**{field: None}), field) is None


def test_unknown_keys_ignored():
    m = T2I(prompt="x", hr_sampler_name="Euler", scheduler="karras", infotext="...", bogus={"a": 1})
    assert m.prompt == "x"
    assert "hr_sampler_name" not in m.model_dump() and "bogus" not in m.model_dump()
    # Later fields sdapi reads are kept on the model but, like unknown keys, never dumped (v1.2.1's echo).
    assert m.scheduler == "karras" and "scheduler" not in m.model_dump()
    later = LATER_FIELDS["StableDiffusionProcessingTxt2Img"]
    assert list(m.model_dump()) == [f for f in FIELDS_T2I if f not in later]


def test_later_fields_are_a1111_v1_10_fields_with_its_types():
    # A copy of A1111 v1.10.x's OpenAPI document (../shared/fixtures/a1111/openapi).
    v1_10 = json.loads((ROOT / "tests/fixtures/a1111/openapi/a1111-v1.10.x.openapi.json").read_text())
    ours = _tiny_app().openapi()["components"]["schemas"]
    for component, fields in LATER_FIELDS.items():
        theirs = v1_10["components"]["schemas"][component]["properties"]
        for name in fields:
            assert _non_null(ours[component]["properties"][name]).get("type") == theirs[name]["type"], name
            assert ours[component]["properties"][name].get("default") == theirs[name].get("default"), name


def test_non_dict_body_like_v1():
    assert T2I.model_validate([["prompt", "x"]]).prompt == "x"
    with pytest.raises(ValidationError) as e:
        T2I.model_validate([1, 2])
    assert v1_validation_errors(e.value) == [{"loc": [], "msg": "value is not a valid dict", "type": "type_error.dict"}]


COERCION_ERR = [
    # (model, field, sent, v1 type, v1 msg)
    (T2I, "steps", "abc", "type_error.integer", "value is not a valid integer"),
    (T2I, "steps", "20.0", "type_error.integer", "value is not a valid integer"),
    (T2I, "steps", "", "type_error.integer", "value is not a valid integer"),
    (T2I, "steps", [], "type_error.integer", "value is not a valid integer"),
    (T2I, "steps", {}, "type_error.integer", "value is not a valid integer"),
    (T2I, "steps", math.nan, "type_error.integer", "value is not a valid integer"),
    (T2I, "steps", math.inf, "type_error.integer", "value is not a valid integer"),
    (T2I, "steps", "9" * 4301, "type_error.integer", "value is not a valid integer"),
    (T2I, "cfg_scale", "abc", "type_error.float", "value is not a valid float"),
    (T2I, "cfg_scale", [1], "type_error.float", "value is not a valid float"),
    (T2I, "enable_hr", "maybe", "type_error.bool", "value could not be parsed to a boolean"),
    (T2I, "enable_hr", 2, "type_error.bool", "value could not be parsed to a boolean"),
    (T2I, "enable_hr", " true", "type_error.bool", "value could not be parsed to a boolean"),
    (T2I, "enable_hr", [], "type_error.bool", "value could not be parsed to a boolean"),
    (T2I, "prompt", ["a"], "type_error.str", "str type expected"),
    (T2I, "prompt", {"a": 1}, "type_error.str", "str type expected"),
    (T2I, "styles", "a", "type_error.list", "value is not a valid list"),
    (T2I, "script_args", "a", "type_error.list", "value is not a valid list"),
    (T2I, "override_settings", "z", "type_error.dict", "value is not a valid dict"),
    (T2I, "alwayson_scripts", [1], "type_error.dict", "value is not a valid dict"),
]


@pytest.mark.parametrize("model,field,sent,v1_type,v1_msg", COERCION_ERR, ids=lambda x: repr(x)[:30])
def test_coercion_errors(model, field, sent, v1_type, v1_msg):
    with pytest.raises(ValidationError) as e:
        model(**{field: sent})
    assert v1_validation_errors(e.value) == [{"loc": [field], "msg": v1_msg, "type": v1_type}]


def test_none_inside_a_list_is_v1_none_not_allowed():
    with pytest.raises(ValidationError) as e:
        T2I(styles=["a", None])
    assert v1_validation_errors(e.value) == [
        {"loc": ["styles", 1], "msg": "none is not an allowed value", "type": "type_error.none.not_allowed"}
    ]


def test_large_float_string_and_nan():
    assert T2I(cfg_scale="1e400").cfg_scale == math.inf
    assert math.isnan(T2I(cfg_scale="nan").cfg_scale)
    with pytest.raises(ValidationError):
        T2I(cfg_scale=10**400)  # float() overflow -> v1-style float error, not a crash


def test_model_copy_update_like_handler():
    req = T2I(prompt="x", sampler_index="Euler a")
    populate = req.model_copy(update={"sampler_name": "Euler a", "do_not_save_samples": True})
    assert populate.sampler_name == "Euler a" and req.sampler_name is None


# --------------------------------------------------------------------------------------------
# (c) OpenAPI parity with the frozen A1111 v1.2.1 document
# --------------------------------------------------------------------------------------------


def _tiny_app() -> FastAPI:
    app = FastAPI()

    @app.post("/sdapi/v1/txt2img", response_model=TextToImageResponse)
    def text2imgapi(txt2imgreq: StableDiffusionProcessingTxt2Img):
        return TextToImageResponse(images=[], parameters=txt2imgreq.model_dump(), info="{}")

    @app.post("/sdapi/v1/img2img", response_model=ImageToImageResponse)
    def img2imgapi(img2imgreq: StableDiffusionProcessingImg2Img):
        return ImageToImageResponse(images=[], parameters=img2imgreq.model_dump(), info="{}")

    @app.get("/sdapi/v1/samplers", response_model=list[SamplerItem])
    def get_samplers():
        return []

    @app.get("/sdapi/v1/sd-models", response_model=list[SDModelItem])
    def get_sd_models():
        return []

    @app.exception_handler(RequestValidationError)
    async def _v1_validation_handler(request, exc):
        return JSONResponse(status_code=422, content={"detail": v1_validation_errors(exc)})

    return app


PARITY_COMPONENTS = [
    "StableDiffusionProcessingTxt2Img",
    "StableDiffusionProcessingImg2Img",
    "TextToImageResponse",
    "ImageToImageResponse",
    "SamplerItem",
    "SDModelItem",
]


@pytest.fixture(scope="module")
def frozen_components() -> dict:
    return json.loads(FROZEN_OPENAPI.read_text())["components"]["schemas"]


@pytest.fixture(scope="module")
def our_components() -> dict:
    return _tiny_app().openapi()["components"]["schemas"]


def test_frozen_openapi_is_the_shared_recording():
    shared = Path("/work/shared/fixtures/a1111-v1.2.1/openapi.json")
    if not shared.exists():
        pytest.skip("shared fixture folder not present")
    assert FROZEN_OPENAPI.read_bytes() == shared.read_bytes()


def test_component_names_exist(our_components):
    for name in PARITY_COMPONENTS + ["HTTPValidationError", "ValidationError"]:
        assert name in our_components, name


def _non_null(schema: dict) -> dict:
    """Our ``anyOf: [X, {"type": "null"}]`` (pydantic v2 Optional) -> X."""
    if "anyOf" in schema:
        variants = [s for s in schema["anyOf"] if s != {"type": "null"}]
        if len(variants) == 1:
            return variants[0]
    return schema


@pytest.mark.parametrize("name", PARITY_COMPONENTS)
def test_component_properties_and_defaults(name, frozen_components, our_components):
    frozen = frozen_components[name]
    ours = our_components[name]
    # same property names, same order; then the later A1111 fields sdapi reads
    assert list(ours["properties"]) == list(frozen["properties"]) + list(LATER_FIELDS.get(name, ()))
    assert sorted(ours.get("required", [])) == sorted(frozen.get("required", []))
    for prop, fschema in frozen["properties"].items():
        oschema = ours["properties"][prop]
        # defaults compared as JSON text: 0 vs 0.0 matters
        assert json.dumps(oschema.get("default")) == json.dumps(fschema.get("default")), prop
        assert oschema.get("title") == fschema.get("title"), prop
        # same JSON type (ours may be wrapped in anyOf[..., null])
        o = _non_null(oschema)
        assert o.get("type") == fschema.get("type"), prop
        if "items" in fschema:
            assert o.get("items") == fschema["items"], prop
        if isinstance(fschema.get("additionalProperties"), dict):
            assert o.get("additionalProperties") == fschema["additionalProperties"], prop


def test_paths_reference_components():
    doc = _tiny_app().openapi()
    post = doc["paths"]["/sdapi/v1/txt2img"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/StableDiffusionProcessingTxt2Img"
    }
    assert post["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/TextToImageResponse"
    }
    assert post["responses"]["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/HTTPValidationError"
    }


# --------------------------------------------------------------------------------------------
# (d) v1 validation error bodies
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(_tiny_app())


def _post_raw(client: TestClient, path: str, body: str | bytes, content_type: str | None = "application/json"):
    headers = {"content-type": content_type} if content_type else {}
    return client.post(path, content=body.encode() if isinstance(body, str) else body, headers=headers)


@pytest.mark.parametrize("name", ["error-txt2img-invalid-json.json", "error-txt2img-empty-body.json"])
def test_recorded_422_bodies(client, name):
    rec = _load(name)
    r = _post_raw(client, rec["path"], rec["request"])
    assert r.status_code == rec["status"] == 422
    assert r.json() == rec["response"]
    assert json.dumps(r.json()) == json.dumps(rec["response"])  # key order too
    assert r.headers["content-length"] == rec["response_headers"]["content-length"]


def test_null_body_is_missing(client):
    r = _post_raw(client, "/sdapi/v1/txt2img", "null")
    assert r.status_code == 422
    assert r.json() == {"detail": [{"loc": ["body"], "msg": "field required", "type": "value_error.missing"}]}


@pytest.mark.parametrize("body", ["[1, 2]", '"abc"', "3"])
def test_non_object_body(client, body):
    r = _post_raw(client, "/sdapi/v1/txt2img", body)
    assert r.status_code == 422
    assert r.json() == {"detail": [{"loc": ["body"], "msg": "value is not a valid dict", "type": "type_error.dict"}]}


def test_non_json_content_type_body(client):
    r = _post_raw(client, "/sdapi/v1/txt2img", '{"steps": 2}', content_type="text/plain")
    assert r.status_code == 422
    assert r.json() == {"detail": [{"loc": ["body"], "msg": "value is not a valid dict", "type": "type_error.dict"}]}


def test_bad_int(client):
    r = client.post("/sdapi/v1/txt2img", json={"prompt": "x", "steps": "abc"})
    assert r.status_code == 422
    assert json.dumps(r.json()) == json.dumps(
        {"detail": [{"loc": ["body", "steps"], "msg": "value is not a valid integer", "type": "type_error.integer"}]}
    )


def test_several_errors_in_field_order(client):
    r = client.post(
        "/sdapi/v1/img2img",
        json={"steps": "x", "cfg_scale": "y", "inpaint_full_res": "maybe", "styles": ["a", ["b"]], "resize_mode": 1.5},
    )
    assert r.status_code == 422
    assert r.json()["detail"] == [
        {"loc": ["body", "inpaint_full_res"], "msg": "value could not be parsed to a boolean", "type": "type_error.bool"},
        {"loc": ["body", "styles", 1], "msg": "str type expected", "type": "type_error.str"},
        {"loc": ["body", "steps"], "msg": "value is not a valid integer", "type": "type_error.integer"},
        {"loc": ["body", "cfg_scale"], "msg": "value is not a valid float", "type": "type_error.float"},
    ]


def test_valid_request_echo_through_app(client):
    rec = _load("post-txt2img-seed-payload-fixed-seed.json")
    r = client.post("/sdapi/v1/txt2img", json=rec["request"])
    assert r.status_code == 200
    assert json.dumps(r.json()["parameters"]) == json.dumps(rec["response"]["parameters"])


def test_invalid_json_multiline_and_raw_body_fallback():
    doc = '{\n  "a": 1,\n  x}'
    try:
        json.loads(doc)
    except json.JSONDecodeError as e:
        jde = e
    v2 = [{"type": "json_invalid", "loc": ("body", jde.pos), "msg": "JSON decode error", "input": {}, "ctx": {"error": jde.msg}}]
    expected = [
        {
            "loc": ["body", jde.pos],
            "msg": str(jde),
            "type": "value_error.jsondecode",
            "ctx": {"msg": jde.msg, "doc": doc, "pos": jde.pos, "lineno": jde.lineno, "colno": jde.colno},
        }
    ]
    exc = RequestValidationError(v2, body=doc)
    assert v1_validation_errors(exc) == expected
    # exc.body missing -> raw body bytes are re-parsed
    assert v1_validation_errors(RequestValidationError(v2), body=doc.encode()) == expected
    assert expected[0]["ctx"]["lineno"] == 3


def test_v2_builtin_error_types_mapped():
    from pydantic import BaseModel, Field

    class M(BaseModel):
        a: int = Field(default=0, ge=1)
        b: str = Field(default="", max_length=2)
        c: int = 0
        d: bool = False

    with pytest.raises(ValidationError) as e:
        M(a=0, b="abc", c="x", d="maybe")
    assert v1_validation_errors(e.value) == [
        {"loc": ["a"], "msg": "ensure this value is greater than or equal to 1", "type": "value_error.number.not_ge", "ctx": {"limit_value": 1}},
        {"loc": ["b"], "msg": "ensure this value has at most 2 characters", "type": "value_error.any_str.max_length", "ctx": {"limit_value": 2}},
        {"loc": ["c"], "msg": "value is not a valid integer", "type": "type_error.integer"},
        {"loc": ["d"], "msg": "value could not be parsed to a boolean", "type": "type_error.bool"},
    ]


def test_query_bool_error_through_app():
    app = FastAPI()

    @app.get("/progress")
    def progress(skip_current_image: bool = False):
        return {}

    @app.exception_handler(RequestValidationError)
    async def _h(request, exc):
        return JSONResponse(status_code=422, content={"detail": v1_validation_errors(exc)})

    r = TestClient(app).get("/progress?skip_current_image=maybe")
    assert r.status_code == 422
    assert r.json() == {
        "detail": [
            {"loc": ["query", "skip_current_image"], "msg": "value could not be parsed to a boolean", "type": "type_error.bool"}
        ]
    }


def test_body_without_content_type_needs_strict_content_type_false():
    """A1111 (FastAPI 0.94) parsed a body sent without Content-Type as JSON; FastAPI >= 0.13x only
    does so with ``strict_content_type=False``."""

    def build(**kw) -> TestClient:
        app = FastAPI(**kw)

        @app.post("/sdapi/v1/txt2img", response_model=TextToImageResponse)
        def text2imgapi(txt2imgreq: StableDiffusionProcessingTxt2Img):
            return TextToImageResponse(images=[], parameters=txt2imgreq.model_dump(), info="{}")

        @app.exception_handler(RequestValidationError)
        async def _h(request, exc):
            return JSONResponse(status_code=422, content={"detail": v1_validation_errors(exc)})

        return TestClient(app)

    body = '{"prompt": "x", "steps": 3}'
    r = _post_raw(build(strict_content_type=False), "/sdapi/v1/txt2img", body, content_type=None)
    assert r.status_code == 200 and r.json()["parameters"]["steps"] == 3
    r = _post_raw(build(), "/sdapi/v1/txt2img", body, content_type=None)
    assert r.status_code == 422
