"""Pixel parity with A1111 v1.2.1: replay the shared fixture set and print case, max |diff| and PSNR.

Usage (from the repository root)::

    .venv/bin/python benchmarks/parity.py                 # every case
    .venv/bin/python benchmarks/parity.py --cases 'txt2img-sampler-*' --json out.json

The fixture set (``../shared/fixtures/a1111-parity`` unless ``--fixtures``) is served unchanged from a temporary
models folder through an in-process ``TestClient``; see ``tests/parity/replay.py``.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def format_row(name: str, max_diff: int, psnr: float, differing: float, note: str) -> str:
    """One table line."""
    shown = "inf" if math.isinf(psnr) else f"{psnr:.1f}"
    return f"{name:<36} {max_diff:>9} {shown:>9} {differing * 100:>8.2f}%  {note}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixtures", type=Path, help="the a1111-parity folder (default ../shared/fixtures/...)")
    parser.add_argument("--cases", default="*", help="glob over case names (default: all)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2, as recorded)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    import torch
    from fastapi.testclient import TestClient

    from sdapi.app import create_app
    from sdapi.settings import Settings
    from tests.parity.replay import PARITY_DIR, available, case_names, make_data_dir, replay

    root = args.fixtures or PARITY_DIR
    if not available(root):
        print(f"fixture set not found at {root}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    names = [n for n in case_names(root) if fnmatch.fnmatch(n, args.cases)]
    rows, worst = [], 0
    with tempfile.TemporaryDirectory(prefix="sdapi-parity-") as tmp:
        data_dir = make_data_dir(Path(tmp) / "data", root)
        settings = Settings(data_dir=data_dir, cache_dir=Path(tmp) / "cache", num_threads=args.threads)
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            print(f"{'case':<36} {'max |Δ|':>9} {'PSNR dB':>9} {'px diff':>9}")
            for name in names:
                started = time.perf_counter()
                result = replay(client, name, root)
                seconds = time.perf_counter() - started
                differing = max((d.differing for d in result.diffs if d is not None), default=0.0)
                note = result.detail or (f"{len(result.diffs)} images" if len(result.diffs) > 1 else "")
                print(format_row(name, result.max_diff, result.psnr, differing, note), flush=True)
                worst = max(worst, result.max_diff)
                rows.append({"case": name, "status": result.status, "max_diff": result.max_diff,
                             "psnr": None if math.isinf(result.psnr) else round(result.psnr, 2),
                             "differing": round(differing, 5), "seconds": round(seconds, 3), "note": note})
    within = sum(1 for r in rows if r["max_diff"] <= 1)
    print(f"{within}/{len(rows)} cases within ±1 level")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
