"""Replaying the A1111 v1.2.1 pixel-parity fixture set through sdapi's HTTP API.

The set (``../shared/fixtures/a1111-parity``, about 17 MB, so referenced rather than copied) holds a tiny SD-1.x
checkpoint with A1111's ``<checkpoint>.yaml`` and CLIP config folder beside it, a kohya LoRA, and A1111's recorded
responses to requests over them (``cases/*.json``, listed in ``index.json``). A models folder is laid out the way A1111
had it (links to the original files, nothing converted) and each case's request is replayed; images are compared
decoded, per channel, since another PNG encoder writes other bytes for the same pixels.
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

PARITY_DIR = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "a1111-parity"
CHECKPOINT = "tiny-sd15.safetensors"
LORA = "tiny-lora.safetensors"


@dataclass(frozen=True)
class ImageDiff:
    """How one of our images differs from A1111's.

    Args:
        max_diff: largest per-channel difference in 0-255 levels (256: the sizes differ).
        psnr: PSNR over all channels in dB (``inf`` when identical, 0 when the sizes differ).
        differing: fraction of pixels with any channel different.
    """

    max_diff: int
    psnr: float
    differing: float


@dataclass(frozen=True)
class CaseResult:
    """One replayed case: the HTTP status and one ``ImageDiff`` per recorded image (``None`` where ours is missing)."""

    name: str
    status: int
    expected_status: int
    diffs: tuple[ImageDiff | None, ...]
    detail: str = ""

    @property
    def max_diff(self) -> int:
        """Worst channel difference over the case's images (256 when an image is missing or sized differently)."""
        return max((d.max_diff if d is not None else 256 for d in self.diffs), default=0)

    @property
    def psnr(self) -> float:
        """Worst PSNR over the case's images."""
        return min((d.psnr if d is not None else 0.0 for d in self.diffs), default=math.inf)


def available(root: Path = PARITY_DIR) -> bool:
    """Whether the fixture set is present (it lives outside the repository)."""
    return (root / "index.json").is_file() and (root / CHECKPOINT).is_file()


def case_names(root: Path = PARITY_DIR) -> list[str]:
    """Every case of the set, in recording order."""
    return [entry["case"] for entry in json.loads((root / "index.json").read_text(encoding="utf-8"))]


def load_case(name: str, root: Path = PARITY_DIR) -> dict:
    """One recorded case: ``method``, ``path``, ``request``, ``status``, ``response``."""
    return json.loads((root / "cases" / f"{name}.json").read_text(encoding="utf-8"))


def make_data_dir(target: Path, root: Path = PARITY_DIR) -> Path:
    """An A1111-style data folder linking the set's checkpoint, its yaml and CLIP folder, and the LoRA, unchanged.

    Returns:
        ``target`` (``models/Stable-diffusion/`` and ``models/Lora/`` inside).
    """
    models = target / "models" / "Stable-diffusion"
    loras = target / "models" / "Lora"
    models.mkdir(parents=True, exist_ok=True)
    loras.mkdir(parents=True, exist_ok=True)
    for name in (CHECKPOINT, "tiny-sd15.yaml", "tiny-clip"):
        if (root / name).exists():
            os.symlink(root / name, models / name)
    os.symlink(root / LORA, loras / LORA)
    return target


def decode_rgb(b64: str) -> np.ndarray:
    """A response image as an ``(h, w, 3)`` int array."""
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    return np.asarray(image.convert("RGB")).astype(np.int64)


def compare(ours: np.ndarray, theirs: np.ndarray) -> ImageDiff:
    """Per-channel difference of two RGB images."""
    if ours.shape != theirs.shape:
        return ImageDiff(256, 0.0, 1.0)
    diff = np.abs(ours - theirs)
    mse = float((diff ** 2).mean())
    psnr = math.inf if mse == 0 else 10 * math.log10(255 ** 2 / mse)
    return ImageDiff(int(diff.max()), psnr, float((diff.max(axis=-1) > 0).mean()))


def replay(client, name: str, root: Path = PARITY_DIR) -> CaseResult:
    """Send a case's request to ``client`` (a ``TestClient``) and compare the answer with A1111's."""
    case = load_case(name, root)
    if case["method"] == "GET":
        response = client.get(case["path"])
        same = response.status_code == 200 and response.json() == case["response"]
        return CaseResult(name, response.status_code, case["status"], (),
                          "" if same else "body differs from A1111's")
    response = client.post(case["path"], json=case["request"])
    body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
    ours = body.get("images") or []
    diffs = tuple(compare(decode_rgb(ours[i]), decode_rgb(theirs)) if i < len(ours) else None
                  for i, theirs in enumerate(case["response"]["images"]))
    detail = "" if response.status_code == 200 else str(body)[:300]
    if len(ours) != len(diffs):
        detail = f"{len(ours)} images, A1111 returned {len(diffs)}. {detail}"
    return CaseResult(name, response.status_code, case["status"], diffs, detail.strip())
