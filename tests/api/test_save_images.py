"""``save_images: true`` saves into ``outputs/`` as A1111 v1.2.1 does: folders, sub-folders, sequence-numbered
names from the filename patterns, infotext inside each file, ``.txt`` files, grids; output folders are confined to
the allowed roots.

One server over its own data dir for the module; each test points the output folders somewhere of its own.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from PIL import Image

from tests.api.test_img2img import b64, gradient
from tests.conftest import txt2img

DEFAULTS = {"samples_save": True, "grid_save": True, "save_to_dirs": True, "grid_save_to_dirs": True,
            "samples_filename_pattern": "", "directories_filename_pattern": "[date]", "save_images_add_number": True,
            "save_txt": False, "samples_format": "png", "grid_format": "png", "grid_extended_filename": False}


@pytest.fixture(scope="module")
def saving(data_dir, fresh_data_dir, tmp_path_factory):
    """``(client, data dir)`` of a server that has written nothing yet."""
    from fastapi.testclient import TestClient

    from sdapi.app import create_app
    from sdapi.settings import Settings

    root = fresh_data_dir(data_dir)
    settings = Settings(data_dir=root, cache_dir=tmp_path_factory.mktemp("save-cache"), num_threads=2)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client, root


def configure(client, name: str, **values) -> str:
    """Set A1111's saving options (``values`` over the defaults) with every output folder under
    ``outputs/<name>``; returns that folder."""
    folder = f"outputs/{name}"
    options = {**DEFAULTS, "outdir_txt2img_samples": f"{folder}/txt2img-images",
               "outdir_txt2img_grids": f"{folder}/txt2img-grids", "outdir_img2img_samples": f"{folder}/img2img-images",
               "outdir_img2img_grids": f"{folder}/img2img-grids", **values}
    r = client.post("/sdapi/v1/options", json=options)
    assert r.status_code == 200, r.text
    return folder


def files(folder: Path) -> list[str]:
    """Every file under ``folder``, as paths relative to it."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def today() -> str:
    return datetime.now().strftime("%Y-%m-%d")


def infotexts(body: dict) -> list[str]:
    return json.loads(body["info"])["infotexts"]


def test_default_names_are_numbered_across_requests_in_a_dated_folder(saving):
    client, root = saving
    folder = root / configure(client, "default")
    first = txt2img(client, save_images=True, seed=5)
    second = txt2img(client, save_images=True, seed=6)
    day = today()
    assert files(folder) == [f"txt2img-images/{day}/00000-5.png", f"txt2img-images/{day}/00001-6.png"]
    # The saved PNG's infotext is the response's, in A1111's "parameters" chunk and nothing else.
    for name, body in (("00000-5.png", first), ("00001-6.png", second)):
        saved = Image.open(folder / "txt2img-images" / day / name)
        assert saved.info == {"parameters": infotexts(body)[0]}
    # A single image makes no grid; nothing names a server path in the answer.
    assert "warnings" not in json.loads(second["info"])


def test_without_sub_folders_the_name_holds_seed_and_prompt(saving):
    client, root = saving
    folder = root / configure(client, "flat", save_to_dirs=False)
    txt2img(client, save_images=True, seed=9, prompt="a cat: <lora:none:1> on a mat?")
    txt2img(client, save_images=True, seed=10, prompt="a cat")
    # [prompt_spaces]: the sampled prompt (the <lora:…> tag removed), A1111's characters replaced, spaces kept.
    assert files(folder) == ["txt2img-images/00000-9-a cat_  on a mat_.png", "txt2img-images/00001-10-a cat.png"]


def test_a_custom_pattern_fills_each_tag(saving):
    client, root = saving
    pattern = ("[seed]-[steps]-[cfg]-[width]x[height]-[sampler]-[prompt_words]-[batch_number]-[generation_number]"
               "-[hasprompt<cat|nocat><dog|nodog>]-[prompt_hash]-[model_name]-[no_such_tag]")
    folder = root / configure(client, "pattern", samples_filename_pattern=pattern,
                              directories_filename_pattern="[sampler] [steps]")
    body = txt2img(client, save_images=True, seed=3, batch_size=2, prompt="A fluffy, grey cat!")
    model = client.get("/sdapi/v1/options").json()["sd_model_checkpoint"]
    model_name = next(m["model_name"] for m in client.get("/sdapi/v1/sd-models").json() if m["title"] == model)
    import hashlib

    digest = hashlib.sha256(b"A fluffy, grey cat!").hexdigest()[:8]
    names = [f"txt2img-images/Euler 2/0000{i}-{3 + i}-2-7.0-64x64-Euler-A fluffy grey cat-{i + 1}-{i + 1}-catnodog-"
             f"{digest}-{model_name}-[no_such_tag].png" for i in range(2)]
    assert [n for n in files(folder) if n.startswith("txt2img-images")] == names
    assert len(infotexts(body)) == 3  # the grid's, then each image's


