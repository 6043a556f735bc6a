"""Fixtures for the dataset API tests: a scratch folder under the data dir and installable tiny caption models.

The models are built once per session and copied into the server's model folders only for the tests that ask for
them, so a test without them sees the "no model installed" answers.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest

from tests.unit.dataset_helpers import write_tiny_blip, write_tiny_wd14


@pytest.fixture()
def workdir(settings) -> Path:
    """A fresh folder under the data dir (inside the allowed roots), removed afterwards."""
    folder = settings.data_dir / "datasets" / uuid.uuid4().hex[:8]
    folder.mkdir(parents=True)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def built_tagger(tmp_path_factory) -> Path:
    return write_tiny_wd14(tmp_path_factory.mktemp("built") / "tagger")


@pytest.fixture(scope="session")
def built_blip(tmp_path_factory) -> Path:
    return write_tiny_blip(tmp_path_factory.mktemp("built") / "blip")


@pytest.fixture()
def tiny_tagger(settings, built_tagger) -> Path:
    """The tiny WD14 tagger installed as ``models/tagger/tiny`` for one test."""
    target = settings.taggers_dir / "tiny"
    shutil.copytree(built_tagger, target)
    yield target
    shutil.rmtree(target, ignore_errors=True)


@pytest.fixture()
def tiny_blip(settings, built_blip) -> Path:
    """The tiny BLIP captioner installed as ``models/BLIP/tiny`` for one test."""
    target = settings.blip_models_dir / "tiny"
    shutil.copytree(built_blip, target)
    yield target
    shutil.rmtree(target, ignore_errors=True)


@pytest.fixture()
def no_caption_models(settings):
    """Asserts that no tagger or captioner is installed (the state the 422 tests need)."""
    for folder in (settings.taggers_dir, settings.blip_models_dir):
        assert not folder.exists() or not any(folder.iterdir()), f"{folder} is not empty"
