"""``sdapi serve --ray`` end to end through HTTP, on the Ray front of ``tests/ray/conftest.py``: the A1111 contract,
concurrency, checkpoint affinity, job events, faults, the Serve config.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
import torch

from tests.ray.helpers import (REPLICAS, board_rows, loads_by_replica, start_long_job, txt2img, wait_for_replicas,
                                wait_sampling)

ray = pytest.importorskip("ray", reason="Ray Serve is an optional extra: pip install -e '.[ray]' to run tests/ray")


# -- the A1111 contract through the Ray front -------------------------------------------------------------------

@pytest.mark.parametrize("name", ["post-txt2img-sampler-name-field.json", "error-txt2img-missing-prompt.json",
                                  "post-txt2img-after-switch.json"])
def test_recordings_replay_through_the_ray_front(ray_front, ray_data_dir, name):
    from sdapi.settings import Settings
    from sdapi.startup import open_catalog
    from tests.conftest import load_recording
    from tests.contract.comparator import compare_to_recording
    from tests.contract.test_recordings import RECORDED_MODELS, noisy_for, our_request, substitutions_for

    catalog = open_catalog(Settings(data_dir=ray_data_dir))  # the same files the replicas read, hashed here
    state = SimpleNamespace(catalog=catalog)
    recorded = load_recording(name)
    recorded_hash = json.loads(recorded["response"]["info"])["sd_model_hash"]
    demo_file = RECORDED_MODELS[recorded_hash][2]
    # As tests/contract selects the recorded model, through the API here: the ingress's state is in its replica.
    assert requests.post(f"{ray_front}/sdapi/v1/options", json={"sd_model_checkpoint": demo_file},
                         timeout=60).status_code == 200
    r = requests.post(f"{ray_front}/sdapi/v1/txt2img", json=our_request(recorded["request"], state), timeout=120)
    diffs = compare_to_recording(recorded, r.status_code, r.json(), substitutions=substitutions_for(state),
                                 noisy=noisy_for(recorded["request"]))
    assert diffs == []


def test_cluster_lists_both_replicas_with_their_device(ray_front):
    body = requests.get(f"{ray_front}/sdapi/v1/cluster", timeout=10).json()
    assert body["mode"] == "ray" and body["workers"] == REPLICAS
    assert len(body["replicas"]) == REPLICAS
    assert {r["device"] for r in body["replicas"]} == {"cpu"}


def test_images_are_bit_identical_to_the_single_process_server(ray_front, client):
    request = {"prompt": "a blue square", "seed": 1234, "sampler_name": "Euler a",
               "override_settings": {"sd_model_checkpoint": "demo-sd15.safetensors"}}
    ours = txt2img(ray_front, **request)
    # The session's single-process app, on the replicas' one thread: images depend on the thread count in their
    # low bits (tests/conftest.py).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = client.post("/sdapi/v1/txt2img", json={"steps": 2, "width": 64, "height": 64, **request})
    finally:
        torch.set_num_threads(threads)
    assert ours.status_code == single.status_code == 200
    digest = [hashlib.sha256(base64.b64decode(r.json()["images"][0])).hexdigest() for r in (ours, single)]
    assert digest[0] == digest[1]


# -- concurrency and checkpoint affinity ------------------------------------------------------------------------

def test_two_requests_run_on_two_replicas_at_once(ray_front):
    seen: set[str] = set()
    threads = [threading.Thread(target=txt2img, args=(ray_front,), kwargs={"steps": 60, "seed": s}, daemon=True)
               for s in (1, 2)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    while any(t.is_alive() for t in threads) and time.monotonic() < deadline and len(seen) < 2:
        body = requests.get(f"{ray_front}/sdapi/v1/cluster", timeout=10).json()
        busy = {r["id"] for r in body["replicas"] if r["running"]}
        if len(busy) == 2:
            seen = busy
        time.sleep(0.05)
    for thread in threads:
        thread.join(120)
    assert len(seen) == 2, "the two jobs never ran at the same time on two replicas"


def test_alternating_checkpoints_load_each_once(ray_front):
    before = loads_by_replica(ray_front)
    for checkpoint in ["demo-sd15.safetensors", "demo-sd15-b.safetensors"] * 3:
        r = txt2img(ray_front, override_settings={"sd_model_checkpoint": checkpoint})
        assert r.status_code == 200, r.text
        time.sleep(0.3)  # replicas report their models to Serve's router every 0.1 s
    after = loads_by_replica(ray_front)
    added = {replica: after[replica] - before.get(replica, 0) for replica in after}
    assert sum(added.values()) <= 2, f"checkpoint loads per replica during the run: {added}"
    loaded = [set(r["loaded"]) for r in wait_for_replicas(ray_front, REPLICAS)]
    assert loaded[0] != loaded[1], f"both replicas hold the same checkpoint: {loaded}"


# -- job events -------------------------------------------------------------------------------------------------

def test_progress_moves_and_interrupt_reaches_the_replica(ray_front):
    thread, out = start_long_job(ray_front)
    first = wait_sampling(ray_front)
    time.sleep(0.5)
    later = requests.get(f"{ray_front}/sdapi/v1/progress", params={"skip_current_image": True}, timeout=10).json()
    assert later["state"]["sampling_step"] > first["state"]["sampling_step"]
    assert 0 < later["progress"] < 1
    assert requests.post(f"{ray_front}/sdapi/v1/interrupt", timeout=10).status_code == 200
    thread.join(60)
    assert out["response"].status_code == 200  # an interrupted job answers with what it finished, as in A1111
    assert out["seconds"] < 30


def task_progress(url: str, task_id: str | None = None) -> dict:
    params = {"skip_current_image": True, **({"id_task": task_id} if task_id else {})}
    return requests.get(f"{url}/sdapi/v1/progress", params=params, timeout=10).json()["state"]


def wait_task_sampling(url: str, task_id: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if requests.post(f"{url}/internal/progress", json={"id_task": task_id}, timeout=10).json()["active"]:
            state = task_progress(url, task_id)
            if state["sampling_step"] > 0:
                return state
        time.sleep(0.05)
    raise AssertionError(f"{task_id} never reached its first step")


def test_progress_and_interrupt_follow_the_callers_task_id(ray_front):
    """Two jobs on two replicas: each followed by its ``force_task_id``, the oldest shown without one; an
    interrupt with an id stops that job alone, one without stops the rest."""
    out: dict = {}

    def run(task_id: str, steps: int):
        out[task_id] = txt2img(ray_front, steps=steps, seed=31, force_task_id=task_id)

    first = threading.Thread(target=run, args=("task(ray-a)", 1000), daemon=True)
    first.start()
    wait_task_sampling(ray_front, "task(ray-a)")
    second = threading.Thread(target=run, args=("task(ray-b)", 900), daemon=True)
    second.start()
    assert wait_task_sampling(ray_front, "task(ray-b)")["sampling_steps"] == 900
    assert task_progress(ray_front, "task(ray-a)")["sampling_steps"] == 1000
    assert task_progress(ray_front)["sampling_steps"] == 1000  # no id: the oldest running job
    internal = requests.post(f"{ray_front}/internal/progress", json={"id_task": "task(ray-b)"}, timeout=10).json()
    assert internal["active"] is True and 0 < internal["progress"] < 1

    assert requests.post(f"{ray_front}/sdapi/v1/interrupt", params={"id_task": "task(ray-b)"},
                         timeout=10).status_code == 200
    second.join(60)
    assert out["task(ray-b)"].status_code == 200
    assert first.is_alive(), "an interrupt naming task(ray-b) stopped task(ray-a) too"
    still = task_progress(ray_front, "task(ray-a)")
    assert still["job_count"] == 1 and not still["interrupted"]
    assert requests.post(f"{ray_front}/sdapi/v1/interrupt", timeout=10).status_code == 200
    first.join(60)
    assert out["task(ray-a)"].status_code == 200


# -- faults -----------------------------------------------------------------------------------------------------

def test_a_killed_replica_fails_its_job_and_is_replaced(ray_front):
    thread, out = start_long_job(ray_front)
    wait_sampling(ray_front)
    running = [row for row in board_rows() if row["running"]]
    assert running, "no replica reports the running job"
    ray.kill(ray.get_actor(running[0]["actor_name"], namespace="serve"), no_restart=True)
    thread.join(60)
    assert not thread.is_alive(), "the ingress hung on the dead replica"
    body = out["response"].json()
    assert out["response"].status_code == 500 and body["error"] == "ReplicaLost", body
    assert set(body) == {"error", "detail", "body", "errors"}  # A1111's error envelope
    assert txt2img(ray_front).status_code == 200
    replicas = wait_for_replicas(ray_front, REPLICAS, timeout=90)
    ids = {r["id"] for r in replicas}
    assert running[0]["replica_id"] not in ids and len(ids) == REPLICAS, replicas
    assert txt2img(ray_front, seed=3).status_code == 200


class ScriptedReplicas:
    """A stand-in for the engine deployment's handle: each streamed call plays the next script (events, and an
    exception where its replica dies)."""

    def __init__(self, *scripts):
        self.scripts, self.calls = list(scripts), 0

    def options(self, **_):
        return self

    @property
    def stream(self):
        return self

    def remote(self, method, args, job_id):
        self.calls += 1
        script = self.scripts.pop(0)

        def play():
            for item in script:
                if isinstance(item, BaseException):
                    raise item
                yield item

        return play()


def scripted_engine(*scripts):
    from sdapi.cluster.board import Board
    from sdapi.cluster.engine import RayEngine

    handle = ScriptedReplicas(*scripts)
    return RayEngine(handle, ray.remote(Board).options(num_cpus=0).remote(), 2), handle


def test_a_job_whose_replica_died_before_sampling_is_retried_once(ray_front):
    """The replica dies after taking the job (loading its checkpoint) and before its first step: the job runs
    again, on whichever replica Serve picks, and its client never sees the first replica."""
    from sdapi.serving.control import JobControl

    engine, handle = scripted_engine([("started", "r1"), ray.exceptions.ActorDiedError()],
                                     [("started", "r2"), ("sampling", 2), ("step", 1, None), ("result", ["image"])])
    control = JobControl()
    control.begin(1, "0")
    assert engine.generate(SimpleNamespace(checkpoint=Path("demo.safetensors")), control) == ["image"]
    assert handle.calls == 2
    assert control.sampling_steps == 2 and control.sampling_step == 1  # the second run's events reached the job


@pytest.mark.parametrize("scripts", [
    # died while sampling: not retried
    ([("started", "r1"), ("sampling", 2), ("step", 1, None), ray.exceptions.ActorDiedError()],),
    # died before sampling twice: retried once only
    ([("started", "r1"), ray.exceptions.ActorDiedError()], [("started", "r2"), ray.exceptions.ActorDiedError()]),
])
def test_a_job_whose_replica_died_while_sampling_or_twice_fails_with_replica_lost(ray_front, scripts):
    from sdapi.engine.errors import ReplicaLost

    engine, handle = scripted_engine(*scripts)
    with pytest.raises(ReplicaLost):
        engine.generate(SimpleNamespace(checkpoint=Path("demo.safetensors")))
    assert handle.calls == len(scripts)


def test_the_cluster_plan_leaves_training_the_cpus_the_replicas_leave(ray_front):
    """On the front's Ray (3 CPUs): two replicas leave one CPU to a training task; three leave none, and the task
    claims none rather than wait forever. Either way it trains with a replica's threads."""
    from sdapi.cluster.app import plan_for_cluster
    from sdapi.settings import Settings

    two, three = plan_for_cluster(2, 1), plan_for_cluster(3, 1)
    assert (two.cpus_per_replica, two.train_cpus, three.cpus_per_replica, three.train_cpus) == (1, 1, 1, 0)
    placement = three.training(Settings())
    assert (placement.num_gpus, placement.num_cpus, placement.settings.num_threads) == (0, 0, 1)


@pytest.mark.parametrize("name", ["serve-config.yaml", "kuberay-rayservice.yaml"])
def test_the_serve_config_builds_the_application(ray_front, ray_data_dir, name):
    """``deploy/``'s Serve configs (the file, and the RayService's ``serveConfigV2``) validate as Serve's schema, and
    their ``import_path`` and ``args`` build the app (its folders pointed here)."""
    import yaml
    from ray.serve.schema import ServeDeploySchema

    from sdapi.cluster.app import build_app

    text = (Path(__file__).resolve().parents[2] / "deploy" / name).read_text()
    config = next(doc for doc in yaml.safe_load_all(text) if doc)
    if config.get("kind") == "RayService":
        config = yaml.safe_load(config["spec"]["serveConfigV2"])
    app = ServeDeploySchema.model_validate(config).applications[0]
    assert app.import_path == "sdapi.cluster.app:build_app"
    args = {**app.args, "flags": ["--data-dir", str(ray_data_dir)]}
    assert type(build_app(args)).__name__ == "Application"
