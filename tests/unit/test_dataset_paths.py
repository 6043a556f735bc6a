"""Request paths stay inside the data dir and the allow-listed roots: ``..`` and symlink escapes are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from sdapi.dataset.paths import PathGuard, PathNotAllowed
from sdapi.errors import InvalidRequest


@pytest.fixture()
def layout(tmp_path):
    data, extra, outside = tmp_path / "data", tmp_path / "extra", tmp_path / "outside"
    for folder in (data / "sets", extra, outside):
        folder.mkdir(parents=True)
    return data, extra, outside


def test_relative_paths_start_at_the_data_dir(layout):
    data, extra, _ = layout
    guard = PathGuard.for_roots(data, [extra])
    assert guard.resolve("sets/new") == (data / "sets" / "new").resolve()
    assert guard.resolve(str(extra / "a")) == (extra / "a").resolve()
    assert guard.resolve(str(data)) == data.resolve()


def test_outside_absolute_paths_are_refused_with_403(layout):
    data, extra, outside = layout
    with pytest.raises(PathNotAllowed) as caught:
        PathGuard.for_roots(data).resolve(str(outside))
    assert caught.value.status_code == 403 and "--dataset-root" in caught.value.detail
    with pytest.raises(PathNotAllowed):
        PathGuard.for_roots(data, [extra]).resolve("/etc")


def test_dot_dot_is_refused_even_when_it_lands_inside(layout):
    data, _, _ = layout
    guard = PathGuard.for_roots(data)
    with pytest.raises(PathNotAllowed, match=r"'\.\.'"):
        guard.resolve("sets/../sets")
    with pytest.raises(PathNotAllowed):
        guard.resolve("../outside")


def test_symlink_escapes_are_refused_and_inner_links_allowed(layout):
    data, _, outside = layout
    (data / "escape").symlink_to(outside, target_is_directory=True)
    (data / "inner").symlink_to(data / "sets", target_is_directory=True)
    guard = PathGuard.for_roots(data)
    with pytest.raises(PathNotAllowed):
        guard.resolve("escape")
    with pytest.raises(PathNotAllowed):
        guard.resolve("escape/deeper/still")
    assert guard.resolve("inner") == (data / "sets").resolve()
    (outside / "secret.txt").write_text("x")
    (data / "sets" / "leak.txt").symlink_to(outside / "secret.txt")
    with pytest.raises(PathNotAllowed):
        guard.check(data / "sets" / "leak.txt")


def test_a_prefix_of_a_root_is_not_inside_it(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data-other").mkdir()
    with pytest.raises(PathNotAllowed):
        PathGuard.for_roots(tmp_path / "data").resolve(str(tmp_path / "data-other"))


def test_unusable_paths_are_422_not_500(layout):
    data, _, _ = layout
    guard = PathGuard.for_roots(data)
    with pytest.raises(InvalidRequest, match="Invalid path"):
        guard.resolve("sets/a\x00b")
    (data / "loop").symlink_to(data / "loop")
    with pytest.raises(InvalidRequest):
        guard.check(data / "loop")


@pytest.fixture()
def models_layout(tmp_path):
    data = tmp_path / "data"
    for folder in ("models/Stable-diffusion", "models/Lora", "models/tagger", "sets"):
        (data / folder).mkdir(parents=True)
    guard = PathGuard.for_roots(data, protected=[data / "models"], writable=[data / "models" / "Lora"])
    return data, guard


def test_outputs_may_not_go_into_model_folders_but_may_go_into_lora(models_layout):
    data, guard = models_layout
    for requested in ("models/Stable-diffusion/pp", "models", "models/tagger", str(data / "models" / "x")):
        with pytest.raises(PathNotAllowed, match="model folder"):
            guard.resolve_output(requested)
        guard.resolve(requested)  # reading there is fine
    assert guard.resolve_output("models/Lora/sub") == (data / "models" / "Lora" / "sub").resolve()
    assert guard.resolve_output("sets/out") == (data / "sets" / "out").resolve()
    (data / "sets" / "to-models").symlink_to(data / "models" / "Stable-diffusion", target_is_directory=True)
    with pytest.raises(PathNotAllowed):
        guard.resolve_output("sets/to-models")
    with pytest.raises(PathNotAllowed):
        guard.resolve_output("sets/../models/Lora")


def test_a_writable_folder_outside_the_roots_takes_outputs_only(tmp_path):
    data, loras = tmp_path / "data", tmp_path / "loras"
    data.mkdir()
    loras.mkdir()
    guard = PathGuard.for_roots(data, writable=[loras])
    assert guard.resolve_output(str(loras)) == loras.resolve()
    with pytest.raises(PathNotAllowed):
        guard.resolve(str(loras / "x.safetensors"))


@pytest.mark.parametrize("value", ["a/b", "a\\b", "/abs", "..", "a..b", "x\x00", "", "n" * 200, "."])
def test_name_fragments_refuse_separators_dot_dot_nul_and_absurd_lengths(value):
    with pytest.raises((PathNotAllowed, InvalidRequest)):
        PathGuard.for_roots(Path("/nonexistent-root")).check_name(value)


def test_name_fragments_pass_plain_names():
    guard = PathGuard.for_roots(Path("/nonexistent-root"))
    assert guard.check_name("lp_") == "lp_" and guard.check_name(".caption") == ".caption"


def test_messages_never_name_server_folders(tmp_path):
    data, outside = tmp_path / "data", tmp_path / "outside"
    (data / "sets").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.txt").write_text("x")
    (data / "sets" / "leak.txt").symlink_to(outside / "secret.txt")
    guard = PathGuard.for_roots(data)
    with pytest.raises(PathNotAllowed) as caught:
        guard.check(data / "sets" / "leak.txt")
    assert "sets/leak.txt" in caught.value.detail and str(tmp_path) not in caught.value.detail
    with pytest.raises(InvalidRequest) as invalid:
        guard.resolve("sets/" + "x" * 5000)
    assert str(tmp_path) not in str(invalid.value)
    (data / "loop").symlink_to(data / "loop")
    with pytest.raises(InvalidRequest) as looped:
        guard.check(data / "loop")
    assert str(tmp_path) not in str(looped.value)
