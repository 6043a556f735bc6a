"""``/dataset/tags`` (frequencies, pruning edits), ``/dataset/tag`` (WD14 tagging) and ``/dataset/models`` over HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.api.dataset_fixtures import built_tagger, no_caption_models, tiny_tagger, workdir  # noqa: F401
from tests.unit.dataset_helpers import solid


@pytest.fixture()
def dataset(workdir) -> Path:
    """A kohya training root: ``10_aki`` with three captioned images and one without a caption."""
    folder = workdir / "train" / "10_aki"
    folder.mkdir(parents=True)
    captions = {"a": "1girl, long hair, blue eyes, smile", "b": "1girl, Long_Hair, blue eyes, hat, hat",
                "c": "1girl, blue eyes, outdoors", "d": None}
    for name, caption in captions.items():
        solid((255, 0, 0), (16, 16)).save(folder / f"{name}.png")
        if caption is not None:
            (folder / f"{name}.txt").write_text(caption, encoding="utf-8")
    return folder


def test_frequencies_are_kohyas_ss_tag_frequency(client, dataset):
    r = client.get("/dataset/tags", params={"path": str(dataset.parent)})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["folders"] == [{"name": "10_aki", "class_tokens": "aki", "images": 4, "captioned": 3}]
    assert body["tag_frequency"] == {"10_aki": {
        "1girl": 3, "long hair": 1, "long_hair": 1, "blue eyes": 3, "smile": 1, "hat": 2, "outdoors": 1, "aki": 1}}
    assert body["tags"][:2] == [{"tag": "1girl", "count": 3}, {"tag": "blue eyes", "count": 3}]


def test_dry_run_shows_the_diff_and_writes_nothing(client, dataset):
    before = (dataset / "a.txt").read_text(encoding="utf-8")
    r = client.post("/dataset/tags", json={"path": str(dataset), "dry_run": True, "operations": [
        {"op": "remove", "tags": ["long hair", "blue eyes"]}, {"op": "add", "tags": ["akichan"]}]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["dry_run"] and body["changed"] == 3 and body["unchanged"] == 0
    first = body["changes"][0]
    assert Path(first["file"]).name == "a.txt"
    assert (first["before"], first["after"]) == ("1girl, long hair, blue eyes, smile", "akichan, 1girl, smile")
    assert first["added"] == ["akichan"] and first["removed"] == ["long hair", "blue eyes"]
    assert (dataset / "a.txt").read_text(encoding="utf-8") == before


def test_the_pruning_step_end_to_end(client, dataset):
    ops = [{"op": "remove", "tags": ["long hair", "blue eyes"]}, {"op": "dedupe"},
           {"op": "replace", "old": "smile", "new": "smile, open mouth"},
           {"op": "sort", "by": "frequency"}, {"op": "add", "tags": ["akichan"], "position": "first"}]
    r = client.post("/dataset/tags", json={"path": str(dataset), "operations": ops})
    assert r.status_code == 200 and r.json()["changed"] == 3 and not r.json()["dry_run"]
    assert (dataset / "a.txt").read_text(encoding="utf-8") == "akichan, 1girl, smile, open mouth"
    assert (dataset / "b.txt").read_text(encoding="utf-8") == "akichan, 1girl, hat"
    assert not (dataset / "d.txt").exists()
    freq = client.get("/dataset/tags", params={"path": str(dataset)}).json()["tag_frequency"]["10_aki"]
    assert freq == {"akichan": 3, "1girl": 3, "smile": 1, "open mouth": 1, "hat": 1, "outdoors": 1, "aki": 1}
    again = client.post("/dataset/tags", json={"path": str(dataset), "operations": ops[-1:]}).json()
    assert again["changed"] == 0 and again["unchanged"] == 3


def test_bad_requests(client, dataset, workdir):
    r = client.post("/dataset/tags", json={"path": str(dataset), "operations": [{"op": "shuffle"}]})
    assert r.status_code == 422
    r = client.post("/dataset/tags", json={"path": str(dataset), "operations": []})
    assert r.status_code == 422
    r = client.get("/dataset/tags", params={"path": str(workdir / "nothing")})
    assert r.status_code == 404 and "Dataset folder not found" in r.json()["detail"]


def test_escapes_are_refused_with_403(client, dataset, workdir, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.png").write_bytes(b"")
    assert client.get("/dataset/tags", params={"path": str(outside)}).status_code == 403
    assert client.get("/dataset/tags", params={"path": str(dataset) + "/../../.."}).status_code == 403
    (workdir / "link").symlink_to(outside, target_is_directory=True)
    r = client.post("/dataset/tags", json={"path": str(workdir / "link"), "operations": [{"op": "dedupe"}]})
    assert r.status_code == 403
    (outside / "secret.txt").write_text("secret, tags")
    (dataset / "d.txt").symlink_to(outside / "secret.txt")
    r = client.post("/dataset/tags", json={"path": str(dataset), "operations": [{"op": "add", "tags": ["x"]}]})
    assert r.status_code == 403 and (outside / "secret.txt").read_text() == "secret, tags"
    assert client.get("/dataset/tags", params={"path": str(dataset)}).status_code == 403


def test_model_folders_are_read_but_never_edited(client, settings):
    models = settings.data_dir / "models" / "Stable-diffusion"
    before = sorted(p.name for p in models.iterdir())
    assert client.get("/dataset/tags", params={"path": "models/Stable-diffusion"}).status_code == 200
    r = client.post("/dataset/tags", json={"path": "models/Stable-diffusion", "operations": [{"op": "dedupe"}]})
    assert r.status_code == 403 and "model folder" in r.json()["detail"]
    r = client.post("/dataset/tag", json={"path": "models/Stable-diffusion"})
    assert r.status_code == 403
    assert sorted(p.name for p in models.iterdir()) == before


def test_tagging_a_folder_with_wd14_options(client, dataset, tiny_tagger):
    models = client.get("/dataset/models").json()
    assert models["taggers"] == [{"name": "tiny", "path": str(tiny_tagger)}] and models["captioners"] == []
    r = client.post("/dataset/tag", json={"path": str(dataset), "rating": True, "escape_brackets": True,
                                          "undesired_tags": ["blue_eyes"], "existing": "skip"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["tagged"], body["skipped"], body["interrupted"]) == (1, 3, False)
    expected = "sensitive, solo, long hair, ganyu \\(genshin impact\\), ^_^"
    assert body["captions"] == {str(dataset / "d.png"): expected}
    assert (dataset / "d.txt").read_text(encoding="utf-8") == expected
    r = client.post("/dataset/tag", json={"path": str(dataset), "model": "tiny", "existing": "append",
                                          "general_threshold": 0.9, "character_threshold": 1.0})
    assert (dataset / "c.txt").read_text(encoding="utf-8") == "1girl, blue eyes, outdoors, solo, long hair"
    r = client.post("/dataset/tag", json={"path": str(dataset), "model": "other"})
    assert r.status_code == 422 and "'other' not found" in r.json()["detail"]


def test_tagging_reports_progress_on_the_queue(client, dataset, tiny_tagger, monkeypatch):
    import sdapi.dataset.tagging as module

    seen, real = [], module.read_caption

    def watching(path):
        seen.append(client.app.state.sdapi.control.snapshot())
        return real(path)

    monkeypatch.setattr(module, "read_caption", watching)
    r = client.post("/dataset/tag", json={"path": str(dataset)})
    assert r.status_code == 200 and r.json()["tagged"] == 4
    assert [s["job"] for s in seen] == ["tag"] * 4 and [s["job_no"] for s in seen] == [0, 1, 2, 3]
    assert seen[0]["job_count"] == 4 and seen[2]["textinfo"] == "Tagging [Image 2/4]"
    assert client.get("/sdapi/v1/progress").json()["state"]["job_count"] == 0


def test_tagging_without_a_tagger_is_422(client, dataset, no_caption_models):
    r = client.post("/dataset/tag", json={"path": str(dataset)})
    assert r.status_code == 422 and "No WD14 tagger is installed" in r.json()["detail"]
    assert not (dataset / "d.txt").exists()