def test_a_batch_saves_its_grid(saving):
    client, root = saving
    folder = root / configure(client, "grid")
    body = txt2img(client, save_images=True, seed=20, batch_size=2)
    day = today()
    assert files(folder) == [f"txt2img-grids/{day}/grid-0000.png", f"txt2img-images/{day}/00000-20.png",
                             f"txt2img-images/{day}/00001-21.png"]
    grid = Image.open(folder / f"txt2img-grids/{day}/grid-0000.png")
    assert grid.size == (128, 64) and grid.info["parameters"] == infotexts(body)[0]
    # grid_extended_filename adds the samples' pattern; grid_save off saves no grid.
    configure(client, "grid", grid_extended_filename=True, grid_save_to_dirs=False)
    txt2img(client, save_images=True, seed=30, batch_size=2)
    assert (folder / "txt2img-grids/grid-0000-30.png").is_file()  # numbered per folder
    configure(client, "grid", grid_save=False, samples_save=False)
    txt2img(client, save_images=True, seed=40, batch_size=2)
    assert len(files(folder)) == 6  # 3 from each earlier request


def test_without_save_images_nothing_is_written(saving):
    client, root = saving
    folder = root / configure(client, "unsaved")
    body = txt2img(client, seed=1, batch_size=2)
    assert not folder.exists() and len(body["images"]) == 2


def test_save_txt_writes_the_infotext_beside_the_image(saving):
    client, root = saving
    folder = root / configure(client, "txt", save_txt=True, save_to_dirs=False)
    body = txt2img(client, save_images=True, seed=2, prompt="cat")
    assert files(folder) == ["txt2img-images/00000-2-cat.png", "txt2img-images/00000-2-cat.txt"]
    text = (folder / "txt2img-images/00000-2-cat.txt").read_text(encoding="utf-8")
    assert text == infotexts(body)[0] + "\n"


def test_jpeg_samples_carry_the_infotext_in_exif(saving):
    from sdapi.images import read_user_comment

    client, root = saving
    folder = root / configure(client, "jpeg", samples_format="jpg", save_images_add_number=False)
    body = txt2img(client, save_images=True, seed=4)
    saved = folder / "txt2img-images" / today() / "4.jpg"
    image = Image.open(saved)
    assert image.format == "JPEG" and read_user_comment(image) == infotexts(body)[0]


def test_img2img_saves_into_its_own_folder(saving):
    client, root = saving
    folder = root / configure(client, "img2img", save_to_dirs=False)
    r = client.post("/sdapi/v1/img2img", json={"prompt": "a dog", "init_images": [b64(gradient())], "width": 64,
                                                "height": 64, "steps": 2, "seed": 8, "save_images": True,
                                                "denoising_strength": 0.5})
    assert r.status_code == 200, r.text
    assert files(folder) == ["img2img-images/00000-8-a dog.png"]
    saved = Image.open(folder / "img2img-images/00000-8-a dog.png")
    assert saved.info["parameters"] == infotexts(r.json())[0] and "Denoising strength: 0.5" in saved.info["parameters"]


def test_an_output_folder_outside_the_allowed_roots_is_refused(saving, tmp_path):
    client, root = saving
    for value in (str(tmp_path / "elsewhere"), "../escape", "outputs/../../escape", "models/Stable-diffusion/x"):
        r = client.post("/sdapi/v1/options", json={"outdir_txt2img_samples": value})
        assert r.status_code == 403, r.text
        assert r.json()["detail"].startswith("option outdir_txt2img_samples: Path ")
        assert str(root) not in r.text
    assert client.get("/sdapi/v1/options").json()["outdir_txt2img_samples"] != str(tmp_path / "elsewhere")
    # A1111 lets a request override outdir_img2img_grids only; it is checked the same way.
    r = client.post("/sdapi/v1/img2img", json={"prompt": "x", "init_images": [b64(gradient())], "steps": 2,
                                                "override_settings": {"outdir_img2img_grids": str(tmp_path)}})
    assert r.status_code == 403 and "option outdir_img2img_grids" in r.json()["detail"]
    assert not list(tmp_path.iterdir())


