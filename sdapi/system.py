"""What ``/memory`` and ``/cmd-flags`` report about this process and its launch."""

from __future__ import annotations

import os
from typing import Any

import psutil

from sdapi.protocol.settings import Flags
from sdapi.settings import Settings

HIDDEN = "********"


def ram_usage() -> dict[str, Any]:
    """A1111's ``ram`` object: this process's resident memory as ``used``, the machine's total derived from it."""
    try:
        process = psutil.Process(os.getpid())
        rss = process.memory_info().rss
        total = 100 * rss / process.memory_percent()
        return {"free": total - rss, "used": rss, "total": total}
    except Exception as exc:  # noqa: BLE001 - A1111 reports the error in the body, not as a failure
        return {"error": str(exc)}


def _flag_defaults() -> dict[str, Any]:
    return Flags().model_dump()


def hide_credentials(value: str | None) -> str | None:
    """``"u1:p1,u2:p2"`` → ``"u1:********,u2:********"``: whether auth is on stays visible, passwords do not."""
    if not value:
        return value
    return ",".join(f"{cred.split(':', 1)[0]}:{HIDDEN}" for cred in value.split(","))


def cmd_flags(settings: Settings) -> dict[str, Any]:
    """Every v1.2.1 argparse dest: A1111's defaults, then the flags given at launch, then what sdapi really uses."""
    flags = _flag_defaults()
    flags.update({k: v for k, v in settings.launch_flags.items() if k in flags})
    flags.update({
        "data_dir": str(settings.data_dir.resolve()),
        "ckpt_dir": str(settings.ckpt_dir) if settings.ckpt_dir else None,
        "ckpt": str(settings.ckpt) if settings.ckpt else None,
        "embeddings_dir": str(settings.embeddings_path.resolve()),
        "vae_dir": str(settings.vae_dir) if settings.vae_dir else None,
        "vae_path": str(settings.vae_path) if settings.vae_path else None,
        "port": str(settings.port),
        "listen": settings.host == "0.0.0.0",
        "no_half": settings.no_half,
        "precision": settings.precision,
        "xformers": settings.xformers,
        "use_cpu": ["all"] if settings.device == "cpu" else [],
        "api": True,
        "api_log": settings.api_log,
        "cors_allow_origins": settings.cors_allow_origins,
        "cors_allow_origins_regex": settings.cors_allow_origins_regex,
        "styles_file": str(settings.styles_path),
        "ui_settings_file": str(settings.config_file),
    })
    for secret in ("api_auth", "gradio_auth"):
        flags[secret] = hide_credentials(settings.api_auth if secret == "api_auth" else flags.get(secret))
    return flags
