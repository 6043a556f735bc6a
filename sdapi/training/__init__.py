"""LoRA training jobs: request checks, dataset scanning, buckets, the job store (pure Python, no torch).

The torch trainer lives in :mod:`sdapi.engine.training`; :mod:`sdapi.training.service` joins the two.
"""
