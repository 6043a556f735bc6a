"""``GET /sdapi/v1/cluster`` on a single-process server: the one local engine."""

from __future__ import annotations


def test_single_process_cluster_is_the_local_engine(client, state):
    state.load_selected()
    body = client.get("/sdapi/v1/cluster").json()
    assert body["mode"] == "local" and body["workers"] == 1
    assert body["running"] == 0 and body["queued"] == 0
    [replica] = body["replicas"]
    assert replica["id"] == "local" and replica["device"] == "cpu"
    assert state.selected_checkpoint().name in replica["loaded"]
    assert not any(name.startswith("/") for name in replica["loaded"])  # no server paths
    assert replica["checkpoint_loads"] >= 1
