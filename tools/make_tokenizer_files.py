"""Generate the shipped CLIP tokenizer files (``sdapi/configs/tokenizers/clip``).

Provenance: the real CLIP ViT-L/14 BPE table ships inside the PyPI package
``openai-clip`` as ``clip/bpe_simple_vocab_16e6.txt.gz``. This script converts
that table into the ``vocab.json`` + ``merges.txt`` pair that transformers'
``CLIPTokenizer`` reads (49408 tokens; ``<|startoftext|>`` = 49406,
``<|endoftext|>`` = 49407), byte-for-byte the files of
``openai/clip-vit-large-patch14``.

Usage::

    python tools/make_tokenizer_files.py [OUT_DIR]

The ``clip`` package is located with ``importlib.util.find_spec`` and never
imported, because its ``__init__`` imports torchvision and pkg_resources.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import sys
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "sdapi" / "configs" / "tokenizers" / "clip"

# CLIP's vocab: 256 byte symbols, 256 byte symbols with "</w>", the merges, 2 specials.
_N_MERGES = 49152 - 256 - 2


def bytes_to_unicode() -> dict[int, str]:
    """Build the GPT-2/CLIP table that maps every byte to a printable character.

    Returns:
        A dict from byte value (0-255) to a one-character string.
    """
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    codes = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in codes)))


def find_bpe_file() -> Path:
    """Locate ``bpe_simple_vocab_16e6.txt.gz`` in the installed openai-clip package.

    Returns:
        The path of the gzipped BPE table.

    Raises:
        FileNotFoundError: if openai-clip is not installed.
    """
    spec = importlib.util.find_spec("clip")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the 'openai-clip' package is not installed (pip install openai-clip)")
    return Path(list(spec.submodule_search_locations)[0]) / "bpe_simple_vocab_16e6.txt.gz"


def build_vocab(bpe_path: Path) -> tuple[list[str], list[str]]:
    """Convert the BPE table into an ordered token list and merge list.

    Args:
        bpe_path: path of ``bpe_simple_vocab_16e6.txt.gz``.

    Returns:
        ``(tokens, merges)``: tokens in id order, merges as "a b" lines.
    """
    lines = gzip.open(bpe_path).read().decode("utf-8").split("\n")
    merges = lines[1 : _N_MERGES + 1]  # line 0 is a version header
    byte_chars = list(bytes_to_unicode().values())
    tokens = byte_chars + [c + "</w>" for c in byte_chars]
    tokens += ["".join(m.split()) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return tokens, merges


def write_files(out_dir: Path, tokens: list[str], merges: list[str]) -> None:
    """Write ``vocab.json`` and ``merges.txt`` in the Hugging Face layout.

    Args:
        out_dir: target directory (created if missing).
        tokens: tokens in id order.
        merges: merge rules, one "a b" string each.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    vocab = {tok: i for i, tok in enumerate(tokens)}
    (out_dir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (out_dir / "merges.txt").write_text("#version: 0.2\n" + "".join(m + "\n" for m in merges), encoding="utf-8")


def main(argv: list[str]) -> int:
    """Entry point.

    Args:
        argv: command-line arguments; an optional output directory.

    Returns:
        The process exit status.
    """
    out_dir = Path(argv[0]) if argv else DEFAULT_OUT
    tokens, merges = build_vocab(find_bpe_file())
    assert len(tokens) == 49408, len(tokens)
    write_files(out_dir, tokens, merges)
    print(f"wrote {len(tokens)} tokens, {len(merges)} merges to {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
