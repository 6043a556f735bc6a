"""Command line: ``sdapi serve`` (accepting A1111's launch flags), ``sdapi train CONFIG`` (with the same folder
flags, so it sees the server's checkpoints and datasets) and ``sdapi demo-models DIR``."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import uvicorn

from sdapi.app import create_app
from sdapi.dataset import cli as dataset_cli
from sdapi.settings import Limits, Settings
from sdapi.training.errors import ConfigError
from sdapi.training.foreground import train_foreground

log = logging.getLogger("sdapi")

# `--ray` without an address: start a Ray of this machine.
LOCAL_RAY = "local"

# After a stop signal, how long open requests (the stopped job's answer) may take before the process exits.
GRACEFUL_SHUTDOWN_S = 5

# A1111 flags that change nothing here; accepted so existing launch lines keep working.
IGNORED_SWITCHES = (
    "--api", "--skip-install", "--enable-insecure-extension-access", "--skip-torch-cuda-test", "--medvram",
    "--lowvram", "--opt-split-attention", "--disable-opt-split-attention", "--opt-sdp-attention",
    "--opt-sdp-no-mem-attention", "--no-download-sd-model", "--disable-nan-check", "--no-hashing",
    "--freeze-settings", "--hide-ui-dir-config", "--autolaunch", "--share", "--disable-safe-unpickle",
    "--skip-version-check", "--skip-python-version-check", "--reinstall-xformers", "--reinstall-torch",
    "--update-check", "--do-not-download-clip", "--upcast-sampling", "--no-half-vae", "--theme",
)
IGNORED_WITH_VALUE = (
    "--hypernetwork-dir", "--gradio-auth", "--server-name", "--tls-keyfile", "--tls-certfile",
    "--ui-settings-file", "--ui-config-file", "--config", "--device-id",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sdapi", description="AUTOMATIC1111-compatible API on diffusers")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="start the server (accepts A1111's launch flags)")
    add_folder_flags(serve)
    serve.add_argument("--port", type=int, default=None, help="port (default 7860; 7861 with --nowebui)")
    serve.add_argument("--listen", action="store_true", help="listen on 0.0.0.0 instead of 127.0.0.1")
    serve.add_argument("--nowebui", action="store_true", help="API only: no page at / (it stays at /ui)")
    serve.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
    serve.add_argument("--no-half", action="store_true", help="fp32 weights on CUDA")
    serve.add_argument("--precision", choices=["autocast", "full"], default="autocast")
    serve.add_argument("--xformers", action="store_true", help="xformers attention when installed (CUDA)")
    serve.add_argument("--use-cpu", nargs="+", default=None, help="A1111: run these modules on CPU ('all')")
    serve.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    serve.add_argument("--api-auth", default=None, help='HTTP Basic credentials "user:pass[,user2:pass2]"')
    serve.add_argument("--api-log", action="store_true", help="log each /sdapi request as A1111 does")
    serve.add_argument("--cors-allow-origins", default=None, help="allowed CORS origins, comma-separated")
    serve.add_argument("--cors-allow-origins-regex", default=None, help="allowed CORS origins as a regex")
    serve.add_argument("--styles-file", type=Path, default=None, help="styles.csv (default: DATA_DIR/styles.csv)")
    serve.add_argument("--train-busy", choices=["queue", "reject"], default="queue",
                       help="generation while a LoRA trains: wait in the queue, or answer 409")
    serve.add_argument("--embeddings-dir", type=Path, default=None,
                       help="textual-inversion embeddings (default: DATA_DIR/embeddings)")
    serve.add_argument("--vae-dir", type=Path, default=None, help="VAE files besides DATA_DIR/models/VAE")
    serve.add_argument("--controlnet-dir", type=Path, default=None,
                       help="ControlNet files besides DATA_DIR/models/ControlNet (the extension's --controlnet-dir)")
    serve.add_argument("--controlnet-annotator-models-path", dest="annotator_dir", type=Path, default=None,
                       help="the ControlNet preprocessors' model files, <folder>/<file> as the extension keeps them "
                            "(default: DATA_DIR/extensions/sd-webui-controlnet/annotator/downloads)")
    serve.add_argument("--vae-path", type=Path, default=None,
                       help="the VAE every checkpoint uses (the sd_vae options then change nothing)")
    serve.add_argument("--tagger-dir", type=Path, default=None, help="WD14 taggers (default: DATA_DIR/models/tagger)")
    serve.add_argument("--blip-dir", type=Path, default=None, help="BLIP captioners (default: DATA_DIR/models/BLIP)")
    serve.add_argument("--queue-size", type=int, default=None,
                       help="jobs that may wait behind the running one; more get 503 (default 100)")
    serve.add_argument("--max-side", type=int, default=None, help="largest width/height a request may ask for "
                       "(default 8192)")
    serve.add_argument("--max-steps", type=int, default=None, help="most sampling steps a request may ask for "
                       "(default 1000)")
    serve.add_argument("--max-images", type=int, default=None, help="most batch_size * n_iter (default 1000)")
    serve.add_argument("--max-pixels", type=int, default=None, help="most width*height*batch_size, also for hires "
                       "targets and extras results (default 67108864)")
    serve.add_argument("--max-prompt-chars", type=int, default=None, help="longest prompt (default 32768)")
    serve.add_argument("--max-batch", type=int, default=None, help="most images of queued requests sampled as "
                       "one batch (default 8; 1 turns merging off)")
    serve.add_argument("--batch-wait-ms", type=float, default=None, help="how long a request may wait for "
                       "partners while others are arriving (default 50)")
    serve.add_argument("--task-queue-size", type=int, default=None,
                       help="Agent Scheduler tasks that may be pending; more get 503 (default 1000)")
    serve.add_argument("--task-history-days", type=int, default=None,
                       help="days finished Agent Scheduler tasks are kept, 0: for ever (default 30)")
    serve.add_argument("--fast", action="store_true", help="fast mode by default (compiled models, channels_last, "
                       "bf16/fp16 autocast; changes pixels): the sdapi_fast_mode option's start value")
    serve.add_argument("--fast-compile", choices=["full", "regional"], default=None,
                       help="fast mode compiles whole models (full, the default) or their repeated blocks (regional)")
    cluster = serve.add_argument_group("Ray Serve (pip install sdapi[ray])")
    cluster.add_argument("--ray", nargs="?", const=LOCAL_RAY, default=None, metavar="ADDRESS",
                         help="serve on Ray Serve: the engine as --replicas replicas behind this app; no ADDRESS "
                         "starts a local Ray, 'auto' joins the cluster this node belongs to")
    cluster.add_argument("--replicas", type=int, default=1, help="engine replicas with --ray (default 1)")
    cluster.add_argument("--models-per-replica", type=int, default=1,
                         help="checkpoints each replica keeps loaded with --ray (default 1)")
    for flag in IGNORED_SWITCHES:
        serve.add_argument(flag, action="store_true", dest=_dest(flag), help=argparse.SUPPRESS)
    for flag in IGNORED_WITH_VALUE:
        serve.add_argument(flag, dest=_dest(flag), default=None, help=argparse.SUPPRESS)

    train = sub.add_parser("train", help="train a LoRA from a kohya/lora-scripts config (.toml or .json)")
    train.add_argument("config", type=Path)
    add_folder_flags(train)
    train.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")

    demo = sub.add_parser("demo-models", help="write tiny random-weight demo checkpoints into DIR/models/..., a "
                          "demo embedding into DIR/embeddings, a demo VAE into DIR/models/VAE and a demo ControlNet "
                          "into DIR/models/ControlNet")
    demo.add_argument("dir", type=Path)
    demo.add_argument("--sdxl", action="store_true", help="also write the tiny SDXL checkpoint demo-sdxl.safetensors, its "
                           "kohya-format LoRA models/Lora/demo-sdxl-lora.safetensors and the tiny SDXL refiner "
                           "demo-sdxl-refiner.safetensors")
    dataset_cli.add_commands(sub)
    return parser


def add_folder_flags(parser: argparse.ArgumentParser) -> None:
    """The folder flags ``serve`` and ``train`` share, so both find the same checkpoints, datasets and LoRAs."""
    parser.add_argument("--data-dir", type=Path, help="A1111-style root holding models/ (default: ./data)")
    parser.add_argument("--ckpt-dir", type=Path, help="checkpoint folder (default: DATA_DIR/models/Stable-diffusion)")
    parser.add_argument("--ckpt", type=Path, help="checkpoint to start with")
    parser.add_argument("--cache-dir", type=Path, help="built-in demo checkpoint and config cache")
    parser.add_argument("--no-demo", action="store_true", help="do not use the built-in demo checkpoint")
    parser.add_argument("--lora-dir", type=Path, default=None, help="LoRA folder (default: DATA_DIR/models/Lora)")
    parser.add_argument("--dataset-root", type=Path, action="append", default=None, dest="dataset_roots",
                        help="a folder dataset requests may use besides DATA_DIR (repeatable)")


def folder_settings(args: argparse.Namespace) -> dict:
    """``Settings`` keyword arguments from the flags of :func:`add_folder_flags` (unset ones keep defaults)."""
    kwargs = dict(ckpt_dir=args.ckpt_dir, ckpt=args.ckpt, lora_dir=args.lora_dir,
                  demo_when_empty=not args.no_demo, dataset_roots=args.dataset_roots or [])
    if args.data_dir is not None:
        kwargs["data_dir"] = args.data_dir
    if args.cache_dir is not None:
        kwargs["cache_dir"] = args.cache_dir
    return kwargs


def _dest(flag: str) -> str:
    return "ignored_" + flag.lstrip("-").replace("-", "_")


def launch_flags(args: argparse.Namespace) -> dict:
    """The A1111 flags given on the command line, by A1111's argparse dest (for ``/cmd-flags``)."""
    flags = {}
    for dest, value in vars(args).items():
        if value in (None, False) or dest == "command":
            continue
        name = dest.removeprefix("ignored_")
        flags[name] = str(value) if isinstance(value, Path) else value
    return flags


