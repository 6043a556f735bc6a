"""Run AUTOMATIC1111's own API test suites against a fresh sdapi server.

A1111's tests are not part of sdapi (AGPL); point this at an A1111 git repository (a clone, or a bare mirror) and
name the tags. For each tag it exports that tag's ``test/`` folder, starts ``sdapi serve`` on port 7860 (where
A1111's tests send their requests) over a throw-away data dir with the demo checkpoints, and runs:

* v1.2.1-style suites (``test/basic_features/*_test.py``, unittest, URLs hard-coded to ``localhost:7860``); they
  import two helpers from A1111's environment (gradio's ``encode_pil_to_base64`` and ``modules.paths.script_path``),
  which this script provides as small stand-ins;
* v1.10-style suites (``test/test_{txt2img,img2img,extras,utils}.py``, pytest with a ``base_url`` fixture, which
  this script provides). ``test_face_restorers.py`` and ``test_torch_utils.py`` import A1111's own modules rather
  than calling the API, so they are not run.

    .venv/bin/python tools/run_a1111_tests.py /path/to/stable-diffusion-webui v1.2.1 v1.10.1

Exit status: the number of suites that failed.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path

PORT = 7860
V1_10_FILES = ["test_txt2img.py", "test_img2img.py", "test_extras.py", "test_utils.py"]
BASE_URL_PLUGIN = '''import pytest


@pytest.fixture(scope="session")
def base_url():
    return "http://localhost:%d"
''' % PORT


def export_tests(repo: Path, tag: str, target: Path) -> Path:
    """``test/`` of ``tag`` unpacked under ``target``."""
    archive = subprocess.run(["git", f"--git-dir={git_dir(repo)}", "archive", "--format=tar", tag, "test"],
                             check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return target / "test"


# Stand-ins for what the v1.2.1 suites import from A1111's environment.
V1_2_SHIMS = {
    "gradio/__init__.py": "",
    "gradio/processing_utils.py": '''import base64
import io


def encode_pil_to_base64(image):
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
''',
    "modules/__init__.py": "",
    "modules/paths.py": "import os\n\nscript_path = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))\n",
}


def git_dir(repo: Path) -> Path:
    return repo / ".git" if (repo / ".git").exists() else repo


def start_server(data_dir: Path, log: Path) -> subprocess.Popen:
    """``sdapi serve`` on port 7860 over ``data_dir`` (with the demo checkpoints), ready to answer."""
    subprocess.run([sys.executable, "-m", "sdapi", "demo-models", str(data_dir)], check=True)
    process = subprocess.Popen([sys.executable, "-m", "sdapi", "serve", "--data-dir", str(data_dir),
                                "--port", str(PORT), "--nowebui"], stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.time() + 300
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sdapi serve exited; see {log}")
        try:
            urllib.request.urlopen(f"http://localhost:{PORT}/sdapi/v1/sd-models", timeout=5)
            return process
        except OSError:
            time.sleep(1)
    process.kill()
    raise RuntimeError("sdapi serve did not answer within 300 s")


def run_suite(tests: Path) -> int:
    """Run one exported ``test/`` folder; returns the runner's exit status."""
    env = {**os.environ, "PYTHONPATH": str(tests.parent)}
    if (tests / "basic_features").is_dir():
        for name, text in V1_2_SHIMS.items():
            (tests.parent / name).parent.mkdir(parents=True, exist_ok=True)
            (tests.parent / name).write_text(text)
        command = [sys.executable, "-m", "unittest", "discover", "-v", "-s", str(tests), "-p", "*_test.py",
                   "-t", str(tests)]
    else:
        (tests.parent / "a1111_base_url.py").write_text(BASE_URL_PLUGIN)
        command = [sys.executable, "-m", "pytest", "-v", "-p", "a1111_base_url", "-p", "no:cacheprovider",
                   *[str(tests / name) for name in V1_10_FILES if (tests / name).exists()]]
    return subprocess.run(command, cwd=tests.parent, env=env).returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("repo", type=Path, help="an A1111 git repository (clone or bare mirror)")
    parser.add_argument("tags", nargs="+", help="tags whose test suites to run, e.g. v1.2.1 v1.10.1")
    args = parser.parse_args()
    failed = 0
    with tempfile.TemporaryDirectory(prefix="a1111-tests-") as tmp:
        root = Path(tmp)
        server = start_server(root / "data", root / "server.log")
        try:
            for tag in args.tags:
                print(f"=== A1111 {tag} API tests against sdapi", flush=True)
                status = run_suite(export_tests(args.repo, tag, root / tag))
                print(f"=== {tag}: {'passed' if status == 0 else 'FAILED'}", flush=True)
                failed += status != 0
        finally:
            server.terminate()
            server.wait(60)
    return failed


if __name__ == "__main__":
    sys.exit(main())
