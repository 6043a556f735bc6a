"""Demo "training epochs" of a LoRA for the tiny demo checkpoint: files named as kohya's epoch saves.

kohya (and sdapi's own training) write ``{output_name}-{epoch:06d}.safetensors`` every ``save_every_n_epochs``;
the X/Y/Z plot's LoRA comparison replaces that number in ``<lora:name-000001:1>`` with Prompt S/R. These files
have that naming and kohya's format and metadata, with random weights (a different seed per epoch), so every
epoch changes the demo model's images differently. Nothing is trained.
"""

from __future__ import annotations

from pathlib import Path

from sdapi.engine.demo_lora import (
    LORA_SUBDIR,
    kohya_layers,
    kohya_metadata,
    random_lora_tensors,
    write_kohya_lora,
)
from sdapi.engine.training.file_names import epoch_file_name
from sdapi.engine.demo_models import build_tiny_sd15_pipeline

DEMO_EPOCHS_NAME = "demo-epochs"


def write_demo_lora_epochs(data_dir: Path, epochs: int = 2, name: str = DEMO_EPOCHS_NAME,
                           model_file: str = "demo-sd15.safetensors") -> list[Path]:
    """Write epochs ``1..epochs`` of a demo LoRA into ``<data_dir>/models/Lora`` (files already there are kept).

    Args:
        data_dir: the server's data directory.
        epochs: how many epoch files.
        name: the LoRA's output name (file stem before ``-NNNNNN``).
        model_file: the checkpoint named in ``ss_sd_model_name``.

    Returns:
        The files, epoch 1 first.
    """
    folder = Path(data_dir) / LORA_SUBDIR
    paths = [folder / epoch_file_name(name, epoch) for epoch in range(1, epochs + 1)]
    missing = [(epoch, path) for epoch, path in enumerate(paths, start=1) if not path.exists()]
    if missing:
        layers = kohya_layers(build_tiny_sd15_pipeline(0))
        for epoch, path in missing:
            metadata = {**kohya_metadata(model_file, name), "ss_epoch": str(epoch)}
            write_kohya_lora(path, random_lora_tensors(layers, seed=100 + epoch), metadata)
    return paths
