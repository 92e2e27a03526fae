"""The chat store (``qwen_chat.store``): list and search over 10,000 conversations of one
owner on SQLite and PostgreSQL 15, and the CPU that storing costs during a streaming turn.

Data: 10,000 conversations of the measured owner plus 2 × 2,500 of two other owners, each
of 6 messages (3 questions of ~40–200 characters, 3 answers of ~200–700 with Markdown,
lists and code blocks; 4% Chinese, 3% Russian, some accented Latin), generated from a fixed
seed, with updated times spread over a year. Planted terms give known answers: a rare one
(in 12 of the owner's chats and in 5 of another owner's, which must not show), a medium one
(~2% of chats), a common word. The worst cases are queries found nowhere (every chat of the
owner is read): ASCII, Cyrillic (SQLite's Unicode path) and 2 characters (too short for a
trigram index). Every query runs through ``ChatStore.list_chats`` (the page's call) and its
result is checked; medians of ``rounds`` runs after 2 warm-ups. PostgreSQL runs in a
throwaway cluster (``tests/pg.py``, fsync on) and is ANALYZEd after the bulk load, as
autovacuum would.

Streaming: a 5,000-delta answer (~20,000 characters, deltas of 1–8 characters) fed through
``Draft.apply`` and a ``Coalescer`` on a simulated clock advancing 20 ms per delta (50
tokens/s: a 100 s turn), once without storing and once calling ``update_message`` (the
page's call, building the message from ``draft.text``) every 2 s of simulated time: 50
stores. The turn's CPU is 5,000 × (qwen_core's measured client CPU per update, from the
``stream`` part of this run, else bench/results/latest.md + Draft and Coalescer's per
delta measured here); the goal is that storing adds < 5% to it. PostgreSQL's figure is the
app process's CPU only (the server's work is on its own process or machine)."""

from __future__ import annotations

import functools
import gc
import random
import re
import statistics
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from .common import ROOT, median
from .report import Row, Section, ms, us

OWNER = "browser:bench-owner-0123456789abcdefghij"
OTHERS = {"browser:bench-other-a-0123456789abcdef": 2_500,
          "user:bench-other-b@example.org": 2_500}
CHATS = 10_000
RARE, RARE_MINE, RARE_THEIRS = "quokka-telemetry", 12, 5
MEDIUM, MEDIUM_SHARE = "kubernetes", 0.02
COMMON = "function"
ABSENT = "xylophone"
ABSENT_CYRILLIC = "Жирафы"
SHORT_CANDIDATES = ("qz", "jx", "vq", "zx", "qj")
GOAL_S = 0.100
DELTAS = 5_000
PACE = 0.020  # simulated seconds between deltas
STORE_EVERY = 2.0
QWEN_CORE_PER_UPDATE = 108.4e-6  # last committed full run, if no other figure is found
MODEL = "qwen-2.5-max"

# --- the corpus -------------------------------------------------------------------------------

COMMON_WORDS = """the of and to in is that for it as with was on be by this are or from at an
but not have can which you your will more data function model code value use example file
error return list string time first new one like each we how if when then there their
what all would about so into could other some these than them only also its may should
use using used make need way because any well just over such through where most after
two different same while those both however between before each under very case point
result results number set line get see know work first value values type types call
object method class module package version server client request response user input
output memory cache thread process test tests build config parameter default option
options question answer simple example problem solution approach step steps change""".split()
TECH = """python javascript typescript rust golang sql postgres sqlite index query database
streamlit gradio docker linux bash shell regex json yaml http https api endpoint async
await generator iterator decorator closure lambda tuple dictionary array vector matrix
tensor gradient optimizer learning training inference latency throughput benchmark
profile compiler interpreter runtime garbage allocation pointer reference mutex lock
semaphore queue stack heap tree graph hash sort search binary recursion algorithm
complexity transformer attention embedding token tokenizer prompt context window
dataset pipeline dataframe pandas numpy matplotlib plot chart histogram median variance
deployment container cluster replica shard partition migration schema transaction
commit rollback isolation consistency availability network socket protocol header
payload certificate encryption signature authentication authorization session cookie
frontend backend component layout render widget button slider sidebar markdown""".split()
RUSSIAN = """привет как дела спасибо пожалуйста вопрос ответ данные функция модель код
значение пример файл ошибка список строка время новый один каждый мы если когда тогда
работа сервер клиент запрос пользователь память поток процесс тест сборка""".split()
CHINESE = ("的一是不了在人有我他这个们中来上大为和国地到以说时要就出会可也你对生能而子那得于"
           "着下自之年过发后作里用道行所然家种事成方多经么去法学如都同现当没动面起看定天分还"
           "进好小部其些主样理心她本前开但因只从想实日军者意无力它与长把机十民第公此已工使情"
           "明性知全三又关点正业外将两高间由问很最重并物手应战向头文体政美相见被利什二等产或"
           "新己制身果加西斯月话合回特代内信表化老给世位次度门任常先海通教儿原东声提立及比员"
           "解水名真论处走义各入几口认条平系气题活尔更别打女变四神总何电数安少报才结反受目太"
           "量再感建务做接必场件计管期市直德资命山金指克许统区保至队形社便空决治展马科司五基"
           "眼书非则听白却界达光放强即像难且权思王象")
