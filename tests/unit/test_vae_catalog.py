"""A1111 v1.2.1's VAE files and its ``resolve_vae`` order, without torch."""

from __future__ import annotations

from pathlib import Path

from sdapi.checkpoints import HashCache
from sdapi.vaes import VaeCatalog, natural_key


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def catalog(tmp_path, vae_path=None) -> VaeCatalog:
    found = VaeCatalog([tmp_path / "ckpt"], [tmp_path / "VAE", tmp_path / "extra"], vae_path,
                       HashCache(tmp_path / "cache.json"))
    found.refresh()
    return found


def test_files_are_the_vae_suffixes_beside_checkpoints_and_everything_in_vae_folders(tmp_path):
    touch(tmp_path / "ckpt" / "model.safetensors")
    touch(tmp_path / "ckpt" / "sub" / "model.vae.pt")
    touch(tmp_path / "VAE" / "vae10.safetensors")
    touch(tmp_path / "VAE" / "vae9.ckpt")
    touch(tmp_path / "extra" / "model.vae.pt")  # same name: the later folder wins
    touch(tmp_path / "VAE" / "notes.txt")
    files = catalog(tmp_path).items()
    assert list(files) == ["model.vae.pt", "vae9.ckpt", "vae10.safetensors"]
    assert files["model.vae.pt"] == (tmp_path / "extra" / "model.vae.pt").resolve()


def test_resolution_order(tmp_path):
    checkpoint = touch(tmp_path / "ckpt" / "model.safetensors")
    chosen = touch(tmp_path / "VAE" / "chosen.safetensors")
    vaes = catalog(tmp_path)
    assert vaes.resolve(checkpoint, "Automatic", True).path is None
    assert vaes.resolve(checkpoint, "chosen.safetensors", True).path == chosen.resolve()
    assert vaes.resolve(checkpoint, "None", True).path is None
    missing = vaes.resolve(checkpoint, "gone.pt", True)
    assert missing.path is None and "gone.pt" in missing.warning
    near = touch(tmp_path / "ckpt" / "model.vae.ckpt")
    touch(tmp_path / "ckpt" / "model.vae.safetensors")  # .vae.pt, .vae.ckpt, .vae.safetensors: first found wins
    assert vaes.resolve(checkpoint, "Automatic", False).path == near
    assert vaes.resolve(checkpoint, "None", True).path == near  # sd_vae_as_default
    assert vaes.resolve(checkpoint, "None", False).path is None
    assert vaes.resolve(checkpoint, "chosen.safetensors", False).path == chosen.resolve()
    assert vaes.resolve(checkpoint, "chosen.safetensors", True).path == near
    forced = catalog(tmp_path, vae_path=chosen)
    assert forced.resolve(checkpoint, "None", True).path == chosen


def test_natural_order():
    assert sorted(["b10", "B2", "a"], key=natural_key) == ["a", "B2", "b10"]
