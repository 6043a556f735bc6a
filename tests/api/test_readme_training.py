"""The README's LoRA training example, exactly as printed: its dataset snippet and request body, on a fresh data
dir served by the built-in demo checkpoint."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sdapi.app import create_app
from sdapi.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_example() -> tuple[str, dict, str]:
    """The ``## Train a LoRA`` section's Python snippet, JSON body and curl command."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Train a LoRA\n", 1)[1].split("\n## ", 1)[0]
    snippet = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    body = json.loads(re.search(r"```json\n(.*?)```", section, re.S).group(1))
    shell = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return snippet, body, shell


def test_the_readme_example_trains_as_pasted(tmp_path, settings, monkeypatch):
    snippet, body, shell = readme_example()
    assert "--data @train.json" in shell and "/lora/train" in shell
    monkeypatch.chdir(tmp_path)
    exec(compile(snippet, "README.md", "exec"), {})  # noqa: S102 - the README's own three lines
    root = tmp_path / "data"  # `sdapi serve`'s default data dir, relative to where it starts
    app = create_app(Settings(data_dir=root, cache_dir=settings.cache_dir, num_threads=2))
    with TestClient(app, raise_server_exceptions=False) as client:
        assert [m["model_name"] for m in client.get("/sdapi/v1/sd-models").json()] == ["demo-sd15"]
        r = client.post("/lora/train", json=body)
        assert r.status_code == 202, r.text
        job_id = r.json()["job_id"]
        deadline = time.monotonic() + 300
        while (view := client.get(f"/lora/train/{job_id}").json())["status"] not in ("done", "failed", "cancelled"):
            assert time.monotonic() < deadline, view
            time.sleep(0.1)
        assert view["status"] == "done", view["error"]
        assert view["progress"]["step"] == body["max_train_steps"]
        assert [o["name"] for o in view["outputs"]] == [body["output_name"]]
        assert body["output_name"] in [lora["name"] for lora in client.get("/sdapi/v1/loras").json()]
        log = client.get(f"/lora/train/{job_id}/log").text
    chosen = [line for line in log.splitlines() if "optimizer_type" in line]
    assert len(chosen) == 1 and "AdamW" in chosen[0], log  # said once: no CUDA + bitsandbytes here
    assert view["effective_config"]["optimizer_type"] == "AdamW"


@pytest.mark.parametrize("cuda, bitsandbytes, expected", [
    (False, False, "AdamW"), (False, True, "AdamW"), (True, False, "AdamW"), (True, True, "AdamW8bit")])
def test_the_default_optimizer_is_one_that_runs_here(monkeypatch, cuda, bitsandbytes, expected):
    import importlib.util

    from sdapi.training import options

    real = importlib.util.find_spec
    monkeypatch.setattr(options.importlib.util, "find_spec",
                        lambda name, *a: (object() if bitsandbytes else None) if name == "bitsandbytes"
                        else real(name, *a))
    name, note = options.default_optimizer(cuda)
    assert name == expected and "optimizer_type" in note and expected in note