FRENCH_GERMAN = "café déjà résumé naïve Übergröße Straße Grüße élève forêt garçon Ärger".split()


@functools.cache
def _zipf_weights(n: int) -> list[float]:
    return [1.0 / (i + 1) for i in range(n)]


def _zipf(words: list[str], rng: random.Random, k: int) -> list[str]:
    return rng.choices(words, _zipf_weights(len(words)), k=k)


class Corpus:
    """Realistic chat text from a seed (English with tech terms, some other scripts)."""

    def __init__(self, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        rng = random.Random(seed + 1)
        self.english = COMMON_WORDS + TECH
        rng.shuffle(self.english)
        # the planted terms never come from the vocabulary
        self.english = [w for w in self.english if w not in (MEDIUM, RARE)]

    def _sentence(self, words: list[str], lo: int, hi: int) -> str:
        picked = _zipf(words, self.rng, self.rng.randint(lo, hi))
        text = " ".join(picked)
        return text[:1].upper() + text[1:] + self.rng.choice((".", ".", ".", "?", "!", ":"))

    def text(self, chars: int, kind: str = "en", answer: bool = False) -> str:
        rng = self.rng
        if kind == "zh":
            return "".join(rng.choice(CHINESE) if rng.random() > 0.08 else rng.choice("，。？")
                           for _ in range(max(10, chars // 3)))
        words = RUSSIAN if kind == "ru" else self.english
        parts: list[str] = []
        size = 0
        while size < chars:
            roll = rng.random()
            if answer and roll < 0.08:
                body = "\n".join(f"    {rng.choice(TECH)}({rng.choice(COMMON_WORDS)}, "
                                 f"{rng.randint(0, 99)})" for _ in range(rng.randint(2, 5)))
                piece = f"```python\ndef {rng.choice(TECH)}():\n{body}\n```"
            elif answer and roll < 0.16:
                piece = "\n".join(f"- **{rng.choice(TECH)}**: {self._sentence(words, 4, 10)}"
                                  for _ in range(rng.randint(2, 4)))
            else:
                piece = " ".join(self._sentence(words, 6, 18) for _ in range(rng.randint(1, 3)))
                if kind == "en" and rng.random() < 0.03:
                    piece += " " + rng.choice(FRENCH_GERMAN)
            parts.append(piece)
            size += len(piece) + 2
        return "\n\n".join(parts)

    def chat(self) -> list[tuple[str, str]]:
        """Six (role, text) messages."""
        roll = self.rng.random()
        kind = "zh" if roll < 0.04 else "ru" if roll < 0.07 else "en"
        out = []
        for turn in range(3):
            out.append(("user", self.text(self.rng.randint(40, 200), kind)))
            out.append(("assistant", self.text(self.rng.randint(200, 700), kind,
                                               answer=True)))
            del turn
        return out


@dataclass
class Loaded:
    rare: list[str]  # the owner's chats with RARE, newest first
    chars: int  # characters of the owner's message text
    messages: int
    short_absent: str


def load(store, seed: int = 7) -> Loaded:  # noqa: ANN001 - a ChatStore
    """Bulk-insert the corpus straight into the store's tables (10k ``create_chat`` calls
    would only measure themselves)."""
    import sqlalchemy as sa

    from qwen_chat import store as st
    from qwen_chat.conversation import title_of

    corpus = Corpus(seed)
    rng = random.Random(seed + 2)
    now = datetime.now(UTC)
    owners = [(OWNER, CHATS)] + list(OTHERS.items())
    rare_mine = set(rng.sample(range(CHATS), RARE_MINE))
    rare_theirs = set(rng.sample(range(OTHERS[next(iter(OTHERS))]), RARE_THEIRS))
    minutes = rng.sample(range(365 * 24 * 60), sum(n for _, n in owners))
    chats_rows, msg_rows = [], []
    rare: list[tuple[datetime, str]] = []
    chars = count = 0
    k = 0
    for o, (owner, n) in enumerate(owners):
        for i in range(n):
            updated = now - timedelta(minutes=minutes[k], microseconds=k)
            k += 1
            chat_id = f"b{o}{i:07d}{rng.getrandbits(48):012x}"
            msgs = corpus.chat()
            planted = (o == 0 and i in rare_mine) or (o == 1 and i in rare_theirs)
            if planted:
                role, text = msgs[3]
                msgs[3] = (role, f"{text} See the {RARE} notes.")
                if o == 0:
                    rare.append((updated, chat_id))
            if rng.random() < MEDIUM_SHARE:
                role, text = msgs[1]
                msgs[1] = (role, f"{text} Deploy it on {MEDIUM} first.")
            chats_rows.append({
                "id": chat_id, "owner": owner, "title": title_of(msgs[0][1]),
                "model": MODEL, "system": None, "created_at": updated - timedelta(hours=1),
                "updated_at": updated, "deleted_at": None,
            })
            for j, (role, text) in enumerate(msgs):
                msg_rows.append({
                    "conversation_id": chat_id, "role": role, "content": text,
                    "model": MODEL if role == "assistant" else None, "reasoning": "",
                    "stopped": False, "error": None, "streaming": False,
                    "created_at": updated - timedelta(minutes=6 - j),
                    "updated_at": updated - timedelta(minutes=6 - j),
                })
                if o == 0:
                    chars += len(text)
                    count += 1
    all_text = "\n".join(r["content"].lower() for r in msg_rows) + "\n".join(
        r["title"].lower() for r in chats_rows)
    short = next(s for s in SHORT_CANDIDATES if s not in all_text)
    assert ABSENT not in all_text and ABSENT_CYRILLIC.lower() not in all_text
    trigram = store.backend == "postgresql" and store.trigram
    fts = store.backend == "sqlite" and store.trigram
    # building a search index once beats updating it 90,000 times (setup time only)
    if trigram:
        with store.engine.begin() as conn:
            conn.exec_driver_sql("DROP INDEX ix_messages_content_trgm")
    if fts:
        assert st.SQLITE_FTS[2].split()[:3] == ["CREATE", "TRIGGER", "messages_fts_insert"]
        assert st.SQLITE_FTS[-1].startswith("INSERT INTO messages_fts")
        with store.engine.begin() as conn:
            conn.exec_driver_sql("DROP TRIGGER messages_fts_insert")
    with store.engine.begin() as conn:
        for start in range(0, len(chats_rows), 2_000):
            conn.execute(sa.insert(st.conversations), chats_rows[start:start + 2_000])
        for start in range(0, len(msg_rows), 6_000):
            conn.execute(sa.insert(st.messages), msg_rows[start:start + 6_000])
    if trigram:
        with store.engine.begin() as conn:
            conn.exec_driver_sql("CREATE INDEX ix_messages_content_trgm ON messages "
                                 "USING gin (content gin_trgm_ops)")
    if fts:
        with store.engine.begin() as conn:
            conn.exec_driver_sql(st.SQLITE_FTS[-1])  # index the finished rows
            conn.exec_driver_sql(st.SQLITE_FTS[2])  # the insert trigger again
    if store.backend == "postgresql":
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    rare.sort(reverse=True)
    return Loaded([cid for _, cid in rare], chars, count, short)


# --- list and search --------------------------------------------------------------------------


def _timed(call, rounds: int) -> tuple[list[float], object]:  # noqa: ANN001
    for _ in range(2):
        result = call()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - t0)
    return times, result


def _queries(loaded: Loaded) -> list[tuple[str, str | None, int | None]]:
    """(label, query, expected hits or None for 'the limit')."""
    return [
        ("list: 200 newest of 10,000 chats", None, 200),
        (f"search {COMMON!r} (common: first 200 hits)", COMMON, 200),
        (f"search {MEDIUM!r} (~2% of chats)", MEDIUM, None),
        (f"search {RARE!r} (12 chats)", RARE, RARE_MINE),
        (f"search {ABSENT!r} (nowhere: every chat read)", ABSENT, 0),
        (f"search {ABSENT_CYRILLIC!r} (nowhere, Cyrillic)", ABSENT_CYRILLIC, 0),
        (f"search {loaded.short_absent!r} (nowhere, 2 characters)", loaded.short_absent, 0),
    ]


def _backend_times(store, loaded: Loaded, rounds: int) -> dict[str, list[float]]:  # noqa: ANN001
    out: dict[str, list[float]] = {}
    for label, query, want in _queries(loaded):
        gc.collect()
        times, result = _timed(lambda q=query: store.list_chats(OWNER, q), rounds)
        got = [s.id for s in result]  # type: ignore[attr-defined]
        if query == RARE and got != loaded.rare:
            raise AssertionError(f"store bench: {store.backend} found {got} for {RARE!r}")
        if want is not None and len(got) != want:
            raise AssertionError(f"store bench: {store.backend} {label}: {len(got)} hits, "
                                 f"expected {want}")
        if query == MEDIUM and not 100 <= len(got) <= 200:
            raise AssertionError(f"store bench: {MEDIUM!r} found {len(got)} chats")
        out[label] = times
    chat_id = loaded.rare[0]
    times, result = _timed(lambda: store.load_chat(OWNER, chat_id), rounds)
    if result is None or len(result.chat.messages) != 6:  # type: ignore[attr-defined]
        raise AssertionError("store bench: load_chat failed")
    out["load_chat (6 messages)"] = times
    return out


# --- storing during a streaming turn ----------------------------------------------------------


class SimClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def answer_deltas(seed: int = 11) -> list[str]:
    """A ~20,000-character answer cut into 5,000 token-like deltas of 1–8 characters."""
    rng = random.Random(seed)
    text = Corpus(seed).text(24_000, answer=True)
    deltas, i = [], 0
    while len(deltas) < DELTAS and i < len(text):
        step = rng.choice((1, 2, 3, 3, 4, 4, 4, 5, 5, 6, 7, 8))
        deltas.append(text[i:i + step])
        i += step
    return deltas


def turn(deltas: list[str], store=None, chat_id: str = "", message_id: int = 0,  # noqa: ANN001
         ) -> tuple[float, float, int, str]:
    """One streaming turn on a simulated clock: (CPU of the whole turn, CPU inside the
    stores, number of stores, the final text)."""
    from qwen_chat.conversation import Message, Role
    from qwen_chat.draft import Change, Coalescer, Draft
    from qwen_core import events as ev

    clock = SimClock()
    draft = Draft(MODEL)
    batcher = Coalescer(clock=clock)
    shown: list[str] = []
    stored_cpu = 0.0
    stores = 0
    last_store = 0.0
    cpu0 = time.process_time()
    for delta in deltas:
        clock.t += PACE
        if draft.apply(ev.TextDelta(delta)) & Change.TEXT:
            batcher.add(draft.delta)
        if batcher.due():
            shown.append(batcher.take())
        if store is not None and clock.t - last_store >= STORE_EVERY:
            s0 = time.process_time()
            store.update_message(OWNER, chat_id, message_id, Message(
                Role.ASSISTANT, draft.text, model=MODEL, reasoning=draft.reasoning,
                streaming=True))
            stored_cpu += time.process_time() - s0
            stores += 1
            last_store = clock.t
    if batcher.pending:
        shown.append(batcher.take())
    total = time.process_time() - cpu0
    text = "".join(shown)
    if text != draft.text:
        raise AssertionError("store bench: the coalesced text differs from the draft")
    return total, stored_cpu, stores, text


def _qwen_core_per_update(sections: Iterable[Section] | None) -> tuple[float, str]:
    """qwen_core's client CPU per update (5,000 updates) and where the figure comes from."""
    pattern = re.compile(r"([\d.]+) µs")
    for section in sections or ():
        for row in section.rows:
            if row.metric == "CPU per update, 5,000 updates":
                found = pattern.match(row.qwen_core)
                if found:
                    return float(found.group(1)) * 1e-6, "the stream part of this run"
    latest = ROOT / "bench" / "results" / "latest.md"
    try:
        for line in latest.read_text(encoding="utf-8").splitlines():
            if line.startswith("| CPU per update, 5,000 updates |"):
                found = pattern.match(line.split("|")[2].strip())
                if found:
                    return float(found.group(1)) * 1e-6, "bench/results/latest.md"
    except OSError:
        pass
    return QWEN_CORE_PER_UPDATE, "the last committed full run (2026-11-22)"


def _streaming(store, deltas: list[str], rounds: int) -> dict[str, float]:  # noqa: ANN001
    from qwen_chat.conversation import Chat, Message, Role

    chat = store.create_chat(OWNER, Chat(messages=(Message(Role.USER, "Explain it all."),),
                                         model=MODEL))
    message_id = store.add_message(OWNER, chat.id, Message(Role.ASSISTANT, "", model=MODEL,
                                                           streaming=True))
    plain, with_store, inside, per_store = [], [], [], []
    stores = 0
    for _ in range(rounds):  # alternate so drifts hit both alike
        gc.collect()
        plain.append(turn(deltas)[0])
        gc.collect()
        total, stored, stores, text = turn(deltas, store, chat.id, message_id)
        with_store.append(total)
        inside.append(stored)
        per_store.append(stored / max(1, stores))
    loaded = store.load_chat(OWNER, chat.id)
    if not loaded.chat.messages[-1].content or not text.startswith(
            loaded.chat.messages[-1].content):
        raise AssertionError("store bench: the stored streaming text is wrong")
    # the final store (streaming -> finished) puts the whole answer in the search index
    finish_wall, finish_cpu = [], []
    for _ in range(rounds):
        store.update_message(OWNER, chat.id, message_id, Message(
            Role.ASSISTANT, text, model=MODEL, streaming=True))
        w0, c0 = time.perf_counter(), time.process_time()
        store.update_message(OWNER, chat.id, message_id, Message(
            Role.ASSISTANT, text, model=MODEL))
        finish_cpu.append(time.process_time() - c0)
        finish_wall.append(time.perf_counter() - w0)
    if [s.id for s in store.list_chats(OWNER, text[-40:].strip())] != [chat.id]:
        raise AssertionError("store bench: the finished answer is not found by search")
    return {
        "plain": median(plain), "with": median(with_store), "inside": median(inside),
        "per_store": median(per_store), "stores": float(stores),
        "finish_wall": median(finish_wall), "finish_cpu": median(finish_cpu),
        "chars": float(len(text)),
    }


# --- the part ---------------------------------------------------------------------------------


def measure(rounds: int = 20, sections: Iterable[Section] | None = None) -> Section:
    from qwen_chat.store import ChatStore
    from tests.pg import PgCluster, missing_reason

    section = Section("store")
    times: dict[str, dict[str, list[float]]] = {}
    stream: dict[str, dict[str, float]] = {}
    sizes: dict[str, str] = {}
    loaded: Loaded | None = None
    deltas = answer_deltas()
    stream_rounds = max(3, rounds // 4)

    with tempfile.TemporaryDirectory(prefix="qwen-bench-store-") as tmp:
        path = Path(tmp) / "chats.db"
        store = ChatStore(f"sqlite:///{path}")
        try:
            t0 = time.perf_counter()
            loaded = load(store)
            section.notes.append(f"SQLite bulk load {time.perf_counter() - t0:.1f} s")
            times["SQLite"] = _backend_times(store, loaded, rounds)
            stream["SQLite"] = _streaming(store, deltas, stream_rounds)
        finally:
            store.close()
        sizes["SQLite"] = f"{path.stat().st_size / 1e6:.0f} MB file"

    reason = missing_reason()
    if reason is None:
        with PgCluster("bench", fast=False) as pg:
            store = ChatStore(pg.url)
            try:
                t0 = time.perf_counter()
                loaded_pg = load(store)
                section.notes.append(f"PostgreSQL bulk load + VACUUM ANALYZE "
                                     f"{time.perf_counter() - t0:.1f} s; pg_trgm index: "
                                     f"{'yes' if store.trigram else 'no'}")
                times["PostgreSQL"] = _backend_times(store, loaded_pg, rounds)
                stream["PostgreSQL"] = _streaming(store, deltas, stream_rounds)
                with store.engine.connect() as conn:
                    size = conn.exec_driver_sql(
                        "SELECT pg_database_size(current_database())").scalar_one()
                sizes["PostgreSQL"] = f"{size / 1e6:.0f} MB database"
            finally:
                store.close()
    else:
        section.notes.append(f"PostgreSQL not measured: {reason}")

    assert loaded is not None
    for label, _query, _want in _queries(loaded):
        cells = []
        met = True
        spread = []
        for backend, results in times.items():
            values = results[label]
            med = statistics.median(values)
            met = met and med < GOAL_S
            cells.append(f"{backend} {ms(med)}")
            spread.append(f"{backend} {ms(min(values))}–{ms(max(values))}")
        section.rows.append(Row(
            f"Store {label} (median of {rounds})", " · ".join(cells), ratio=" · ".join(spread),
            goal="< 100 ms each backend", met=met and len(times) == 2,
        ))
    label = "load_chat (6 messages)"
    section.rows.append(Row(
        f"Store {label} (median of {rounds})",
        " · ".join(f"{b} {ms(statistics.median(r[label]))}" for b, r in times.items()),
    ))

    q_cpu, source = _qwen_core_per_update(sections)
    cells, extra, met = [], [], True
    plain_per_delta = statistics.median(s["plain"] for s in stream.values()) / DELTAS
    turn_cpu = DELTAS * (q_cpu + plain_per_delta)
    for backend, s in stream.items():
        share = s["inside"] / turn_cpu
        met = met and share < 0.05
        cells.append(f"{backend} +{share * 100:.1f}%")
        extra.append(f"{backend} {us(s['per_store'])} per store, with−without "
                     f"{ms(s['with'] - s['plain'])}")
    stores = int(next(iter(stream.values()))["stores"])
    section.rows.append(Row(
        f"Store while streaming: CPU of update_message every 2 s ({DELTAS:,} deltas "
        f"{PACE * 1e3:.0f} ms apart, {stores} stores) vs the turn's CPU",
        " · ".join(cells), ratio="; ".join(extra), goal="< 5% of the turn's CPU",
        met=met and len(stream) == 2,
    ))
    chars = int(next(iter(stream.values()))["chars"])
    section.rows.append(Row(
        f"Store the finished answer ({chars:,} characters; indexed for search): wall / "
        "app CPU (median)",
        " · ".join(f"{b} {ms(s['finish_wall'])} / {ms(s['finish_cpu'])}"
                   for b, s in stream.items()),
    ))
    section.rows.append(Row(
        "Turn CPU per delta: Draft + Coalescer (measured) + qwen_core per update",
        f"{us(plain_per_delta)} + {us(q_cpu)}",
    ))
    section.notes.append(
        f"data: owner {CHATS:,} chats / {loaded.messages:,} messages / "
        f"{loaded.chars / 1e6:.1f} M characters, plus {sum(OTHERS.values()):,} chats of two "
        f"other owners; sizes {', '.join(f'{b} {v}' for b, v in sizes.items())}")
    section.notes.append(
        f"streaming: turn CPU = {DELTAS:,} × (qwen_core {us(q_cpu)} per update from "
        f"{source} + Draft/Coalescer {us(plain_per_delta)} measured here) = {ms(turn_cpu)}; "
        "the share is the CPU spent inside the stores (building the message included). "
        "It grows with the turn's length in time: at 10 deltas/s (a 500 s turn) there are "
        "5x as many stores. PostgreSQL: the app process's CPU only.")
    return section


def main() -> int:  # python -m bench.store [rounds]
    import sys

    from . import common, report

    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    section = measure(rounds)
    print(report.render(common.machine(), [section], f"store only, {rounds} rounds"))
    return 0 if all(r.met is not False for r in section.rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
