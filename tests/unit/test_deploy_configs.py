"""``deploy/``: the Ray Serve config and the KubeRay ``RayService`` parse, name the real application builder and pass it
arguments ``sdapi serve`` understands, with the folders on the volumes the pods mount. No Ray needed (the builder is
found in its source; ``tests/ray`` builds the application from the Serve config for real).
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest
import yaml

from sdapi.cli import build_parser

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def serve_config() -> dict:
    return yaml.safe_load((DEPLOY / "serve-config.yaml").read_text(encoding="utf-8"))


def rayservice() -> dict:
    documents = list(yaml.safe_load_all((DEPLOY / "kuberay-rayservice.yaml").read_text(encoding="utf-8")))
    return next(d for d in documents if d and d.get("kind") == "RayService")


def applications() -> list[tuple[str, dict]]:
    """Each (file, application) of both files (the RayService's Serve config is a YAML string in it)."""
    embedded = yaml.safe_load(rayservice()["spec"]["serveConfigV2"])
    return [("serve-config.yaml", app) for app in serve_config()["applications"]] + \
        [("kuberay-rayservice.yaml", app) for app in embedded["applications"]]


def builder_reads(import_path: str) -> set[str]:
    """The ``args`` keys the builder named by ``module:function`` reads (``args.get("...")``), found in its source
    without importing it (it imports Ray)."""
    module, function = import_path.split(":")
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin, f"{module} is not an importable module"
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    found = [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) and node.name == function]
    assert found, f"{module} has no function {function}"
    return {call.args[0].value for call in ast.walk(found[0])
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "get"
            and isinstance(call.func.value, ast.Name) and call.func.value.id == "args" and call.args
            and isinstance(call.args[0], ast.Constant)}


@pytest.mark.parametrize("source, app", applications(), ids=lambda v: v if isinstance(v, str) else v["name"])
def test_each_application_names_the_builder_and_args_it_reads(source, app):
    assert app["import_path"] == "sdapi.cluster.app:build_app"
    assert set(app["args"]) <= builder_reads(app["import_path"]), f"{source}: unknown args"
    assert app["route_prefix"] == "/"
    assert [d["name"] for d in app.get("deployments", [])] in (["Ingress"], ["Ingress", "Engine"], ["Engine"])


@pytest.mark.parametrize("source, app", applications(), ids=lambda v: v if isinstance(v, str) else v["name"])
def test_the_flags_are_sdapi_serve_flags_and_the_sizes_cli_options(source, app):
    parser = build_parser()
    args, unknown = parser.parse_known_args(["serve", *[str(flag) for flag in app["args"]["flags"]]])
    assert unknown == [], f"{source}: flags sdapi serve does not know: {unknown}"
    # The sizes are --replicas and --models-per-replica of `sdapi serve --ray`.
    sizes = {key: value for key, value in app["args"].items() if key != "flags"}
    cli = vars(parser.parse_args(["serve", *[f"--{key.replace('_', '-')}={value}" for key, value in sizes.items()]]))
    assert {key: cli[key] for key in sizes} == sizes


def test_the_rayservice_mounts_the_folders_its_flags_name():
    spec = rayservice()["spec"]
    app = yaml.safe_load(spec["serveConfigV2"])["applications"][0]
    args, _ = build_parser().parse_known_args(["serve", *app["args"]["flags"]])
    cluster = spec["rayClusterConfig"]

    def mounts(template: dict) -> dict[str, bool]:
        """mount path -> writable, checked against the pod's volumes."""
        pod = template["spec"]
        volumes = {v["name"] for v in pod["volumes"]}
        found = pod["containers"][0].get("volumeMounts", [])
        assert {m["name"] for m in found} <= volumes
        return {m["mountPath"]: not m.get("readOnly") for m in found}

    def mount_of(pod: dict[str, bool], folder: Path) -> bool | None:
        """Whether ``folder`` is writable on the pod (the deepest mount holding it); ``None``: not mounted."""
        holding = [path for path in pod if folder == Path(path) or Path(path) in folder.parents]
        return pod[max(holding, key=len)] if holding else None

    head = mounts(cluster["headGroupSpec"]["template"])
    workers = [mounts(group["template"]) for group in cluster["workerGroupSpecs"]]
    for pod in [head, *workers]:  # the same paths on every pod: the ingress lists, replicas load, training writes
        for folder in (args.ckpt_dir, args.embeddings_dir, args.vae_dir):
            assert mount_of(pod, folder) is False, folder  # the models volume, read-only
        assert mount_of(pod, args.lora_dir) is True  # trained LoRA files land here, wherever the task runs
        assert all(mount_of(pod, root) is not None for root in args.dataset_roots)  # training reads datasets
    assert mount_of(head, args.data_dir) is True  # the data volume, writable, on the head (the ingress) alone
    assert all(mount_of(pod, args.data_dir) is None for pod in workers)
    # The ingress is pinned to the head by a custom resource the head declares.
    ingress = next(d for d in app["deployments"] if d["name"] == "Ingress")
    resource = next(iter(ingress["ray_actor_options"]["resources"]))
    assert resource in cluster["headGroupSpec"]["rayStartParams"]["resources"]
