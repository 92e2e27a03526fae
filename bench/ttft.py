"""Goal 1: time to the first answer token, cold.

Each round builds every client from nothing (imports excluded): qwen_core with its
``/config`` cache cleared, the raw reader (which always fetches ``/config``), and
``gradio_client.Client(url)`` constructed inside the timed region. The clock stops when
the first non-empty answer text reaches the caller; the rest of the (short) answer is
read so the replica is idle before the next client. Rounds alternate the order."""

from __future__ import annotations

import gc

from .common import (
    CLIENTS,
    Replicas,
    clear_qwen_core_cache,
    expected,
    median,
    rotations,
    run_client,
)
from .report import Row, Section, ms, x

QUERY = "script:long:20"


def measure(replicas: Replicas, rounds: int) -> Section:
    url = replicas.url(1)
    section = Section("ttft")
    for name in CLIENTS:  # warm-up: lazy imports and first-use costs, not measured
        clear_qwen_core_cache()
        run_client(name, url, QUERY)
    times: dict[str, list[float]] = {name: [] for name in CLIENTS}
    want = expected(QUERY)
    for _, name in rotations(CLIENTS, rounds):
        clear_qwen_core_cache()
        gc.collect()
        run = run_client(name, url, QUERY)
        if run.text != want:
            raise AssertionError(f"ttft: {name} streamed a wrong answer: {run.text[:80]!r}")
        times[name].append(run.first)
    med = {name: median(values) for name, values in times.items()}
    over = {name: med[name] - med["raw"] for name in CLIENTS}
    ratio = med["qwen_core"] / med["raw"]
    share = over["qwen_core"] / over["gradio_client"] if over["gradio_client"] > 0 else float("inf")
    section.rows.append(Row(
        "First token, cold (median ms)", ms(med["qwen_core"]), ms(med["raw"]),
        ms(med["gradio_client"]),
        f"qwen_core/raw {x(ratio)} · gradio_client/raw {x(med['gradio_client'] / med['raw'])}",
        "qwen_core ≤ 1.3x raw", ratio <= 1.3,
    ))
    section.rows.append(Row(
        "First token: overhead above raw (median − raw's)",
        f"{over['qwen_core'] * 1e3:+.1f} ms", "0 (floor)", f"{over['gradio_client'] * 1e3:+.1f} ms",
        f"qwen_core/gradio_client {share:.2f}",
        "≤ 0.2x gradio_client's overhead", share <= 0.2,
    ))
    spread = ", ".join(
        f"{name} {ms(min(v))}–{ms(max(v))}" for name, v in times.items()
    )
    section.notes.append(
        f"{rounds} alternating rounds, query `{QUERY}` on the Max Gradio 6 replica; "
        f"min–max: {spread}."
    )
    return section
