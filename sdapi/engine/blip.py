"""BLIP image captioning from a local transformers folder (``BlipForConditionalGeneration`` + its processor).

A1111 loads Salesforce's original BLIP checkpoint with cloned code and fetches a tokenizer from the hub; sdapi reads a
``save_pretrained`` folder (e.g. Salesforce/blip-image-captioning-base copied by the user) and never downloads.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from PIL import Image

from sdapi.engine.api import CaptionSettings

log = logging.getLogger("sdapi")


class BlipCaptioner:
    """A loaded BLIP captioning model.

    Args:
        folder: a ``save_pretrained`` folder with the model, tokenizer and image processor.
        device: where to run it.
    """

    def __init__(self, folder: Path, device: torch.device | str = "cpu"):
        from transformers import BlipForConditionalGeneration, BlipProcessor

        self.folder = folder
        self.device = torch.device(device)
        self.processor = BlipProcessor.from_pretrained(str(folder), local_files_only=True)
        self.model = BlipForConditionalGeneration.from_pretrained(str(folder), local_files_only=True)
        self.model.to(self.device).eval()
        log.info("Loaded BLIP captioner %s on %s", folder, self.device)

    @torch.inference_mode()
    def caption(self, image: Image.Image, length: CaptionSettings = CaptionSettings()) -> str:
        """One caption for ``image`` (greedy or beam search, as A1111's ``generate_caption``)."""
        self.model.to(self.device)  # back from offload(); a no-op when it is already there
        inputs = self.processor(images=image.convert("RGB"), return_tensors="pt").to(self.device)
        tokens = self.model.generate(**inputs, num_beams=length.num_beams, min_length=length.min_length,
                                     max_length=length.max_length, do_sample=False)
        return self.processor.decode(tokens[0], skip_special_tokens=True).strip()

    def offload(self) -> None:
        """Give the accelerator's memory back to generation (A1111 moves BLIP to RAM after each use)."""
        if self.device.type != "cpu":
            self.model.to("cpu")
            torch.cuda.empty_cache()
