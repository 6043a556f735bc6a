"""``sdapi serve --ray`` end to end through HTTP: one local Ray for the session with the sdapi Serve application (two
CPU engine replicas over the tiny demo checkpoints, one checkpoint each, Serve's HTTP proxy on a free port).

Skipped, with the reason, where Ray Serve is not installed (``pip install -e .[ray]``): the test modules skip
themselves, and this file imports Ray only in the fixture.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest



def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def ray_data_dir(tmp_path_factory) -> Path:
    """The demo checkpoints again, in a data dir of the Ray front's own (its config.json is not the session's)."""
    from sdapi.engine.demo_files import write_demo_models

    root = tmp_path_factory.mktemp("sdapi-ray-data")
    write_demo_models(root)
    return root


@pytest.fixture(scope="session")
def ray_front(ray_data_dir, tmp_path_factory):
    """The base URL of the Ray Serve front (started once; Ray and Serve shut down afterwards)."""
    import ray
    from ray import serve

    from sdapi.cli import serve_settings
    from sdapi.cluster.app import ClusterPlan, build_application
    from tests.ray.helpers import BOARD, REPLICAS, wait_for_replicas

    port = free_port()
    # A CPU per replica and one for a LoRA training task beside them (Ray's count, not cores: they share two).
    ray.init(num_cpus=REPLICAS + 1, namespace="sdapi", include_dashboard=False, log_to_driver=False)
    cache = tmp_path_factory.mktemp("sdapi-ray-cache")
    settings = serve_settings(["--data-dir", str(ray_data_dir), "--cache-dir", str(cache), "--nowebui",
                               "--port", str(port), "--max-batch", "1"])
    # One torch thread per replica (two replicas on a 2-core machine; more threads would fight over the cores).
    plan = ClusterPlan(replicas=REPLICAS, models_per_replica=1, gpus_per_replica=0, cpus_per_replica=1, threads=1)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(build_application(settings, plan, board_name=BOARD), name="sdapi", route_prefix="/")
    url = f"http://127.0.0.1:{port}"
    wait_for_replicas(url, REPLICAS)
    yield url
    serve.shutdown()
    ray.shutdown()
