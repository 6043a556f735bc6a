"""Dataset preparation for LoRA training: A1111's preprocess (crops, flips, splits), captioning and tag editing.

Pure Python plus OpenCV, onnxruntime and Pillow; the one torch-backed captioner (BLIP) lives in ``sdapi.engine.blip``.
"""
