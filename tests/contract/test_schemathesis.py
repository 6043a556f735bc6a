"""Schemathesis over our own ``/openapi.json``: no 5xx that A1111 v1.2.1 would not also give.

Every operation in the schema is fuzzed (valid and invalid inputs, derandomized so a failure reproduces) against
a real uvicorn server over a throw-away data dir, so ``POST /options`` and friends change nothing else's state.
Generation really runs on CPU: sizes, steps and image counts are clamped so the whole module stays well under
two minutes on two cores. A1111 itself answers some inputs with a 500 (``a1111-api.md`` §4.2); exactly those are
allowed, recognised from the request that caused them. Afterwards the server must still serve a generation.
"""

from __future__ import annotations

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from tests.live_server import serve_in_thread

MAX_EXAMPLES = 25
TASK_QUEUE_SIZE = 16
# Upper bounds for numeric request fields wherever they appear in a JSON body: a fuzzed request must cost at
# most a 64x64, 3-step generation of 2 images (hires fix and seed resize included).
FIELD_MAXIMUMS = {
    "width": 64, "height": 64, "firstphase_width": 64, "firstphase_height": 64,
    "hr_resize_x": 64, "hr_resize_y": 64, "hr_scale": 1.0, "seed_resize_from_w": 64, "seed_resize_from_h": 64,
    "steps": 3, "hr_second_pass_steps": 3,
    "batch_size": 2, "n_iter": 1,
}
CONFIG = {
    "seed": 1111,
    "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none",
                   "no-shrink": True},
    # The coverage phase (boundary values, nulls, wrong methods) runs too; stateful links are not declared.
    "phases": {"stateful": {"enabled": False}},
}


def openapi_document() -> dict:
    """Our schema, rendered by an app built exactly as served (no state: nothing is loaded to render it)."""
    from sdapi.app import create_app

    return create_app(load_model=False).openapi()


def costly_defaults(document: dict) -> dict[tuple[str, str], dict[str, float]]:
    """Per operation, the bounded body fields whose schema default is over the bound (512x512, 50 steps...).

    Args:
        document: an OpenAPI document.

    Returns:
        ``{(METHOD, path): {field: bound}}`` for the fields a request must send to stay cheap.
    """
    components = document.get("components", {}).get("schemas", {})
    costly = {}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
            body = components.get(body.get("$ref", "").rsplit("/", 1)[-1], body)
            fields = {name: FIELD_MAXIMUMS[name] for name, prop in body.get("properties", {}).items()
                      if name in FIELD_MAXIMUMS and isinstance(prop.get("default"), (int, float))
                      and prop["default"] > FIELD_MAXIMUMS[name]}
            costly[(method.upper(), path)] = fields
    return costly


# Loaded at collection so each operation is its own test: schemathesis' fixture-based lazy loading
# (``schemathesis.pytest.from_fixture``) fails under pytest 9, which dropped ``Node._nodeid``.
DOCUMENT = openapi_document()
COSTLY_DEFAULTS = costly_defaults(DOCUMENT)
schema = schemathesis.openapi.from_dict(DOCUMENT, config=schemathesis.Config.from_dict(CONFIG))


@pytest.fixture(scope="module")
def base_url(data_dir, fresh_data_dir, tmp_path_factory):
    """A real server over a copy of the demo models (the fuzzer may change its options and checkpoints)."""
    from sdapi.app import create_app
    from sdapi.settings import Limits, Settings

    # A small Agent Scheduler queue: the fuzzer's accepted tasks run in the background, a full queue answers 503.
    # The server's own bounds as low as the clamps: a body the clamps cannot reach (``[]`` takes every default,
    # a 512x512 50-step job) is refused at once instead of running for minutes on a busy machine.
    limits = Limits(max_pixels=64 * 64 * 2, max_side=64, max_steps=3, max_images=2)
    own = Settings(data_dir=fresh_data_dir(data_dir), cache_dir=tmp_path_factory.mktemp("sdapi-fuzz-cache"),
                   num_threads=2, limits=limits,
                   task_queue_size=TASK_QUEUE_SIZE)
    with serve_in_thread(create_app(own)) as url:
        yield url


