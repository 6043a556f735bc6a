"""The Serve application: the sdapi app (:func:`sdapi.app.create_app`) as the ingress, the engine as a deployment
of replicas; and ``sdapi serve --ray``, which runs it.

``build_app`` is also Serve's ``import_path`` (``sdapi.cluster.app:build_app``, see ``deploy/``): its ``args`` are
``flags`` (the ``sdapi serve`` flags, as a list) and the deployment sizes.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, replace

import ray
from ray import serve

from sdapi.app import create_app
from sdapi.cli import serve_settings
from sdapi.cluster.board import open_board
from sdapi.cluster.engine import RayEngine
from sdapi.cluster.replica import EngineReplica
from sdapi.cluster.training import ClusterTrainer, TrainPlacement
from sdapi.settings import Settings

log = logging.getLogger("sdapi")

APP_NAME = "sdapi"
# The ingress only checks requests and waits on replicas: it needs no CPU of its own, and takes many requests at
# once (its own queue bounds them, with A1111's answers).
INGRESS_MAX_ONGOING = 1000


@dataclass(frozen=True)
class ClusterPlan:
    """How the engine deployment is laid out.

    Args:
        replicas: engine replicas (``--replicas``).
        models_per_replica: checkpoints each keeps loaded (``--models-per-replica``).
        gpus_per_replica: 1 on a cluster with GPUs, 0 for CPU replicas.
        cpus_per_replica: CPUs Ray reserves for each.
        threads: torch threads of a CPU replica (default: its CPUs); images depend on the thread count in their
            low bits, so a replica matches a single-process server only with the same count.
        train_gpus, train_cpus: what a LoRA training task claims besides the replicas (one GPU; on CPU, a
            replica's share, or what the replicas leave); ``None``: the same as a replica. A CPU task trains with a
            replica's thread count whatever it claims.
    """

    replicas: int = 1
    models_per_replica: int = 1
    gpus_per_replica: float = 0
    cpus_per_replica: float = 1
    threads: int | None = None
    train_gpus: float | None = None
    train_cpus: float | None = None

    def training(self, settings: Settings) -> TrainPlacement:
        """Where a LoRA training task runs: a device of its own, an engine built from ``settings``."""
        gpus = self.gpus_per_replica if self.train_gpus is None else self.train_gpus
        cpus = self.cpus_per_replica if self.train_cpus is None else self.train_cpus
        if not gpus:
            settings = replace(settings, num_threads=self.threads or max(1, int(self.cpus_per_replica)))
        return TrainPlacement(settings, num_gpus=gpus, num_cpus=cpus)


def plan_for_cluster(replicas: int, models_per_replica: int, threads: int | None = None) -> ClusterPlan:
    """Size the replicas for the Ray cluster this process is connected to: a GPU each where there are GPUs, else
    an equal share of the CPUs (or ``threads`` each).

    A training task claims a GPU of its own; on CPUs, a replica's share of what the replicas leave (nothing left:
    it claims none and shares their cores, rather than wait for CPUs that never free up).
    """
    resources = ray.cluster_resources()
    if resources.get("GPU", 0) >= 1:
        return ClusterPlan(replicas, models_per_replica, 1, threads or 1)
    cpus = int(resources.get("CPU", 1))
    share = threads or max(1, cpus // max(1, replicas))
    return ClusterPlan(replicas, models_per_replica, 0, share, train_cpus=max(0, min(share, cpus - share * replicas)))


@serve.ingress()
class Ingress:
    """The ingress replica: the whole sdapi app, its engine a :class:`RayEngine` over the engine deployment."""

    def __init__(self, engine_handle, settings: Settings, replicas: int, board_name: str,
                 training: TrainPlacement | None = None):
        self.engine_handle, self.settings = engine_handle, settings
        self.replicas, self.board_name, self.training = replicas, board_name, training

    def __serve_build_asgi_app__(self):
        # The app (and its state, in the lifespan) is built here, in the replica, never in the driver.
        def engine() -> RayEngine:
            board = open_board(self.board_name)
            trainer = ClusterTrainer(self.training, board) if self.training is not None else None
            return RayEngine(self.engine_handle, board, self.replicas, trainer=trainer)

        return create_app(self.settings, engine_factory=engine)


def build_application(settings: Settings, plan: ClusterPlan, board_name: str = f"{APP_NAME}-board"):
    """The bound Serve application for ``settings`` laid out as ``plan``."""
    replica_settings = settings
    if plan.gpus_per_replica == 0:
        replica_settings = replace(settings, num_threads=plan.threads or max(1, int(plan.cpus_per_replica)))
    engine = serve.deployment(EngineReplica, name="Engine").options(
        num_replicas=plan.replicas,
        # One job per replica at a time: a busy replica is skipped, so two jobs run on two replicas.
        max_ongoing_requests=1,
        ray_actor_options={"num_cpus": plan.cpus_per_replica, "num_gpus": plan.gpus_per_replica},
        health_check_period_s=5, graceful_shutdown_timeout_s=5)
    ingress = serve.deployment(Ingress, name="Ingress").options(
        num_replicas=1, max_ongoing_requests=INGRESS_MAX_ONGOING, ray_actor_options={"num_cpus": 0})
    return ingress.bind(engine.bind(replica_settings, plan.models_per_replica, board_name), settings,
                        plan.replicas, board_name, plan.training(settings))


def build_app(args: dict):
    """Serve's application builder (``import_path: sdapi.cluster.app:build_app``).

    Args:
        args: ``flags`` (``sdapi serve`` flags, e.g. ``["--data-dir", "/data"]``), ``replicas``,
            ``models_per_replica``, ``threads`` (CPU replicas).
    """
    settings = serve_settings([str(flag) for flag in args.get("flags", [])])
    plan = plan_for_cluster(int(args.get("replicas", 1)), int(args.get("models_per_replica", 1)),
                            args.get("threads"))
    return build_application(settings, plan)


def start(settings: Settings, address: str | None, replicas: int, models_per_replica: int) -> None:
    """Connect to Ray (``address`` ``None``: start a local one; ``auto``: join the cluster this node is in), deploy
    the app with Serve's HTTP proxy on the settings' host and port, and wait until stopped."""
    ray.init(address=address, namespace="sdapi", runtime_env={"env_vars": _passed_env()})
    plan = plan_for_cluster(replicas, models_per_replica, settings.num_threads)
    log.info("Ray Serve: %d engine replicas (%s each), %d checkpoints per replica", plan.replicas,
             f"{plan.gpus_per_replica:g} GPU" if plan.gpus_per_replica else f"{plan.cpus_per_replica:g} CPU",
             plan.models_per_replica)
    log.info("LoRA training jobs: one at a time, as a Ray task on a device of its own (%s)",
             plan.training(settings).describe())
    serve.start(http_options={"host": settings.host, "port": settings.port})
    serve.run(build_application(settings, plan), name=APP_NAME, route_prefix="/")
    log.info("sdapi on Ray Serve at http://%s:%d/ (Ctrl+C stops it)", settings.host, settings.port)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        serve.shutdown()


def _passed_env() -> dict[str, str]:
    """Environment the replicas need as this process has it (offline Hugging Face, the import path)."""
    return {name: os.environ[name] for name in ("HF_HUB_OFFLINE", "HF_HOME", "PYTHONPATH") if name in os.environ}
