"""``POST /sdapi/v1/preprocess`` over HTTP: A1111 v1.2.1's request and answers, captions, confinement, progress."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from sdapi.app import build_state, create_app
from sdapi.settings import Settings
from tests.api.dataset_fixtures import (built_blip, built_tagger, no_caption_models, tiny_blip,  # noqa: F401
                                        tiny_tagger, workdir)
from tests.unit.dataset_helpers import BLIP_VOCAB, face_picture, solid


def a1111_args(src: Path, dst: Path, **changes) -> dict:
    """The body A1111's UI/API clients send: every parameter of ``preprocess()``."""
    body = {
        "id_task": "task(abc)", "process_src": str(src), "process_dst": str(dst), "process_width": 64,
        "process_height": 64, "preprocess_txt_action": "ignore", "process_keep_original_size": False,
        "process_flip": False, "process_split": False, "process_caption": False, "process_caption_deepbooru": False,
        "split_threshold": 0.5, "overlap_ratio": 0.2, "process_focal_crop": False,
        "process_focal_crop_face_weight": 0.9, "process_focal_crop_entropy_weight": 0.15,
        "process_focal_crop_edges_weight": 0.5, "process_focal_crop_debug": False, "process_multicrop": None,
        "process_multicrop_mindim": None, "process_multicrop_maxdim": None, "process_multicrop_minarea": None,
        "process_multicrop_maxarea": None, "process_multicrop_objective": None, "process_multicrop_threshold": None,
    }
    return {**body, **changes}


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture()
def src(workdir) -> Path:
    folder = workdir / "raw"
    folder.mkdir()
    solid((255, 0, 0), (96, 64)).save(folder / "a.png")
    (folder / "a.txt").write_text("aki", encoding="utf-8")
    solid((0, 0, 255), (64, 64)).save(folder / "b.png")
    return folder


def post(client, body: dict):
    return client.post("/sdapi/v1/preprocess", json=body)


def test_preprocess_answers_as_a1111_and_names_outputs_as_it_does(client, src, workdir):
    dst = workdir / "prepared"
    r = post(client, a1111_args(src, dst, preprocess_txt_action="copy", process_flip=True))
    assert r.status_code == 200 and r.json() == {"info": "preprocess complete"}
    assert names(dst) == ["00000-0-a.png", "00000-0-a.txt", "00000-1-a.png", "00000-1-a.txt",
                          "00002-0-b.png", "00002-1-b.png"]
    assert (dst / "00000-1-a.txt").read_text(encoding="utf-8") == "aki"
    assert {Image.open(dst / n).size for n in names(dst) if n.endswith(".png")} == {(64, 64)}


def test_relative_paths_start_at_the_data_dir(client, src, workdir, settings):
    relative = src.relative_to(settings.data_dir)
    r = post(client, a1111_args(relative, relative.parent / "rel-out"))
    assert r.json() == {"info": "preprocess complete"}
    assert names(workdir / "rel-out") == ["00000-0-a.png", "00002-0-b.png"]


def test_split_and_focal_crop_through_http(client, workdir):
    src = workdir / "shapes"
    src.mkdir()
    solid((0, 200, 0), (32, 128)).save(src / "tall.png")
    face_picture(192, 64, face_x=160, face_width=44).save(src / "wide.png")
    dst = workdir / "cut"
    r = post(client, a1111_args(src, dst, process_split=True, process_focal_crop=True,
                                process_focal_crop_entropy_weight=0.3))
    assert r.json() == {"info": "preprocess complete"}
    # Both steps apply: tall (ratio 0.25) gives 5 tiles then its focal crop; wide (ratio 1/3) 4 tiles then its crop.
    assert names(dst) == [f"00000-{i}-tall.png" for i in range(6)] + [f"00001-{i}-wide.png" for i in range(5)]
    crop = Image.open(dst / "00001-4-wide.png")
    r_, g, b = crop.getpixel((32, 40))
    assert crop.size == (64, 64) and r_ > g > b and r_ > 180  # the face's skin, not the noise


def test_multicrop_with_a1111_ui_defaults_when_bounds_are_null(client, workdir):
    src = workdir / "photos"
    src.mkdir()
    solid((5, 5, 5), (800, 600)).save(src / "photo.png")
    dst = workdir / "multi"
    r = post(client, a1111_args(src, dst, process_multicrop=True))
    assert r.json() == {"info": "preprocess complete"}
    # UI defaults: sides 384..768 in steps of 64, area <= 640², aspect error <= 0.1, largest area wins.
    assert Image.open(dst / "00000-0-photo.png").size == (704, 576)


def test_deepbooru_captions_come_from_the_wd14_tagger(client, src, workdir, tiny_tagger):
    dst = workdir / "tagged"
    r = post(client, a1111_args(src, dst, process_caption_deepbooru=True, preprocess_txt_action="prepend"))
    assert r.json() == {"info": "preprocess complete"}
    # A1111's deepbooru options: threshold 0.5, alphabetical, underscores kept, brackets escaped.
    assert (dst / "00000-0-a.txt").read_text(encoding="utf-8") == "aki ganyu_\\(genshin_impact\\), long_hair, solo"
    assert (dst / "00002-0-b.txt").read_text(encoding="utf-8") == "1girl, blue_eyes, solo"


def test_blip_and_tags_together(client, src, workdir, tiny_tagger, tiny_blip):
    dst = workdir / "both"
    r = post(client, a1111_args(src, dst, process_caption=True, process_caption_deepbooru=True))
    assert r.json() == {"info": "preprocess complete"}
    caption = (dst / "00002-0-b.txt").read_text(encoding="utf-8")
    sentence, tags = caption.split(", ", 1)
    assert sentence and set(sentence.split()) <= set(BLIP_VOCAB) and tags == "1girl, blue_eyes, solo"


