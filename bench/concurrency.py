"""Goal 5: 20 simultaneous streams from one process (threads), no cross-talk.

The replica runs with ``concurrency=20``. Thread i asks ``script:slow:{N0+i}:{MS}``
(distinct lengths, tokens paced like a real model's), all released together by a barrier;
every answer must be exactly its own script's. Total time (barrier to last answer) is
compared with one stream of the longest script alone. gradio_client runs its natural
way: one ``Client`` (built before the clock) and 20 ``submit`` calls from the threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .common import Replicas, expected, median, run_client, run_gradio_client
from .report import Row, Section, sec, x

STREAMS = 20
N0 = 40
MS = 50


def _query(i: int) -> str:
    return f"script:slow:{N0 + i}:{MS}"


def _together(work: Callable[[int], str]) -> tuple[float, int]:
    """Run ``work(i)`` in STREAMS threads at once; (seconds, exact answers)."""
    barrier = threading.Barrier(STREAMS + 1)
    answers: dict[int, str] = {}
    errors: list[BaseException] = []

    def thread(i: int) -> None:
        barrier.wait()
        try:
            answers[i] = work(i)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=thread, args=(i,)) for i in range(STREAMS)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    total = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"concurrency: {len(errors)} streams failed: {errors[0]!r}")
    exact = sum(answers.get(i) == expected(_query(i)) for i in range(STREAMS))
    return total, exact


def measure(replicas: Replicas, rounds: int) -> Section:
    url = replicas.url(STREAMS)
    section = Section("concurrency")
    longest = _query(STREAMS - 1)
    single = {name: median(run_client(name, url, longest).wall for _ in range(rounds))
              for name in ("qwen_core", "raw")}
    total: dict[str, float] = {}
    exact: dict[str, int] = {}

    def qc(i: int) -> str:
        return run_client("qwen_core", url, _query(i)).text

    def raw(i: int) -> str:
        return run_client("raw", url, _query(i)).text

    from gradio_client import Client

    from .common import SYSTEM, gradio_client_answer

    shared = Client(url + "/", verbose=False, analytics_enabled=False)

    def gc(i: int) -> str:
        out = shared.submit(_query(i), [], SYSTEM, fn_index=0).result(timeout=120)
        return gradio_client_answer(out)

    single["gradio_client"] = median(
        run_gradio_client(url, longest).wall for _ in range(rounds)
    )
    runs: dict[str, list[tuple[float, int]]] = {"qwen_core": [], "raw": [], "gradio_client": []}
    try:
        for _ in range(rounds):
            for name, work in (("qwen_core", qc), ("raw", raw), ("gradio_client", gc)):
                runs[name].append(_together(work))
    finally:
        shared.close()
    for name, rs in runs.items():
        total[name] = median(t for t, _ in rs)
        exact[name] = min(e for _, e in rs)
    ratio = {name: total[name] / single[name] for name in total}
    section.rows.append(Row(
        f"{STREAMS} concurrent streams: total time (median)",
        sec(total["qwen_core"]), sec(total["raw"]), sec(total["gradio_client"]),
        " · ".join(f"{n} {x(ratio[n])} of one" for n in ("qwen_core", "raw", "gradio_client")),
        "qwen_core ≤ 1.5x one stream", ratio["qwen_core"] <= 1.5,
    ))
    section.rows.append(Row(
        "One stream alone (longest script, median)",
        sec(single["qwen_core"]), sec(single["raw"]), sec(single["gradio_client"]),
    ))
    section.rows.append(Row(
        f"{STREAMS} concurrent streams: exact answers (no cross-talk)",
        f"{exact['qwen_core']}/{STREAMS}", f"{exact['raw']}/{STREAMS}",
        f"{exact['gradio_client']}/{STREAMS}", "—", f"qwen_core {STREAMS}/{STREAMS}",
        exact["qwen_core"] == STREAMS,
    ))
    section.notes.append(
        f"threads ask `script:slow:{N0}..{N0 + STREAMS - 1}:{MS}` ({N0}–{N0 + STREAMS - 1} "
        f"tokens, {MS} ms apart) on a replica with concurrency={STREAMS}; {rounds} rounds; "
        "gradio_client: one shared Client, 20 submits (its .result())."
    )
    return section
