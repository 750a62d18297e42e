"""``python -m bench`` (``make bench``): run every benchmark this checkout has, one after another.

The known ones run in a fixed order; any other ``bench/*.py`` is picked up too (before the
engine). Each module runs in its own process (``python -m bench.NAME``, its own defaults), so one
slow import or crash cannot skew or stop the others. A module that is absent, has no ``main()``,
or needs the real vLLM engine when none is prepared is skipped with a line saying why.

    python -m bench                         # all
    python -m bench --only gateway_overhead -- --duration 5   # one, with its own flags
    python -m bench --list
"""

from __future__ import annotations

import argparse
import ast
import os
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent

# Run order: cheap and self-contained first, the real engine last.
KNOWN = [
    "gateway_overhead",
    "limits_overhead",
    "prompts_render",
    "retrieval_*",
    "evals_throughput",
    "engine_throughput",
]
# Modules that need the prepared engine, unless they declare ``NEEDS_ENGINE = False``.
ENGINE_DEFAULT = {"engine_throughput"}


def discover() -> list[str]:
    """The known benchmarks in run order, then any other ``bench/*.py`` before the engine."""
    names: list[str] = []
    for pattern in KNOWN:
        if "*" in pattern:
            names += sorted(p.stem for p in BENCH.glob(pattern + ".py"))
        else:
            names.append(pattern)
    others = sorted(
        p.stem for p in BENCH.glob("*.py") if not p.stem.startswith("_") and p.stem not in names
    )
    last = names.index("engine_throughput")
    return names[:last] + others + names[last:]


def inspect_module(name: str) -> tuple[bool, bool | None]:
    """(has a top-level ``main``, its ``NEEDS_ENGINE`` if declared), without importing it."""
    tree = ast.parse((BENCH / f"{name}.py").read_text(encoding="utf-8"))
    has_main = False
    needs: bool | None = None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == "main":
            has_main = True
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "NEEDS_ENGINE" for t in targets):
                if isinstance(node.value, ast.Constant):
                    needs = bool(node.value.value)
    return has_main, needs


def engine_missing() -> str | None:
    """Why the default local engine cannot start now, or ``None`` when it is prepared."""
    try:
        from engine import DEFAULT_MODEL, EngineSpec, is_engine_venv_ready, model_dir
    except ImportError as e:
        return f"engine does not import ({e})"
    spec = EngineSpec(model=DEFAULT_MODEL)
    if not is_engine_venv_ready(spec.backend):
        return f"the {spec.backend} engine venv is not installed"
    if not model_dir(DEFAULT_MODEL).is_dir():
        return f"model {DEFAULT_MODEL} is not prepared"
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench", description="Run the benchmarks under bench/."
    )
    ap.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="run only this benchmark (repeatable)",
    )
    ap.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    ap.add_argument(
        "args", nargs=argparse.REMAINDER, help="after --: flags passed to the benchmark(s) run"
    )
    ns = ap.parse_args(argv)
    extra = ns.args[1:] if ns.args[:1] == ["--"] else ns.args
    names = discover()
    if ns.list:
        for name in names:
            state = "present" if (BENCH / f"{name}.py").exists() else "absent"
            print(f"{name:24} {state}")
        return 0
    if ns.only:
        unknown = [n for n in ns.only if n not in names and not (BENCH / f"{n}.py").exists()]
        if unknown:
            ap.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(names)}")
        names = ns.only

    ran: list[str] = []
    skipped: list[str] = []
    failed: list[str] = []
    engine_reason: str | bool | None = False  # False = not checked yet
    for name in names:
        path = BENCH / f"{name}.py"
        if not path.exists():
            print(f"== skip {name}: bench/{name}.py does not exist yet", flush=True)
            skipped.append(name)
            continue
        has_main, needs = inspect_module(name)
        if not has_main:
            print(f"== skip {name}: bench/{name}.py has no main()", flush=True)
            skipped.append(name)
            continue
        if needs if needs is not None else name in ENGINE_DEFAULT:
            if engine_reason is False:
                engine_reason = engine_missing()
            if engine_reason:
                print(
                    f"== skip {name}: needs the real engine and {engine_reason} "
                    "(run `make engine` or `llmops models prepare` first)",
                    flush=True,
                )
                skipped.append(name)
                continue
        print(f"== {name}", flush=True)
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
            ),
        }
        t0 = time.perf_counter()
        rc = subprocess.run(
            [sys.executable, "-m", f"bench.{name}", *extra], cwd=ROOT, env=env, check=False
        ).returncode
        took = time.perf_counter() - t0
        print(
            f"== {name}: {'ok' if rc == 0 else f'FAILED (exit {rc})'} in {took:.0f} s", flush=True
        )
        (ran if rc == 0 else failed).append(name)
    print(
        f"\nbenchmarks: {len(ran)} ran, {len(skipped)} skipped, {len(failed)} failed"
        + (f" ({', '.join(failed)})" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