def test_missing_caption_models_are_422_and_nothing_is_written(client, src, workdir, no_caption_models):
    dst = workdir / "never"
    r = post(client, a1111_args(src, dst, process_caption_deepbooru=True))
    assert r.status_code == 422
    assert "No WD14 tagger is installed" in r.json()["detail"] and "models/tagger" in r.json()["detail"]
    r = post(client, a1111_args(src, dst, process_caption=True))
    assert r.status_code == 422 and "No BLIP captioning model is installed" in r.json()["detail"]
    assert not dst.exists()


def test_a1111_error_answers_are_200_with_the_reason(client, src, workdir):
    r = post(client, a1111_args(src, src))
    assert r.status_code == 200
    assert r.json() == {"info": "preprocess error: same directory specified as source and destination"}
    missing = workdir / "missing"
    r = post(client, a1111_args(missing, workdir / "o"))
    assert r.json() == {"info": f"preprocess error: [Errno 2] No such file or directory: '{missing.resolve()}'"}


def test_bad_parameters_are_422_naming_them(client, src, workdir):
    body = a1111_args(src, workdir / "x")
    del body["process_caption"]
    r = post(client, {**body, "process_colour": True})
    assert r.status_code == 422
    detail = r.json()["errors"]
    assert "missing parameter 'process_caption'" in detail and "unexpected parameter 'process_colour'" in detail
    r = post(client, a1111_args(src, workdir / "x", preprocess_txt_action="merge"))
    assert r.status_code == 422 and "preprocess_txt_action" in r.json()["errors"]
    assert post(client, a1111_args(src, workdir / "x", process_width="64")).status_code == 200  # v1-style coercion


def test_paths_outside_the_roots_are_403(client, src, workdir, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    for body in (a1111_args(src, workdir / ".." / ".." / "escape"), a1111_args(outside, workdir / "o"),
                 a1111_args(src, outside / "o")):
        r = post(client, body)
        assert r.status_code == 403, body
        assert r.json()["error"] == "HTTPException" and "is not allowed" in r.json()["detail"]
    (workdir / "link").symlink_to(outside, target_is_directory=True)
    assert post(client, a1111_args(workdir / "link", workdir / "o")).status_code == 403
    (outside / "secret.txt").write_text("secret")
    (src / "a.txt").unlink()
    (src / "a.txt").symlink_to(outside / "secret.txt")  # would be copied into the dataset by "copy"
    r = post(client, a1111_args(src, workdir / "o", preprocess_txt_action="copy"))
    assert r.status_code == 403 and not (workdir / "o").exists()  # refused before the output folder is made
    assert not (outside / "o").exists()
    assert str(outside) not in r.text and str(workdir) not in r.text


@pytest.mark.parametrize("dst", ["models/Stable-diffusion/pp", "models", "models/tagger/pp"])
def test_model_folders_take_no_outputs(client, settings, src, dst):
    r = post(client, a1111_args(src, dst))
    assert r.status_code == 403, r.text
    assert "model folder" in r.json()["detail"] and str(settings.data_dir) not in r.text
    assert not (settings.data_dir / dst).exists() or dst == "models"
    assert not list((settings.data_dir / "models").rglob("*.png"))


def test_an_allow_listed_root_is_usable(client, settings, tmp_path):
    extra = tmp_path / "extra"
    (extra / "in").mkdir(parents=True)
    solid((1, 1, 1), (70, 64)).save(extra / "in" / "x.png")
    body = a1111_args(extra / "in", extra / "out")
    assert post(client, body).status_code == 403
    allowed = Settings(data_dir=settings.data_dir, cache_dir=settings.cache_dir, dataset_roots=[extra])
    state = build_state(allowed, engine=client.app.state.sdapi.engine)  # the services follow the state's settings
    with TestClient(create_app(allowed, state=state, load_model=False)) as other:
        assert post(other, body).json() == {"info": "preprocess complete"}
    assert names(extra / "out") == ["00000-0-x.png"]


def test_progress_reports_the_run_and_interrupt_stops_it(client, workdir, monkeypatch):
    import sdapi.dataset.preprocess as module

    src = workdir / "many"
    src.mkdir()
    for i in range(5):
        solid((i * 40, 0, 0), (80, 64)).save(src / f"{i}.png")
    first_done, go_on = threading.Event(), threading.Event()
    real = module._process_one

    def gated(*args, **kwargs):
        real(*args, **kwargs)
        first_done.set()
        go_on.wait(30)

    monkeypatch.setattr(module, "_process_one", gated)
    result = {}
    worker = threading.Thread(target=lambda: result.update(r=post(client, a1111_args(src, workdir / "out"))))
    worker.start()
    try:
        assert first_done.wait(30)
        body = client.get("/sdapi/v1/progress").json()
        client.post("/sdapi/v1/interrupt")
    finally:
        go_on.set()
        worker.join(60)
    assert body["state"]["job"] == "preprocess" and body["state"]["job_count"] == 5
    assert body["textinfo"] == "Preprocessing [Image 0/5]"
    assert body["progress"] == pytest.approx(0.01) and body["eta_relative"] >= 0
    assert result["r"].json() == {"info": "preprocess complete"}
    assert names(workdir / "out") == ["00000-0-0.png"]  # stopped before the second image
    deadline = time.monotonic() + 10
    while client.get("/sdapi/v1/progress").json()["state"]["job_count"] != 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert client.get("/sdapi/v1/progress").json()["state"]["job_count"] == 0
