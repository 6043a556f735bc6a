"""The layering rules, checked on the source (an AST walk of every module's imports, function-local ones included).

* Only ``sdapi.engine`` imports torch, diffusers, transformers (and the libraries built on them).
* What ``sdapi.engine`` imports from the rest of ``sdapi`` never leads back, even transitively, to the engine,
  the serving layer, the routes, the scripts or the app.
* ``sdapi.protocol`` imports nothing from ``sdapi`` but itself.
* Routes import only the serving layer and the protocol (and each other's dependency aliases).
* A function-local import of an ``sdapi`` module is allowed only where it defers torch or Ray (listed below with
  why); none may exist to dodge an import cycle.
* Ray (an optional extra) is imported by ``sdapi.cluster`` alone, and ``sdapi.cluster`` only by ``sdapi serve --ray``
  (a function-local import in the CLI): the default install never needs it.
"""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "sdapi"
DEVICE_LIBRARIES = ("torch", "torchsde", "diffusers", "transformers", "accelerate", "safetensors.torch", "peft",
                    "bitsandbytes", "xformers", "spandrel")
UPPER_LAYERS = ("sdapi.engine", "sdapi.serving", "sdapi.routes", "sdapi.scripts", "sdapi.app", "sdapi.cli",
                "sdapi.cluster")
# Function-local sdapi imports that defer loading torch until a command or the lifespan needs it.
LAZY_IMPORTS = {
    ("sdapi.engine.factory", "sdapi.engine.local"): "building the engine loads torch; importing the factory does not",
    ("sdapi.engine.factory", "sdapi.engine.runtime"): "device choice imports torch",
    ("sdapi.engine.factory", "sdapi.engine.fast_mode"): "fast mode's plan reads the CPU's features through torch",
    ("sdapi.startup", "sdapi.engine.demo_models"): "only an empty models folder needs the demo checkpoint written",
    ("sdapi.cli", "sdapi.engine.demo_files"): "`sdapi demo-models` alone builds pipelines",
    ("sdapi.cli", "sdapi.cluster.app"): "Ray is an optional extra: `sdapi serve --ray` alone imports it",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


@lru_cache(maxsize=None)
def imports_of(module: str) -> tuple[tuple[str, bool], ...]:
    """``(imported module, at function level)`` for every import in ``module``'s source."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    found = []

    def visit(node: ast.AST, local: bool) -> None:
        for child in ast.iter_child_nodes(node):
            child_local = local or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.Import):
                found.extend((alias.name, child_local) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                found.append((child.module, child_local))
                found.extend((f"{child.module}.{alias.name}", child_local) for alias in child.names
                             if f"{child.module}.{alias.name}" in MODULES)
            visit(child, child_local)

    visit(tree, False)
    return tuple(found)


def sdapi_imports(module: str) -> set[str]:
    """The sdapi modules ``module`` imports (a package import counts as importing its ``__init__``)."""
    return {name for name, _ in imports_of(module) if name in MODULES}


def closure(start: set[str]) -> set[str]:
    """Every sdapi module reachable from ``start`` through imports (parent packages included)."""
    seen, todo = set(), list(start)
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        parts = module.split(".")
        todo += [".".join(parts[:i]) for i in range(2, len(parts)) if ".".join(parts[:i]) in MODULES]
        todo += sorted(sdapi_imports(module))
    return seen


def in_layer(module: str, layers: tuple[str, ...]) -> bool:
    return any(module == layer or module.startswith(layer + ".") for layer in layers)


@pytest.mark.parametrize("module", [m for m in MODULES if not in_layer(m, ("sdapi.engine",))])
def test_only_the_engine_imports_device_libraries(module):
    device = sorted({name for name, _ in imports_of(module) if in_layer(name, DEVICE_LIBRARIES)})
    assert not device, f"{module} imports {device}; only sdapi.engine may"


def test_what_the_engine_imports_never_leads_back_up():
    engine = [m for m in MODULES if in_layer(m, ("sdapi.engine",))]
    below = {name for m in engine for name in sdapi_imports(m) if not in_layer(name, ("sdapi.engine",))}
    reached = closure(below)
    upward = sorted(m for m in reached if in_layer(m, UPPER_LAYERS))
    assert not upward, f"the engine imports {sorted(below)}, which reach {upward}"


@pytest.mark.parametrize("module", [m for m in MODULES if in_layer(m, ("sdapi.protocol",))])
def test_protocol_imports_only_itself(module):
    outside = sorted(m for m in sdapi_imports(module) if not in_layer(m, ("sdapi.protocol",)))
    assert not outside, f"{module} imports {outside}"


@pytest.mark.parametrize("module", [m for m in MODULES if in_layer(m, ("sdapi.routes",))])
def test_routes_import_only_serving_and_protocol(module):
    allowed = ("sdapi.serving", "sdapi.protocol", "sdapi.routes")
    outside = sorted(m for m in sdapi_imports(module) if not in_layer(m, allowed))
    assert not outside, f"{module} imports {outside}"


def test_function_local_sdapi_imports_only_defer_torch():
    local = {(module, name) for module in MODULES for name, is_local in imports_of(module)
             if is_local and name in MODULES and name.split(".")[:2] == ["sdapi", name.split(".")[1]]}
    # Importing `sdapi.x.y` also names `sdapi.x`; keep the most specific name of each statement.
    specific = {(m, n) for m, n in local if not any(o != n and o.startswith(n + ".") for mm, o in local if mm == m)}
    unexplained = sorted(pair for pair in specific if pair not in LAZY_IMPORTS)
    assert not unexplained, f"function-local imports with no torch to defer: {unexplained}"


@pytest.mark.parametrize("module", [m for m in MODULES if not in_layer(m, ("sdapi.cluster",))])
def test_only_the_cluster_package_imports_ray(module):
    found = sorted({name for name, _ in imports_of(module) if in_layer(name, ("ray",))})
    assert not found, f"{module} imports {found}; only sdapi.cluster may (Ray is an optional extra)"


def test_the_cluster_package_is_imported_only_lazily_by_the_cli():
    importers = sorted((module, local) for module in MODULES if not in_layer(module, ("sdapi.cluster",))
                       for name, local in imports_of(module) if in_layer(name, ("sdapi.cluster",)))
    assert importers == [("sdapi.cli", True)], importers
