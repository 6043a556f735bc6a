"""Every engine implements the whole :class:`sdapi.engine.api.Engine` interface, with its parameter names (the
serving layer calls them by keyword in places, and a replica must answer whatever the local engine answers)."""

from __future__ import annotations

import inspect

import pytest

from sdapi.engine.api import Engine


def _methods(cls) -> dict[str, list[str]]:
    return {name: list(inspect.signature(member).parameters)
            for name, member in inspect.getmembers(cls, inspect.isfunction) if not name.startswith("_")}


def _implementations():
    from sdapi.engine.local import LocalEngine

    found = [LocalEngine]
    try:
        from sdapi.cluster.engine import RayEngine
    except ImportError:  # Ray is an optional extra
        pass
    else:
        found.append(RayEngine)
    return found


@pytest.mark.parametrize("cls", _implementations(), ids=lambda c: c.__name__)
def test_engine_implements_the_interface(cls):
    wanted, have = _methods(Engine), _methods(cls)
    missing = sorted(set(wanted) - set(have))
    assert not missing, f"{cls.__name__} lacks {missing}"
    for name, parameters in wanted.items():
        assert have[name][:len(parameters)] == parameters, name