def test_a_pattern_leaving_the_roots_or_a_failed_write_is_a_warning(saving):
    client, root = saving
    folder = root / configure(client, "escape", directories_filename_pattern="../../../../../../../../../tmp")
    body = txt2img(client, save_images=True, seed=1)
    warnings = json.loads(body["info"])["warnings"]
    assert len(body["images"]) == 1 and "'..' components are refused" in warnings[0]
    assert str(root) not in body["info"]
    # The samples folder is a file: the write fails, the answer still comes.
    folder = root / configure(client, "blocked")
    folder.mkdir(parents=True)
    (folder / "txt2img-images").write_text("not a folder")
    body = txt2img(client, save_images=True, seed=1)
    assert len(body["images"]) == 1
    assert json.loads(body["info"])["warnings"][0].startswith(
        "save_images: image 1 of 1 was not saved into outputs/blocked/txt2img-images: ")


def test_an_xyz_plot_saves_its_grids_and_with_save_images_its_cells(saving):
    from tests.api.test_xyz_plot import named, plot

    client, root = saving
    folder = root / configure(client, "xyz", save_to_dirs=False, grid_save_to_dirs=False)
    # A1111's script saves the plot's grid whenever grid_save is on, even without save_images.
    _, info = plot(client, named("Seed", "1, 2", z_type="Steps", z_values="1, 2"), seed=1, prompt="cat")
    grid_names = ["txt2img-grids/xyz_grid-0000-1-cat.png", "txt2img-grids/xyz_grid-0001-1-cat.png",
                  "txt2img-grids/xyz_grid-0002-1-cat.png"]  # the main grid, then one per Z value
    assert files(folder) == grid_names
    main = Image.open(folder / grid_names[0])
    assert main.info["parameters"] == info["infotexts"][0]
    # With save_images each cell is saved as a plain request's image would be.
    plot(client, named("Seed", "5, 6"), prompt="dog", save_images=True)
    assert files(folder) == grid_names + ["txt2img-grids/xyz_grid-0003-5-dog.png",
                                          "txt2img-images/00000-5-dog.png", "txt2img-images/00001-6-dog.png"]


def test_a_scripts_inner_images_are_saved_without_their_grids(saving):
    client, root = saving
    folder = root / configure(client, "script", samples_filename_pattern="[seed]-[prompt_spaces]",
                              save_to_dirs=False)
    body = txt2img(client, prompt="a cat|red", seed=9, save_images=True, script_name="prompt matrix",
                   script_args=[False, False, "positive", "comma", 0])
    names = files(folder)
    # The two combinations, each as its own process_images call would save it (no inner "grid-" file), and the
    # script's own grid, which A1111's prompt matrix saves whenever grid_save is on.
    assert names == [f"txt2img-grids/{today()}/prompt_matrix-0000-9-a cat_red.png",
                     "txt2img-images/00000-9-a cat.png", "txt2img-images/00001-9-a cat, red.png"]
    assert len(body["images"]) == 3  # the script's grid and the two cells
    unsaved = txt2img(client, prompt="a dog|blue", seed=9, script_name="prompt matrix",
                      script_args=[False, False, "positive", "comma", 0])
    assert files(folder) == sorted(names + [f"txt2img-grids/{today()}/prompt_matrix-0001-9-a dog_blue.png"])
    assert len(unsaved["images"]) == 3
    configure(client, "script-off", grid_save=False)
    txt2img(client, prompt="a dog|blue", seed=9, script_name="prompt matrix",
            script_args=[False, False, "positive", "comma", 0])
    assert not (root / "outputs" / "script-off").exists()


def test_sd_upscale_saves_its_result_whenever_samples_save_is_on(saving):
    client, root = saving
    folder = root / configure(client, "upscale", save_to_dirs=False, samples_filename_pattern="[seed]")
    body = {"init_images": [b64(gradient())], "prompt": "x", "width": 64, "height": 64, "steps": 2, "seed": 21,
            "denoising_strength": 0.3, "script_name": "sd upscale", "script_args": ["", 8, "Lanczos", 2.0]}
    assert client.post("/sdapi/v1/img2img", json=body).status_code == 200
    assert files(folder) == ["img2img-images/00000-21.png"]
    assert Image.open(folder / "img2img-images" / "00000-21.png").size == (128, 128)
