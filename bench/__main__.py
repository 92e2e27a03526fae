"""``python -m bench [--quick] [--only ttft,stream,memory,ui,concurrency,api]``: run the
benchmarks against replica Spaces on 127.0.0.1, print a Markdown table and write it to
``bench/results/latest.md``."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from . import common, report

PARTS = ("ttft", "stream", "memory", "ui", "concurrency", "api", "store")


def _load() -> str:
    try:
        return " / ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    parser.add_argument("--only", default=",".join(PARTS),
                        help=f"comma-separated parts to run (default: all of {','.join(PARTS)})")
    parser.add_argument("--url", help="use this running Max Gradio 6 replica instead of "
                        "starting one (must be concurrency ≥ 20 for 'concurrency')")
    parser.add_argument("--out", default=str(common.ROOT / "bench" / "results" / "latest.md"),
                        help="where to write the Markdown report ('-' for nowhere)")
    parser.add_argument("--ui-sections", default=None,
                        help="comma-separated sections of the 'ui' part (default: all of "
                        "bytes,ttft,history,concurrent)")
    parser.add_argument("--gc-cap", type=int, default=None,
                        help="stop gradio_client's 50,000-update stream after this many "
                        "updates (its CPU per update grows with the answer)")
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown part(s) {', '.join(sorted(unknown))}; choose from {PARTS}")
    if args.url and not args.url.startswith(("http://127.0.0.1", "http://localhost")):
        parser.error("--url must be a replica on 127.0.0.1")
    quick = args.quick
    gc_cap = args.gc_cap if args.gc_cap is not None else (10_000 if quick else None)

    pinned = common.pin_self()
    replicas = common.Replicas(args.url)
    sections: list[report.Section] = []
    load_before = _load()
    started = time.perf_counter()
    try:
        for part in PARTS:
            if part not in parts:
                continue
            print(f"[bench] {part} …", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            if part == "ttft":
                from . import ttft
                section = ttft.measure(replicas, rounds=8 if quick else 30)
            elif part == "stream":
                from . import stream
                section = stream.measure(replicas, rounds_small=2 if quick else 5,
                                         rounds_big=1 if quick else 2, gc_cap=gc_cap)
            elif part == "memory":
                from . import memory
                section = memory.measure(replicas, rounds=1 if quick else 3)
            elif part == "ui":
                from . import ui
                chosen = tuple(p.strip() for p in (args.ui_sections or "").split(",")
                               if p.strip()) or ui.SECTIONS
                section = ui.measure(replicas, rounds=1 if quick else 2, sections=chosen)
            elif part == "concurrency":
                from . import concurrency
                replicas.stop(1)  # one replica at a time on the server core
                section = concurrency.measure(replicas, rounds=1 if quick else 3)
            elif part == "store":  # qwen_chat.store on SQLite and PostgreSQL (no replica)
                from . import store
                section = store.measure(5 if quick else 20, sections)
            else:
                from . import api
                replicas.stop()  # the API part uses one replica with concurrency 50
                section = api.measure(replicas, rounds=8 if quick else 30,
                                      cpu_rounds=1 if quick else 3)
            section.seconds = time.perf_counter() - t0
            sections.append(section)
            print(f"[bench] {part} done in {section.seconds:.0f} s", file=sys.stderr,
                  flush=True)
    finally:
        replicas.stop()
    total = time.perf_counter() - started
    machine = common.machine()
    machine["load avg (before / after)"] = f"{load_before} → {_load()}"
    settings = (
        f"Mode: {'quick' if quick else 'full'} · parts: {', '.join(parts)} · "
        + (f"replica pinned to core {common.SERVER_CORE}, clients to core "
           f"{common.CLIENT_CORE} (taskset)" if pinned else "no CPU pinning (needs 2 cores)")
        + f" · total {total:.0f} s. Replica: Qwen2.5-Max on Gradio 6 "
        "(`tests/replicas/apps/qwen25_max_g6.py`), all traffic on 127.0.0.1. Ratios are "
        "qwen_core / raw unless said; raw = hand-written httpx + httpx-sse reader "
        "(`bench/raw_reader.py`), the floor."
    )
    text = report.render(machine, sections, settings)
    print(text)
    if args.out != "-":
        report.write(text, Path(args.out))
        print(f"[bench] written to {args.out}", file=sys.stderr)
    return 0 if all(r.met is not False for s in sections for r in s.rows) else 1


if __name__ == "__main__":
    os.chdir(common.ROOT)
    sys.exit(main())