def settings_from_args(args: argparse.Namespace, unknown: list[str]) -> Settings:
    """Map parsed ``serve`` flags onto ``Settings``."""
    ignored = [f for f in IGNORED_SWITCHES + IGNORED_WITH_VALUE if getattr(args, _dest(f), None)] + unknown
    port = args.port if args.port is not None else (7861 if args.nowebui else 7860)
    device = "cpu" if args.use_cpu and "all" in args.use_cpu else args.device
    kwargs = dict(
        folder_settings(args), host="0.0.0.0" if args.listen else "127.0.0.1", port=port,
        device=device, no_half=args.no_half, precision=args.precision, xformers=args.xformers,
        num_threads=args.threads, ignored_flags=ignored,
        api_auth=args.api_auth, api_log=args.api_log, cors_allow_origins=args.cors_allow_origins,
        cors_allow_origins_regex=args.cors_allow_origins_regex, styles_file=args.styles_file,
        train_busy=args.train_busy, launch_flags=launch_flags(args), tagger_dir=args.tagger_dir,
        blip_dir=args.blip_dir, web_ui=not args.nowebui, fast=args.fast, embeddings_dir=args.embeddings_dir,
        vae_dir=args.vae_dir, vae_path=args.vae_path, controlnet_dir=args.controlnet_dir,
        annotator_dir=args.annotator_dir,
    )
    for name in ("queue_size", "max_batch", "batch_wait_ms", "task_queue_size",
                 "task_history_days", "fast_compile"):
        if getattr(args, name) is not None:
            kwargs[name] = getattr(args, name)
    bounds = {name: getattr(args, name) for name in ("max_pixels", "max_side", "max_steps", "max_images",
                                                      "max_prompt_chars") if getattr(args, name) is not None}
    kwargs["limits"] = Limits(**bounds)
    return Settings(**kwargs)


