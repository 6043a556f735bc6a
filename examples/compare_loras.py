# Pick a LoRA epoch and strength the way the notes do: A1111's X/Y/Z plot over /sdapi/v1/txt2img, with
# X = Prompt S/R over the epoch files (name-000001, name-000002, ...) and Y = Prompt S/R over the strength in
# <lora:name-000001:1>. One fixed seed, so the cells differ only by epoch and strength.
#
# Run a server, then this script:
#     sdapi serve --api                          # or A1111 itself, launched with --api
#     python examples/compare_loras.py           # writes compare_loras.png
#
# Without LoRA epochs of your own, let the script write two tiny demo epochs (random weights, for the demo
# checkpoint) into the server's data folder first:
#     SDAPI_DATA_DIR=/path/to/server/data python examples/compare_loras.py
#
# Environment:
#     SDAPI_URL       server base URL                          (default http://127.0.0.1:7860)
#     SDAPI_MODEL     sd_model_checkpoint                      (default demo-sd15.safetensors, the built-in demo)
#     SDAPI_LORA      the LoRA's output name, epochs NAME-NNNNNN (default demo-epochs)
#     SDAPI_PROMPT    the prompt before the LoRA tag            (default "a photo of a cat")
#     SDAPI_DATA_DIR  write the demo epochs there and refresh   (default: don't)
#     SDAPI_OUT       the grid PNG                             (default compare_loras.png)
import base64
import json
import os
import re

import requests

STRENGTHS = ["1", "0.8", "0.6", "0.4", "0.2"]
PROMPT_SR = 7  # "Prompt S/R" in A1111 v1.2.1's txt2img axis list


def epoch_names(url: str, lora: str) -> list:
    """The epoch files the server lists for ``lora`` (``lora-000001`` ...), in epoch order."""
    names = [item["name"] for item in requests.get(f"{url}/sdapi/v1/loras", timeout=60).json()]
    return sorted(n for n in names if re.fullmatch(re.escape(lora) + r"-\d{6}", n))


def plot_payload(model: str, prompt: str, epochs: list) -> dict:
    """The txt2img request: the first epoch at strength 1 in the prompt, both replaced cell by cell."""
    x_values = ", ".join(epochs)
    y_values = ", ".join(f":{s}>" for s in STRENGTHS)
    return {
        "prompt": f"{prompt} <lora:{epochs[0]}:{STRENGTHS[0]}>",
        "negative_prompt": "",
        "seed": 1234,
        "steps": 20,
        "cfg_scale": 7,
        "width": 512,
        "height": 512,
        "sampler_index": "Euler a",
        "override_settings": {"sd_model_checkpoint": model},
        "script_name": "x/y/z plot",
        # A1111 v1.2.1's 14 positional arguments: x type, x values, x dropdown, y ..., z ...,
        # draw_legend, include_lone_images, include_sub_grids, no_fixed_seeds, margin_size
        "script_args": [PROMPT_SR, x_values, [], PROMPT_SR, y_values, [], 0, "", [], True, False, False, False, 0],
    }


def main(url: str, model: str, lora: str, prompt: str, out: str, data_dir: str = "", **size) -> dict:
    """Plot ``lora``'s epochs against strengths and write the grid to ``out``; returns the response's info."""
    if data_dir:
        from sdapi.engine.demo_lora_epochs import write_demo_lora_epochs

        write_demo_lora_epochs(data_dir, epochs=2, name=lora)
        requests.post(f"{url}/sdapi/v1/refresh-loras", timeout=60)
    epochs = epoch_names(url, lora)
    if not epochs:
        raise SystemExit(f"no LoRA epochs named {lora}-NNNNNN on {url} (set SDAPI_DATA_DIR to write demo ones)")
    payload = {**plot_payload(model, prompt, epochs), **size}
    r = requests.post(f"{url}/sdapi/v1/txt2img", json=payload, timeout=3600).json()
    if "error" in r:
        raise SystemExit(f"{r['error']}: {r['errors'] or r['detail']}")
    with open(out, "wb") as f:
        f.write(base64.b64decode(r["images"][0]))
    info = json.loads(r["info"])
    print(f"{out}: {len(epochs)} epochs x {len(STRENGTHS)} strengths, seed {info['seed']}")
    return info


if __name__ == "__main__":
    main(url=os.environ.get("SDAPI_URL", "http://127.0.0.1:7860").rstrip("/"),
         model=os.environ.get("SDAPI_MODEL", "demo-sd15.safetensors"),
         lora=os.environ.get("SDAPI_LORA", "demo-epochs"),
         prompt=os.environ.get("SDAPI_PROMPT", "a photo of a cat"),
         out=os.environ.get("SDAPI_OUT", "compare_loras.png"),
         data_dir=os.environ.get("SDAPI_DATA_DIR", ""))
