"""Goal 2: whole-stream wall time and client CPU for 5,000 and 50,000 updates.

``script:long:N`` streams N tokens, one queue update each. Every client runs in this
process; ``time.process_time()`` around the stream is the client's CPU (all its threads:
gradio_client reads the stream in helper threads). CPU per update = CPU / N. The replica
runs on another core, so wall time is mostly the server's pace; CPU is the client's own
cost, and its per-update figure must not grow with the answer."""

from __future__ import annotations

import gc

from .common import (
    CLIENTS,
    Replicas,
    Run,
    expected,
    median,
    rotations,
    run_client,
    run_gradio_client,
)
from .report import Row, Section, sec, us, x

SIZES = (5_000, 50_000)


def _runs(url: str, n: int, names: tuple[str, ...], rounds: int) -> dict[str, list[Run]]:
    query = f"script:long:{n}"
    want = expected(query)
    runs: dict[str, list[Run]] = {name: [] for name in names}
    for _, name in rotations(names, rounds):
        gc.collect()
        run = run_client(name, url, query)
        if run.text != want:
            raise AssertionError(f"stream: {name} got a wrong {n}-token answer")
        runs[name].append(run)
    return runs


def measure(replicas: Replicas, rounds_small: int, rounds_big: int,
            gc_big: bool = True, gc_cap: int | None = None) -> Section:
    url = replicas.url(1)
    section = Section("stream")
    run_client("qwen_core", url, "script:long:200")  # warm-up
    run_client("raw", url, "script:long:200")
    per_update: dict[tuple[str, int], float] = {}
    for n in SIZES:
        big = n == SIZES[-1]
        # gradio_client's CPU grows with the answer: one round of it at the large size
        names = ("qwen_core", "raw") if big else CLIENTS
        runs = _runs(url, n, names, rounds_big if big else rounds_small)
        if big and gc_big:
            gc.collect()
            one = run_gradio_client(url, f"script:long:{n}", cap=gc_cap)
            if gc_cap is None and one.text != expected(f"script:long:{n}"):
                raise AssertionError(f"stream: gradio_client got a wrong {n}-token answer")
            runs["gradio_client"] = [one]
            if gc_cap is not None:
                section.notes.append(
                    f"gradio_client's {n:,}-update run was capped at {one.updates:,} updates "
                    "(its CPU per update grows with the answer); its figures are for those."
                )
        wall = {name: median(r.wall for r in rs) for name, rs in runs.items()}
        cpu = {name: median(r.cpu for r in rs) for name, rs in runs.items()}
        count = {name: max(r.updates for r in rs) if name == "gradio_client" else n
                 for name, rs in runs.items()}
        for name in runs:
            per_update[(name, n)] = cpu[name] / count[name]

        def cell(name: str, values: dict[str, float], fmt=sec) -> str:
            return fmt(values[name]) if name in values else "not run"

        ratio = wall["qwen_core"] / wall["raw"]
        section.rows.append(Row(
            f"Whole stream, {n:,} updates: wall (median)", cell("qwen_core", wall),
            cell("raw", wall), cell("gradio_client", wall), f"qwen_core/raw {x(ratio)}",
            "qwen_core ≤ 1.2x raw", ratio <= 1.2,
        ))
        section.rows.append(Row(
            f"Whole stream, {n:,} updates: client CPU (median)", cell("qwen_core", cpu),
            cell("raw", cpu), cell("gradio_client", cpu),
            f"qwen_core/raw {x(cpu['qwen_core'] / cpu['raw'])}"
            + (f" · gradio_client/raw {x(cpu['gradio_client'] / cpu['raw'])}"
               if "gradio_client" in cpu else ""),
        ))
        section.rows.append(Row(
            f"CPU per update, {n:,} updates",
            us(per_update[("qwen_core", n)]), us(per_update[("raw", n)]),
            us(per_update[("gradio_client", n)]) if ("gradio_client", n) in per_update else "—",
        ))
        rounds = {name: len(rs) for name, rs in runs.items()}
        section.notes.append(
            f"{n:,} updates: rounds {rounds}; walls (s) "
            + "; ".join(f"{name} " + ", ".join(f"{r.wall:.2f}" for r in rs)
                        for name, rs in runs.items())
        )
    small, big = SIZES

    def growth(name: str) -> float:
        return per_update[(name, big)] / per_update[(name, small)]

    section.rows.append(Row(
        f"CPU per update growth ({big // 1000}k vs {small // 1000}k)",
        x(growth("qwen_core")), x(growth("raw")),
        x(growth("gradio_client")) if ("gradio_client", big) in per_update else "—",
        f"qwen_core {x(growth('qwen_core'))}", "qwen_core ≤ 1.5x (flat)",
        growth("qwen_core") <= 1.5,
    ))
    return section
