"""Builders for the dataset tests: a tiny WD14-format ONNX tagger and synthetic pictures with a face on noise.

The tagger's network averages the BGR input over the image and maps it linearly to one logit per tag, so a
picture of one pure colour gets exactly the probabilities the test chose for that colour.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

LABELS = [
    ("general", 9), ("sensitive", 9), ("questionable", 9), ("explicit", 9),
    ("long_hair", 0), ("blue_eyes", 0), ("^_^", 0), ("ganyu_(genshin_impact)", 4), ("1girl", 0), ("solo", 0),
    ("hat", 0),
]
"""``selected_tags.csv`` rows: four ratings, general tags, one character (category 4)."""

RED_SCORES = [0.10, 0.70, 0.10, 0.05, 0.90, 0.40, 0.36, 0.86, 0.30, 0.95, 0.01]
"""The probability of each label for a pure red picture."""
BLUE_SCORES = [0.80, 0.10, 0.05, 0.01, 0.20, 0.97, 0.01, 0.50, 0.90, 0.60, 0.01]
"""... for a pure blue picture."""
NEUTRAL_SCORES = [0.25, 0.25, 0.25, 0.25, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01]
"""... for black (and the starting point of green)."""


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def write_tiny_wd14(folder: Path, size: int = 448) -> Path:
    """Write ``model.onnx`` + ``selected_tags.csv`` into ``folder`` (created) and return it.

    The model: ``[N, size, size, 3]`` float BGR 0..255 → mean over H, W → ``x/255 @ W + b`` → sigmoid, as
    ``predictions_sigmoid``. ``b`` gives black the neutral scores; each row of ``W`` moves one pure channel to its
    chosen scores (blue: B, red: R; green stays neutral).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    folder.mkdir(parents=True, exist_ok=True)
    neutral = np.array([_logit(p) for p in NEUTRAL_SCORES], dtype=np.float32)
    weights = np.zeros((3, len(LABELS)), dtype=np.float32)
    weights[0] = np.array([_logit(p) for p in BLUE_SCORES]) - neutral
    weights[2] = np.array([_logit(p) for p in RED_SCORES]) - neutral
    nodes = [
        helper.make_node("ReduceMean", ["input_1:0"], ["mean"], axes=[1, 2], keepdims=0),
        helper.make_node("Mul", ["mean", "scale"], ["unit"]),
        helper.make_node("MatMul", ["unit", "weights"], ["logits_raw"]),
        helper.make_node("Add", ["logits_raw", "bias"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["predictions_sigmoid"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny-wd14",
        [helper.make_tensor_value_info("input_1:0", TensorProto.FLOAT, ["N", size, size, 3])],
        [helper.make_tensor_value_info("predictions_sigmoid", TensorProto.FLOAT, ["N", len(LABELS)])],
        initializer=[numpy_helper.from_array(np.array([1 / 255], dtype=np.float32), "scale"),
                     numpy_helper.from_array(weights, "weights"), numpy_helper.from_array(neutral, "bias")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(folder / "model.onnx"))
    with open(folder / "selected_tags.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["tag_id", "name", "category", "count"])
        for number, (name, category) in enumerate(LABELS):
            writer.writerow([1000 + number, name, category, 100])
    return folder


BLIP_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "photo", "of", "cat", "dog", "red", "blue",
              "the", "on", "grass"]


def write_tiny_blip(folder: Path, seed: int = 0) -> Path:
    """Write a random-weight BLIP captioning model (tiny towers, 32 px images, a 16-token vocabulary) into
    ``folder`` with ``save_pretrained``: the real transformers code path, gibberish captions."""
    import torch
    from transformers import BertTokenizer, BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(BLIP_VOCAB) + "\n", encoding="utf-8")
    tokenizer = BertTokenizer(str(folder / "vocab.txt"))
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    processor = BlipProcessor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}),
                              tokenizer=tokenizer)
    tower = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
    config = BlipConfig(
        vision_config=dict(tower, image_size=32, patch_size=16),
        text_config=dict(tower, vocab_size=len(tokenizer), max_position_embeddings=64,
                         bos_token_id=tokenizer.bos_token_id, pad_token_id=tokenizer.pad_token_id,
                         sep_token_id=tokenizer.sep_token_id),
        projection_dim=16)
    torch.manual_seed(seed)
    BlipForConditionalGeneration(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def solid(colour: tuple[int, int, int], size: tuple[int, int] = (64, 64)) -> Image.Image:
    """A picture of one colour."""
    return Image.new("RGB", size, colour)


def draw_face(draw: ImageDraw.ImageDraw, cx: float, cy: float, width: float) -> None:
    """A cartoon face OpenCV's frontal-face cascades recognise: skin oval, hair, brows, eyes, nose, mouth."""
    s = width
    draw.ellipse([cx - s / 2, cy - s * 0.65, cx + s / 2, cy + s * 0.65], fill=(224, 180, 150))
    draw.chord([cx - s / 2, cy - s * 0.7, cx + s / 2, cy + s * 0.1], 180, 360, fill=(60, 40, 30))
    for side in (-1, 1):
        ex, ey = cx + side * s * 0.2, cy - s * 0.05
        draw.line([ex - s * 0.12, ey - s * 0.12, ex + s * 0.12, ey - s * 0.12], fill=(50, 30, 20),
                  width=max(1, int(s * 0.04)))
        draw.ellipse([ex - s * 0.1, ey - s * 0.05, ex + s * 0.1, ey + s * 0.05], fill=(250, 250, 250))
        draw.ellipse([ex - s * 0.045, ey - s * 0.045, ex + s * 0.045, ey + s * 0.045], fill=(30, 20, 10))
    draw.polygon([(cx, cy), (cx - s * 0.06, cy + s * 0.2), (cx + s * 0.06, cy + s * 0.2)], fill=(190, 140, 115))
    draw.ellipse([cx - s * 0.15, cy + s * 0.3, cx + s * 0.15, cy + s * 0.38], fill=(150, 60, 60))


def busy_background(width: int, height: int, seed: int = 0) -> Image.Image:
    """Blurred colour noise: corners and texture everywhere, nothing face-like."""
    noise = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(noise).filter(ImageFilter.GaussianBlur(2))


def face_picture(width: int, height: int, face_x: float, face_width: float, seed: int = 0) -> Image.Image:
    """A face centred at ``(face_x, height/2)`` on a busy background."""
    image = busy_background(width, height, seed)
    draw_face(ImageDraw.Draw(image), face_x, height / 2, face_width)
    return image