class Server(uvicorn.Server):
    """uvicorn, with SIGTERM/SIGINT first stopping the running job and failing the queued ones: uvicorn alone waits
    for every open request, and a long generation holds one open for as long as it runs."""

    def handle_exit(self, sig, frame) -> None:
        state = getattr(self.config.app.state, "sdapi", None)
        if state is not None:
            state.stop_jobs(wait=None)
        super().handle_exit(sig, frame)


def serve(settings: Settings) -> None:
    if settings.ignored_flags:
        log.info("Accepted A1111 flags with no effect here: %s", " ".join(settings.ignored_flags))
    config = uvicorn.Config(create_app(settings), host=settings.host, port=settings.port, log_level="info",
                            timeout_keep_alive=30, timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
                            access_log=False)  # sdapi.access logs every request itself
    Server(config).run()


def serve_settings(flags: list[str]) -> Settings:
    """``Settings`` from ``sdapi serve`` flags (Serve's application builder reads them from its config)."""
    args, unknown = build_parser().parse_known_args(["serve", *flags])
    return settings_from_args(args, unknown)


def serve_on_ray(settings: Settings, args: argparse.Namespace) -> None:
    """``sdapi serve --ray``: the same app, its engine on Ray Serve replicas."""
    try:
        from sdapi.cluster.app import start  # Ray is an optional extra: imported for --ray only
    except ImportError as exc:
        raise SystemExit(f"sdapi serve --ray needs Ray Serve: pip install 'sdapi[ray]' ({exc})") from exc
    start(settings, None if args.ray == LOCAL_RAY else args.ray, args.replicas, args.models_per_replica)


def run_train(args: argparse.Namespace) -> None:
    """``sdapi train CONFIG``: the trainer in the foreground; a bad field exits with its message."""
    try:
        train_foreground(args.config, Settings(**folder_settings(args)), args.device)
    except ConfigError as exc:
        raise SystemExit(f"sdapi train: {exc}") from exc


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if args.command == "serve" and args.ray is not None:
        serve_on_ray(settings_from_args(args, unknown), args)
    elif args.command == "serve":
        serve(settings_from_args(args, unknown))
    elif args.command == "train":
        if unknown:
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        run_train(args)
    elif args.command in dataset_cli.COMMANDS:
        if unknown:
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        dataset_cli.run(args)
    elif args.command == "demo-models":
        if unknown:
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        from sdapi.engine.demo_files import write_demo_models  # builds pipelines: torch loads only for this

        for path in write_demo_models(args.dir, sdxl=args.sdxl, extras=True, controlnet=True):
            print(path)