def bound_generation_cost(case) -> None:
    """Make ``case`` cheap to serve: clamp the fields of ``FIELD_MAXIMUMS``; send the bound for a costly default.

    A missing field takes its default (512x512, 50 steps), so the bound is sent instead; ``null`` is kept (it is
    refused cheaply).

    Args:
        case: a generated schemathesis case, changed in place.
    """
    if isinstance(case.body, dict):
        for name, bound in COSTLY_DEFAULTS.get((case.method.upper(), case.operation.path), {}).items():
            case.body.setdefault(name, bound)
    clamp_generation_cost(case.body)


def clamp_generation_cost(body) -> None:
    """Lower every numeric field named in ``FIELD_MAXIMUMS`` to its bound, in nested objects and lists too.

    Args:
        body: a generated JSON body (left alone where it is not an object or a list).
    """
    if isinstance(body, list):
        for item in body:
            clamp_generation_cost(item)
        return
    if not isinstance(body, dict):
        return
    for key, value in body.items():
        bound = FIELD_MAXIMUMS.get(key)
        if bound is not None and isinstance(value, (int, float)) and not isinstance(value, bool) and value > bound:
            body[key] = type(value)(bound)
        else:
            clamp_generation_cost(value)


def documented_a1111_500(case, response) -> str | None:
    """Name the A1111 v1.2.1 500 (``a1111-api.md`` §4.2) that this request and response reproduce, if any.

    Args:
        case: the request schemathesis sent.
        response: its 500 response.

    Returns:
        A short name of the documented case, or ``None`` when A1111 would not have answered 500.
    """
    try:
        error = response.json()
    except ValueError:
        return None
    if not isinstance(error, dict):
        return None
    body = case.body if isinstance(case.body, dict) else {}
    if error.get("error") == "HTTPException" and error.get("detail") == "Invalid encoded image":
        return "bad base64 image"
    if error.get("error") == "KeyError":
        overrides = body.get("override_settings")
        # POST /options takes the option map itself as the body; generation requests carry it in override_settings.
        option_keys = set(overrides) if isinstance(overrides, dict) else set()
        option_keys |= set(body) if case.operation.path == "/sdapi/v1/options" else set()
        if error.get("errors") in {repr(str(key)) for key in option_keys}:
            return "unknown option key"
    upscaler = body.get("hr_upscaler")
    if error.get("errors") == f"could not find upscaler named {upscaler}" and body.get("enable_hr"):
        return "unknown hr_upscaler"
    return later_a1111_500(body, error)


def later_a1111_500(body: dict, error: dict) -> str | None:
    """The 500s later A1111 (v1.6+) gives for its later request fields, which sdapi reads (``translate_later``)."""
    named = {str(body.get(field)) for field in ("refiner_checkpoint", "hr_checkpoint_name")}
    if error.get("error") == "Exception" and error.get("errors") in {f"Could not find checkpoint with name {n}"
                                                                      for n in named}:
        return "unknown refiner or hires checkpoint"
    sampler = body.get("hr_sampler_name")
    if error.get("error") == "AssertionError" and error.get("errors") == f"bad sampler name: {sampler}":
        return "unknown hr_sampler_name"
    return None


def full_task_queue(response) -> bool:
    """sdapi's bounded Agent Scheduler queue, full: 503 with ``Retry-After`` (an answer, not a server error)."""
    try:
        error = response.json()
    except ValueError:
        return False
    return (response.status_code == 503 and "retry-after" in response.headers and isinstance(error, dict)
            and error.get("error") == "TaskQueueFull")


@schema.parametrize()
@hypothesis_settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_error_a1111_would_not_give(case, base_url):
    bound_generation_cost(case)
    # Far past the worst bounded case (a 64x64, 3-step job of 2 images): the time says nothing about the server.
    response = case.call(base_url=base_url, timeout=600)
    if response.status_code >= 500 and not full_task_queue(response):
        assert documented_a1111_500(case, response) is not None, (
            f"{response.status_code} that A1111 v1.2.1 would not give: {response.text[:500]}\n"
            f"request: {case.method} {case.path} query={case.query!r} body={case.body!r}")


def test_server_alive_after_fuzzing(base_url):
    assert requests.get(f"{base_url}/sdapi/v1/samplers", timeout=10).status_code == 200
    payload = {"prompt": "a photo of a cat", "width": 64, "height": 64, "steps": 2, "seed": 1}
    r = requests.post(f"{base_url}/sdapi/v1/txt2img", json=payload, timeout=120)
    assert r.status_code == 200, r.text
    assert len(r.json()["images"]) == 1
