"""A1111 launch lines map onto settings."""

from __future__ import annotations

from sdapi.cli import build_parser, settings_from_args


def parse(*argv):
    args, unknown = build_parser().parse_known_args(list(argv))
    return settings_from_args(args, unknown)


def test_the_users_a1111_launch_line_is_accepted():
    s = parse("serve", "--listen", "--port", "7862", "--xformers", "--enable-insecure-extension-access",
              "--skip-install", "--api")
    assert (s.host, s.port, s.xformers) == ("0.0.0.0", 7862, True)
    assert set(s.ignored_flags) == {"--api", "--skip-install", "--enable-insecure-extension-access"}


def test_defaults_and_value_flags():
    s = parse("serve")
    assert (s.host, s.port, s.device, s.no_half) == ("127.0.0.1", 7860, "auto", False)
    s = parse("serve", "--nowebui", "--use-cpu", "all", "--no-half", "--precision", "full", "--ckpt-dir", "/m",
              "--ckpt", "/m/x.safetensors", "--lora-dir", "/l", "--some-future-flag")
    assert s.port == 7861 and s.device == "cpu" and s.no_half and s.precision == "full"
    assert str(s.models_dir) == "/m" and s.ckpt.name == "x.safetensors"
    assert str(s.loras_dir) == "/l" and "--lora-dir" not in s.ignored_flags
    assert "--some-future-flag" in s.ignored_flags


def test_fast_mode_flags():
    assert (parse("serve").fast, parse("serve").fast_compile) == (False, "full")
    s = parse("serve", "--fast", "--fast-compile", "regional")
    assert (s.fast, s.fast_compile) == (True, "regional")


def test_embedding_and_vae_folders():
    s = parse("serve", "--data-dir", "/d")
    assert (str(s.embeddings_path), str(s.vae_models_dir), s.vae_dir, s.vae_path) == (
        "/d/embeddings", "/d/models/VAE", None, None)
    s = parse("serve", "--embeddings-dir", "/e", "--vae-dir", "/v", "--vae-path", "/v/one.safetensors")
    assert (str(s.embeddings_path), str(s.vae_dir), str(s.vae_path)) == ("/e", "/v", "/v/one.safetensors")
    assert not {"--embeddings-dir", "--vae-dir", "--vae-path"} & set(s.ignored_flags)
    assert s.launch_flags["embeddings_dir"] == "/e"
