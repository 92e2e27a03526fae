"""Conversations in SQL, per owner (SQLAlchemy 2 Core; SQLite by default, PostgreSQL).

One :class:`ChatStore` is shared by every Streamlit session of the process: the engine's
connection pool is thread-safe and the store keeps no other mutable state (but a clock
guard). Every method filters by owner, and a conversation of another owner behaves
exactly like a missing one. Every database failure becomes a :class:`StoreError` with a
readable message that never carries a password (nor the message text of the statement).

Layout (schema version 3)::

    schema_version(version)                               one row
    conversations(id PK, owner, title, model, system, created_at, updated_at, deleted_at)
        index (owner, deleted_at, updated_at);  PostgreSQL also: (owner, updated_at)
        WHERE deleted_at IS NULL  (PostgreSQL cannot read a newest-first order past the
        IS NULL column of the first index; SQLite can)
    messages(id PK autoincrement, conversation_id FK ON DELETE CASCADE, role, content,
             model, reasoning, stopped, error, streaming, created_at, updated_at,
             turn, chosen)
        index (conversation_id, id)
    versions (version 3): ``turn`` numbers a conversation's questions (0, 1, ...); every
        row of a turn is a version of it: an answer belongs to the question before it in
        the same turn, an edited question starts new versions. ``chosen`` marks the
        question and answer shown (and sent as history); nothing is deleted to make a
        version. Rows of older schemas get their turn from their order.
    search indexes: SQLite (version 2) messages_fts, a contentless FTS5 trigram index of
        finished messages kept by triggers, and (conversation_id) WHERE streaming = 1;
        PostgreSQL with pg_trgm (made at start when the role may): GIN gin_trgm_ops on
        messages.content and conversations.title

Messages are ordered by their id (insertion order; SQLite AUTOINCREMENT so an id is never
reused after a delete). Times are UTC. Text is stored as given except for two things that
cannot be stored as they are: lone surrogates become U+FFFD, and NUL (which PostgreSQL text
cannot hold) is escaped with the noncharacter U+FFFF (``\\0`` -> U+FFFF "0", U+FFFF ->
U+FFFF "1"), on both backends, so every string round-trips exactly.

Search (``list_chats(owner, query)``): a case-insensitive substring of a title or of any
message's text; every character of the query is literal (``%``, ``_``, quotes, regex
syntax). A query of 3+ characters first asks the trigram index for the matching messages
(capped at :data:`PROBE`); when they are fewer, the owner's live chats among them are
read by key. A query of 1-2 characters, one with more hits than the cap, or a database
without the index walks the owner's chats newest first, checking each one's messages,
and stops at ``limit`` hits: fast when the query is common, and bounded by the owner's own
text when it is found nowhere.
- SQLite: the index is FTS5 (Unicode case folding); rows still streaming are not indexed
  (rewriting the index every 2 s would cost more than the scan of those few rows) and are
  checked directly. The walk uses ``LIKE`` (ASCII case folding), or a Python function over
  ``str.lower()`` when the query has other cased letters (``Привет``, ``École``).
- PostgreSQL: a case-insensitive regular expression of the literal text (``~*``, 2-3x
  faster than ``ILIKE`` and served by pg_trgm alike), Unicode case folding per the
  database's locale.

Streaming answers: a row with ``streaming`` true is being written (the writer updates it
at least every 2 s); one not updated for :data:`STALE_AFTER` is read back as
``streaming=False, stopped=True`` (its writer died), with its text kept."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import string
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import URL, Connection, Engine, make_url

from .conversation import Chat, Message, Role, Version, title_of, versions_of
from .display import clean_text

__all__ = ["StoreError", "ChatSummary", "StoredChat", "ChatStore", "SCHEMA_VERSION",
           "STALE_AFTER", "TITLE_MAX", "redact_url"]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 4
STALE_AFTER = timedelta(seconds=30)  # a streaming row older than this: its writer died
TITLE_MAX = 200
BUSY_TIMEOUT = 5.0  # seconds SQLite waits for a lock before giving up
CONNECT_TIMEOUT = 3  # seconds to reach PostgreSQL
POOL_TIMEOUT = 10.0  # seconds to wait for a free pooled connection
PROBE = 1000  # PostgreSQL search: trigram hits beyond which the newest-first walk is used
MMAP_BYTES = 256 * 1024 * 1024  # SQLite: memory-map up to this much of the file
MIGRATION_LOCK = 0x5157454E  # pg_advisory_xact_lock key ("QWEN")

# --- the schema -----------------------------------------------------------------------------

metadata = sa.MetaData()
Time = sa.DateTime(timezone=True)
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite: INTEGER PRIMARY KEY

schema_version = sa.Table(
    "schema_version", metadata,
    sa.Column("version", sa.Integer, nullable=False),
)

conversations = sa.Table(
    "conversations", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("owner", sa.String(255), nullable=False),
    sa.Column("title", sa.String(TITLE_MAX), nullable=False),
    sa.Column("model", sa.String(100), nullable=False),
    sa.Column("system", sa.Text, nullable=True),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
    sa.Column("deleted_at", Time, nullable=True),
    sa.Index("ix_conversations_owner", "owner", "deleted_at", "updated_at"),
)
sa.Index(
    "ix_conversations_owner_live", conversations.c.owner, conversations.c.updated_at,
    postgresql_where=conversations.c.deleted_at.is_(None),
).ddl_if(dialect="postgresql")

messages = sa.Table(
    "messages", metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("conversation_id", sa.String(32),
              sa.ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("model", sa.String(100), nullable=True),
    sa.Column("reasoning", sa.Text, nullable=False),
    sa.Column("stopped", sa.Boolean, nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("streaming", sa.Boolean, nullable=False),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
    sa.Column("turn", sa.Integer, nullable=True),
    sa.Column("chosen", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("error_kind", sa.String(40), nullable=True),
    sa.Index("ix_messages_conversation", "conversation_id", "id"),
    sqlite_autoincrement=True,
)

C, M = conversations.c, messages.c
SUMMARY = (C.id, C.title, C.model, C.created_at, C.updated_at)

# The frequent statements, built once: building a Core statement per call costs more CPU
# than running it (SQLAlchemy would also recompute its cache key every time).
_B = sa.bindparam
_LIVE = sa.and_(C.id == _B("b_id"), C.owner == _B("b_owner"), C.deleted_at.is_(None))
TOUCH = sa.update(conversations).where(_LIVE).values(updated_at=_B("b_now"))
INSERT_MESSAGE = sa.insert(messages).returning(M.id)
UPDATE_MESSAGE = (
    sa.update(messages)
    .where(M.id == _B("b_mid"), M.conversation_id == _B("b_id"))
    .values(content=_B("b_content"), reasoning=_B("b_reasoning"), stopped=_B("b_stopped"),
            error=_B("b_error"), error_kind=_B("b_error_kind"), streaming=_B("b_streaming"),
            updated_at=_B("b_now"))
)
_TOUCHED = TOUCH.returning(C.id).cte("touched")
UPDATE_MESSAGE_PG = (  # PostgreSQL: both updates in one statement (one round trip)
    sa.update(messages)
    .where(M.id == _B("b_mid"),
           M.conversation_id == sa.select(_TOUCHED.c.id).scalar_subquery())
    .values(content=_B("b_content"), reasoning=_B("b_reasoning"), stopped=_B("b_stopped"),
            error=_B("b_error"), error_kind=_B("b_error_kind"), streaming=_B("b_streaming"),
            updated_at=_B("b_now"))
)
FTS_PROBE = sa.text(  # SQLite: message ids whose finished text holds the phrase
    "SELECT rowid FROM messages_fts WHERE messages_fts MATCH :b_phrase LIMIT :b_limit")
LOAD_HEAD = sa.select(C.title, C.model, C.system).where(_LIVE)
STAMP = sa.select(C.updated_at).where(_LIVE)
LOAD_MESSAGES = (
    sa.select(M.id, M.role, M.content, M.model, M.reasoning, M.stopped, M.error,
              M.streaming, M.created_at, M.updated_at, M.turn, M.chosen, M.error_kind)
    .where(M.conversation_id == _B("b_id")).order_by(M.id)
)
LIST = (
    sa.select(*SUMMARY).where(C.owner == _B("b_owner"), C.deleted_at.is_(None))
    .order_by(C.updated_at.desc()).limit(_B("b_limit"))
)


def _step_1(conn: Connection) -> None:
    """Version 1: the tables above. (Later versions add steps with explicit DDL, so this
    one keeps meaning version 1 when the tables change.)"""
    metadata.create_all(conn, tables=[conversations, messages], checkfirst=True)


SQLITE_FTS = (
    # contentless: only the trigram index of finished rows' text; the text stays in messages
    "CREATE VIRTUAL TABLE messages_fts USING fts5(content, content='', tokenize='trigram')",
    "CREATE INDEX ix_messages_streaming ON messages (conversation_id) WHERE streaming = 1",
    """CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages WHEN new.streaming = 0
       BEGIN INSERT INTO messages_fts (rowid, content) VALUES (new.id, new.content); END""",
    """CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages WHEN old.streaming = 0
       BEGIN INSERT INTO messages_fts (messages_fts, rowid, content)
             VALUES ('delete', old.id, old.content); END""",
    """CREATE TRIGGER messages_fts_update AFTER UPDATE OF content, streaming ON messages
       BEGIN
         INSERT INTO messages_fts (messages_fts, rowid, content)
           SELECT 'delete', old.id, old.content WHERE old.streaming = 0;
         INSERT INTO messages_fts (rowid, content)
           SELECT new.id, new.content WHERE new.streaming = 0;
       END""",
    "INSERT INTO messages_fts (rowid, content) SELECT id, content FROM messages "
    "WHERE streaming = 0",
)


def _step_2(conn: Connection) -> None:
    """Version 2, SQLite only: a trigram full-text index (FTS5) of the text of finished
    messages, kept by triggers. A row being streamed (rewritten every 2 s) is left out
    until it is finished, so streaming costs no index work; search reads those few rows
    directly. Without FTS5 (a Python whose SQLite lacks it) search scans instead."""
    if conn.dialect.name != "sqlite":
        return
    try:
        with conn.begin_nested():
            conn.exec_driver_sql("CREATE VIRTUAL TABLE temp.qwen_fts_probe USING "
                                 "fts5(x, tokenize='trigram')")
            conn.exec_driver_sql("DROP TABLE temp.qwen_fts_probe")
    except exc.OperationalError:
        log.warning("chat store: this SQLite has no FTS5 trigram tokenizer; search scans")
        return
    for statement in SQLITE_FTS:
        conn.exec_driver_sql(statement)


def _step_3(conn: Connection) -> None:
    """Version 3: answer versions. ``turn`` and ``chosen`` columns (made by version 1's
    ``create_all`` on a new database), and every existing row's turn from its order."""
    have = {c["name"] for c in sa.inspect(conn).get_columns("messages")}
    if "turn" not in have:
        conn.exec_driver_sql("ALTER TABLE messages ADD COLUMN turn INTEGER")
    if "chosen" not in have:
        conn.exec_driver_sql("ALTER TABLE messages ADD COLUMN chosen BOOLEAN NOT NULL "
                             "DEFAULT " + ("1" if conn.dialect.name == "sqlite" else "TRUE"))
    rows = conn.execute(sa.select(M.id, M.conversation_id, M.role)
                        .order_by(M.conversation_id, M.id)).all()
    turns: list[dict[str, int]] = []
    chat, turn = None, -1
    for row in rows:
        if row.conversation_id != chat:
            chat, turn = row.conversation_id, -1
        if row.role == Role.USER.value or turn < 0:
            turn += 1
        turns.append({"b_mid": row.id, "b_turn": turn})
    if turns:
        conn.execute(sa.update(messages).where(M.id == _B("b_mid"))
                     .values(turn=_B("b_turn")), turns)


def _step_4(conn: Connection) -> None:
    """Version 4: ``error_kind``, the SpaceError class a failed answer ended with (the
    page offers other models after SpaceUnavailable, QueueFull and RateLimited)."""
    have = {c["name"] for c in sa.inspect(conn).get_columns("messages")}
    if "error_kind" not in have:
        conn.exec_driver_sql("ALTER TABLE messages ADD COLUMN error_kind VARCHAR(40)")


STEPS: dict[int, Callable[[Connection], None]] = {
    1: _step_1, 2: _step_2, 3: _step_3, 4: _step_4}

def _kind(message: Message) -> str | None:
    """The error's class name, kept only when it is an identifier that fits the column."""
    kind = message.error_kind if message.error else None
    return kind if kind and kind.isidentifier() and len(kind) <= 40 else None


@dataclass(frozen=True, slots=True)
class _Row:
    id: int
    message: Message
    turn: int | None
    chosen: bool


def _flatten(chat: Chat) -> list[tuple[Message, int, bool]]:
    """Rows for ``chat`` with its versions: per turn, each version's question (once for a
    run of versions that share it) and answer, in version order; the shown ones chosen."""
    out: list[tuple[Message, int, bool]] = []
    turn = -1
    for index, message in enumerate(chat.messages):
        if message.role is not Role.USER:
            if turn < 0:  # an answer before any question (an odd import): turn 0
                out.append((message, 0, True))
            continue
        turn += 1
        versions, at = versions_of(chat, index)
        runs: list[list[int]] = []  # positions of versions sharing one question
        for position, version in enumerate(versions):
            if runs and _same_question(versions[runs[-1][0]].question, version.question):
                runs[-1].append(position)
            else:
                runs.append([position])
        for run in runs:
            out.append((versions[run[0]].question, turn, at in run))
            for position in run:
                answer = versions[position].answer
                if answer is not None:
                    out.append((answer, turn, position == at))
    return out


def _same_question(a: Message, b: Message) -> bool:
    if a.id is not None or b.id is not None:
        return a.id == b.id
    return a.content == b.content


def _assemble(rows: list[_Row]) -> tuple[Message, ...]:
    """The shown path of a conversation from its rows (in id order), each question
    carrying its turn's other versions. Rows without a turn (older schemas) take it from
    their order."""
    turns: dict[int, list[_Row]] = {}
    counter = -1
    for row in rows:
        turn = row.turn
        if turn is None:
            if row.message.role is Role.USER or counter < 0:
                counter += 1
            turn = counter
        else:
            counter = turn
        turns.setdefault(turn, []).append(replace(row, turn=turn))
    path: list[Message] = []
    for turn in sorted(turns):
        versions: list[Version] = []
        chosen_at: int | None = None
        question: _Row | None = None
        answered = False
        loose: list[Message] = []  # answers with no question before them in the turn
        for row in turns[turn]:
            if row.message.role is Role.USER:
                if question is not None and not answered:
                    versions.append(Version(question.message, None))
                    if question.chosen and chosen_at is None:
                        chosen_at = len(versions) - 1
                question, answered = row, False
                continue
            if question is None:
                loose.append(row.message)
                continue
            answered = True
            versions.append(Version(question.message, row.message))
            if row.chosen:
                chosen_at = len(versions) - 1  # the last chosen answer wins
        if question is not None and not answered:
            versions.append(Version(question.message, None))
            if question.chosen:
                chosen_at = len(versions) - 1
        path.extend(loose)
        if not versions:
            continue
        at = len(versions) - 1 if chosen_at is None else chosen_at
        shown = versions[at]
        others = tuple(v for i, v in enumerate(versions) if i != at)
        path.append(replace(shown.question, others=others, at=at))
        if shown.answer is not None:
            path.append(shown.answer)
    return tuple(path)


def _driver_sql(stmt: Any, dialect: Any) -> tuple[str, tuple[str, ...] | None]:
    """A Core statement compiled once for ``dialect``: its SQL and, for positional
    drivers (SQLite), the order of its parameters (None: named, as psycopg takes them)."""
    compiled = stmt.compile(dialect=dialect)
    return str(compiled), (tuple(compiled.positiontup) if compiled.positional else None)


# --- values ---------------------------------------------------------------------------------


class StoreError(Exception):
    """The chat database failed or refused (readable message, no credentials)."""


@dataclass(frozen=True)
class ChatSummary:
    id: str
    title: str
    model: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class StoredChat:
    chat: Chat  # id and title set; each message carries its row id
    system: str | None


# --- text that every backend can hold ---------------------------------------------------------

_ESC = "\uffff"
_UNESCAPE = re.compile("\uffff([01])")


def _enc(text: str) -> str:
    """``text`` as stored: lone surrogates -> U+FFFD, NUL and U+FFFF escaped."""
    if not text.isascii():
        text = clean_text(text)
        if _ESC in text:
            text = text.replace(_ESC, _ESC + "1")
    if "\x00" in text:
        text = text.replace("\x00", _ESC + "0")
    return text


def _dec(text: str) -> str:
    if _ESC not in text:
        return text
    return _UNESCAPE.sub(lambda m: "\x00" if m.group(1) == "0" else _ESC, text)


def _enc_opt(text: str | None) -> str | None:
    return None if text is None else _enc(text)


def _dec_opt(text: str | None) -> str | None:
    return None if text is None else _dec(text)


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


_REGEX_SPECIAL = re.compile("([" + re.escape(string.punctuation) + "])")


def _regex_escape(text: str) -> str:
    """``text`` as a PostgreSQL regular expression matching it literally: every ASCII
    punctuation character gets a backslash (in PostgreSQL's AREs a backslash before a
    non-alphanumeric character means that character; other characters are literal)."""
    return _REGEX_SPECIAL.sub(r"\\\1", text)


def _needs_fold(query: str) -> bool:
    """The query has a cased letter beyond ASCII (SQLite's LIKE folds ASCII only)."""
    return not query.isascii() and any(
        ord(ch) > 127 and ch.lower() != ch.upper() for ch in query
    )


def _contains(haystack: str | None, needle: str) -> bool:
    """SQLite function ``qwen_contains(text, lowered query)``."""
    return haystack is not None and needle in haystack.lower()


def _title(title: str) -> str:
    return " ".join(title.split())[:TITLE_MAX] or "New chat"


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# --- errors ---------------------------------------------------------------------------------

_URL_CREDENTIALS = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*):[^@\s]*@")
_PASSWORD_FIELD = re.compile(r"(password\s*=\s*)('[^']*'|\S+)", re.IGNORECASE)


def redact_url(url: str | URL) -> str:
    """The URL with its password (if any) replaced by ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a malformed URL: redact by pattern
        return _URL_CREDENTIALS.sub(r"\1:***@", str(url))


def _first_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.strip().splitlines()[:1]).strip()
    return line[:limit] + ("…" if len(line) > limit else "")


class _Describer:
    """Turns driver errors into readable, credential-free StoreError messages."""

    def __init__(self, url: URL, where: str, secrets_: Iterable[str],
                 busy_timeout: float) -> None:
        self.url = url
        self.where = where
        self.secrets = sorted({s for s in secrets_ if s}, key=len, reverse=True)
        self.busy_timeout = busy_timeout

    def clean(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        text = _URL_CREDENTIALS.sub(r"\1:***@", text)
        return _PASSWORD_FIELD.sub(r"\1***", text)

    def __call__(self, error: BaseException, action: str) -> StoreError:
        orig = getattr(error, "orig", None) or error
        name = type(orig).__name__
        text = str(orig)
        low = text.lower()
        sqlite = self.url.get_backend_name() == "sqlite"
        if sqlite and ("locked" in low or "busy" in low):
            why = ("the database is locked by another connection (waited "
                   f"{self.busy_timeout:g} s); try again")
        elif sqlite and ("not a database" in low or "malformed" in low or "corrupt" in low):
            why = ("the database file is damaged or is not an SQLite database; move it "
                   "aside to start with an empty history")
        elif sqlite and "unable to open" in low:
            why = "the database file cannot be opened (missing folder or no permission)"
        elif isinstance(error, exc.TimeoutError):
            why = "every database connection is busy; try again"
        elif isinstance(error, OSError):
            why = f"{name}: {_first_line(text)}"
        elif isinstance(error, exc.OperationalError | exc.InterfaceError) and not sqlite:
            why = f"the database server cannot be reached or dropped the connection: " \
                  f"{_first_line(text)}"
        else:
            why = f"{name}: {_first_line(text)}"
        return StoreError(self.clean(f"Chat history: could not {action} ({self.where}): {why}"))


# --- the store ------------------------------------------------------------------------------


class ChatStore:
    """Conversations per owner in the database at ``url`` (``sqlite:///path`` or
    ``postgresql://…``; ``postgresql://`` and ``postgres://`` use psycopg 3).

    ``busy_timeout``: seconds SQLite waits for a lock; ``connect_timeout``: seconds to reach
    PostgreSQL; ``clock``: the current UTC time (tests)."""

    def __init__(
        self,
        url: str,
        *,
        busy_timeout: float = BUSY_TIMEOUT,
        connect_timeout: float = CONNECT_TIMEOUT,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._clock = clock or (lambda: datetime.now(UTC))
        self._last = datetime.min.replace(tzinfo=UTC)
        self._clock_lock = threading.Lock()
        self._serial: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
        self.trigram = False
        self.busy_timeout = busy_timeout
        try:
            parsed = make_url(url)
        except Exception:  # noqa: BLE001 - never echo the URL (it may hold a password)
            raise StoreError("Chat history: the database URL is not valid (expected "
                             "sqlite:///path or postgresql://user@host/db)") from None
        password = str(parsed.password or "")
        hidden = [password, urllib.parse.quote(password, safe=""),
                  urllib.parse.quote_plus(password)]
        self._describe = _Describer(parsed, redact_url(parsed), hidden, busy_timeout)
        backend = parsed.get_backend_name()
        if backend in ("postgres", "postgresql"):
            if parsed.drivername in ("postgres", "postgresql"):
                parsed = parsed.set(drivername="postgresql+psycopg")
            self.backend = "postgresql"
        elif backend == "sqlite":
            self.backend = "sqlite"
        else:
            raise StoreError(f"Chat history: unsupported database {backend!r} "
                             "(use sqlite:///path or postgresql://…)")
        self.where = redact_url(parsed)
        self._describe = _Describer(parsed, self.where, hidden, busy_timeout)
        with self._errors("open the database"):
            self.engine = (self._sqlite_engine(parsed) if self.backend == "sqlite"
                           else self._pg_engine(parsed, connect_timeout))
        dialect = self.engine.dialect
        # what SQLAlchemy would store for a time (SQLite: its own text format)
        self._bind_time = (Time.dialect_impl(dialect).bind_processor(dialect)
                           or (lambda value: value))
        self._touch_sql = _driver_sql(TOUCH, dialect)
        self._update_sql = _driver_sql(
            UPDATE_MESSAGE_PG if self.backend == "postgresql" else UPDATE_MESSAGE, dialect)
        try:
            self.migrate()
        except BaseException:
            self.engine.dispose()
            raise

    # -- engines -----------------------------------------------------------------------------

    def _sqlite_engine(self, url: URL) -> Engine:
        database = url.database or ""
        memory = database in ("", ":memory:") or url.query.get("mode") == "memory"
        if not memory:
            path = Path(os.path.expanduser(database))
            path.parent.mkdir(parents=True, exist_ok=True)
            url = url.set(database=str(path))
            self.where = f"SQLite file {path}"
        else:
            self.where = "SQLite in memory"
        self._describe.where = self.where
        kwargs: dict[str, Any] = {
            "connect_args": {"check_same_thread": False, "timeout": self.busy_timeout},
            "hide_parameters": True,
        }
        if memory:  # one shared connection: serialise its use
            kwargs["poolclass"] = sa.StaticPool
            self._serial = threading.RLock()
        else:
            kwargs.update(pool_size=5, max_overflow=20, pool_timeout=POOL_TIMEOUT)
        engine = sa.create_engine(url, **kwargs)
        busy_ms = int(self.busy_timeout * 1000)

        @event.listens_for(engine, "connect")
        def _connect(dbapi: Any, _record: Any) -> None:
            dbapi.isolation_level = None  # we emit BEGIN ourselves (see _begin)
            cur = dbapi.cursor()
            try:
                cur.execute(f"PRAGMA busy_timeout = {busy_ms}")
                cur.execute("PRAGMA foreign_keys = ON")
                if not memory:
                    cur.execute("PRAGMA journal_mode = WAL")
                    cur.execute("PRAGMA synchronous = NORMAL")
                    # read pages straight from the OS cache: a search that reads every
                    # message of an owner runs ~2-4x faster than through read() calls
                    cur.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
            finally:
                cur.close()
            dbapi.create_function("qwen_contains", 2, _contains, deterministic=True)

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            # writers take the write lock up front (waiting busy_timeout for it), so a
            # transaction never fails half-way when it upgrades from reading to writing
            write = conn.get_execution_options().get("qwen_write")
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine

    def _pg_engine(self, url: URL, connect_timeout: float) -> Engine:
        connect_args: dict[str, Any] = {
            "application_name": "qwen-spaces-chat",
            "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 3,
            "keepalives_count": 3,
            "prepare_threshold": None,  # no server-side prepared statements: poolers in
            # transaction mode (PgBouncer, Supavisor) would lose them between transactions
        }
        if "connect_timeout" not in url.query:
            connect_args["connect_timeout"] = max(1, round(connect_timeout))
        return sa.create_engine(
            url, pool_pre_ping=True, pool_size=5, max_overflow=20,
            pool_timeout=POOL_TIMEOUT, pool_recycle=1800, hide_parameters=True,
            connect_args=connect_args,
        )

    # -- plumbing ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except StoreError:
            raise
        except (exc.SQLAlchemyError, OSError) as error:
            log.debug("chat store: %s failed", action, exc_info=True)
            raise self._describe(error, action) from None
        except Exception as error:  # a driver error SQLAlchemy did not wrap
            module = type(error).__module__
            if module.startswith(("sqlite3", "psycopg")):
                raise self._describe(error, action) from None
            raise

    @contextlib.contextmanager
    def _tx(self, action: str, write: bool = False) -> Iterator[Connection]:
        with self._serial, self._errors(action), self.engine.connect() as conn:
            if write:
                conn.execution_options(qwen_write=True)
            with conn.begin():
                yield conn

    def _now(self) -> datetime:
        """UTC now, strictly increasing within this store (orders same-instant writes)."""
        with self._clock_lock:
            now = _utc(self._clock())
            if now <= self._last:
                now = self._last + timedelta(microseconds=1)
            self._last = now
            return now

    def _touch(self, conn: Connection, owner: str, chat_id: str, now: datetime) -> None:
        """Bump the live chat's updated_at (locking its row); StoreError if it is not one
        of ``owner``'s live chats."""
        done = conn.execute(TOUCH, {"b_id": chat_id, "b_owner": owner, "b_now": now})
        if done.rowcount != 1:
            raise StoreError("Chat history: that conversation does not exist (it may have "
                             "been deleted)")

    # -- schema ------------------------------------------------------------------------------

    def migrate(self) -> None:
        """Create or upgrade the schema to :data:`SCHEMA_VERSION`; a database of a newer
        schema is left untouched and raises StoreError."""
        with self._tx("prepare the database", write=True) as conn:
            if self.backend == "postgresql":  # several app processes may start at once
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK)))
            schema_version.create(conn, checkfirst=True)
            found = conn.execute(sa.select(schema_version.c.version)).scalars().all()
            version = max(found) if found else 0
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"Chat history: the database's schema is version {version}, newer than "
                    f"this app's ({SCHEMA_VERSION}); it was left untouched. Upgrade the app "
                    "or use another database."
                )
            for step in range(version + 1, SCHEMA_VERSION + 1):
                STEPS[step](conn)
            if version != SCHEMA_VERSION:
                conn.execute(sa.delete(schema_version))
                conn.execute(sa.insert(schema_version).values(version=SCHEMA_VERSION))
        if self.backend == "postgresql":
            self.trigram = self._ensure_trigram()
        else:
            with self._tx("prepare the database") as conn:
                self.trigram = conn.exec_driver_sql(
                    "SELECT 1 FROM sqlite_master WHERE name = 'messages_fts'").first() is not None

    def _ensure_trigram(self) -> bool:
        """pg_trgm and its GIN indexes on message text and titles, when this role may
        create them (once; later starts only look)."""
        with self._tx("prepare the search index", write=True) as conn:
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK)))
            present = conn.exec_driver_sql(
                "SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema() AND "
                "indexname IN ('ix_messages_content_trgm', 'ix_conversations_title_trgm')"
            ).scalar_one()
            if present == 2:
                return True
            try:
                with conn.begin_nested():
                    conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
                    conn.exec_driver_sql(
                        "CREATE INDEX IF NOT EXISTS ix_messages_content_trgm "
                        "ON messages USING gin (content gin_trgm_ops)")
                    conn.exec_driver_sql(
                        "CREATE INDEX IF NOT EXISTS ix_conversations_title_trgm "
                        "ON conversations USING gin (title gin_trgm_ops)")
            except exc.DBAPIError as error:
                log.warning("chat store: no pg_trgm search index (%s); search scans instead",
                            self._describe.clean(_first_line(str(error.orig))))
                return False
            return True

    # -- conversations ------------------------------------------------------------------------

    def create_chat(self, owner: str, chat: Chat, system: str | None = None,
                    title: str | None = None) -> Chat:
        """Store ``chat`` (and its messages) under a new unguessable id."""
        if title is None:
            first = next((m.content for m in chat.messages if m.role is Role.USER), "")
            title = title_of(first)
        title = _title(title)
        chat_id = secrets.token_urlsafe(16)
        now = self._now()
        with self._tx("save the conversation", write=True) as conn:
            conn.execute(sa.insert(conversations).values(
                id=chat_id, owner=owner, title=_enc(title), model=chat.model,
                system=_enc_opt(system), created_at=now, updated_at=now, deleted_at=None,
            ))
            flat = _flatten(chat)
            ids: list[int] = []
            if flat:
                rows = [self._message_row(chat_id, m, now, turn, chosen)
                        for m, turn, chosen in flat]
                result = conn.execute(
                    sa.insert(messages).returning(M.id, sort_by_parameter_order=True), rows
                )
                ids = [row[0] for row in result]
        stored = _assemble([
            _Row(i, replace(m, id=i), turn, chosen)
            for (m, turn, chosen), i in zip(flat, ids, strict=True)
        ])
        return replace(chat, id=chat_id, title=title, messages=stored)

    @staticmethod
    def _message_row(chat_id: str, message: Message, now: datetime, turn: int | None = None,
                     chosen: bool = True) -> dict[str, Any]:
        return {
            "conversation_id": chat_id, "role": Role(message.role).value,
            "content": _enc(message.content), "model": message.model,
            "reasoning": _enc(message.reasoning or ""), "stopped": bool(message.stopped),
            "error": _enc_opt(message.error), "error_kind": _kind(message),
            "streaming": bool(message.streaming), "created_at": now, "updated_at": now,
            "turn": turn, "chosen": chosen,
        }

    def load_chat(self, owner: str, chat_id: str) -> StoredChat | None:
        """The chat with its messages (in order), or None when it is missing, deleted or
        another owner's. A streaming row idle for :data:`STALE_AFTER` comes back stopped."""
        with self._tx("load the conversation") as conn:
            head = conn.execute(LOAD_HEAD, {"b_id": chat_id, "b_owner": owner}).first()
            if head is None:
                return None
            rows = conn.execute(LOAD_MESSAGES, {"b_id": chat_id}).all()
        stale_before = _utc(self._clock()) - STALE_AFTER
        out: list[_Row] = []
        for row in rows:
            streaming, stopped = bool(row.streaming), bool(row.stopped)
            if streaming and _utc(row.updated_at) < stale_before:
                streaming, stopped = False, True
            try:
                role = Role(row.role)
            except ValueError:
                raise StoreError(f"Chat history: a stored message has an unknown role "
                                 f"{row.role[:20]!r}") from None
            out.append(_Row(row.id, Message(
                role, _dec(row.content), model=row.model, reasoning=_dec(row.reasoning),
                stopped=stopped, error=_dec_opt(row.error), id=row.id, streaming=streaming,
                created=_utc(row.created_at).timestamp(), error_kind=row.error_kind,
            ), row.turn, bool(row.chosen)))
        chat = Chat(messages=_assemble(out), model=head.model, pending=False, id=chat_id,
                    title=_dec(head.title))
        return StoredChat(chat, _dec_opt(head.system))

    def stamp(self, owner: str, chat_id: str) -> datetime | None:
        """When the chat last changed (any message or setting), or None when it is
        missing, deleted or another owner's: a page reloads the messages only when this
        moved, so a long conversation costs one small query per rerun."""
        with self._tx("look up the conversation") as conn:
            value = conn.execute(STAMP, {"b_id": chat_id, "b_owner": owner}).scalar()
        return None if value is None else _utc(value)

    def list_chats(self, owner: str, query: str | None = None,
                   limit: int = 200) -> list[ChatSummary]:
        """The owner's live chats, newest updated first; ``query``: only those whose title
        or message text contains it (case-insensitive; ``%`` and ``_`` are literal)."""
        if limit <= 0:
            return []
        query = (query or "").strip()
        with self._tx("list the conversations") as conn:
            if not query:
                rows = conn.execute(LIST, {"b_owner": owner, "b_limit": limit}).all()
            elif self.backend == "sqlite":
                rows = self._search_sqlite(conn, owner, _enc(query), limit)
            else:
                rows = self._search_pg(conn, owner, _enc(query), limit)
        return [ChatSummary(r.id, _dec(r.title), r.model, _utc(r.created_at),
                            _utc(r.updated_at)) for r in rows]

    def _search_sqlite(self, conn: Connection, owner: str, query: str,
                       limit: int) -> list[Any]:
        live = sa.and_(C.owner == owner, C.deleted_at.is_(None))
        fold = _needs_fold(query) or len(query.encode()) > 20_000  # LIKE: ASCII, ≤ 50 kB
        if fold:
            needle = query.lower()
            by_title = sa.func.qwen_contains(C.title, needle)

            def text_matches(column: Any) -> Any:
                return sa.func.qwen_contains(column, needle)
        else:
            pattern = f"%{_like_escape(query)}%"
            by_title = C.title.like(pattern, escape="\\")

            def text_matches(column: Any) -> Any:
                return column.like(pattern, escape="\\")

        if self.trigram and len(query) >= 3:
            phrase = '"' + query.replace('"', '""') + '"'
            hits = conn.execute(FTS_PROBE, {"b_phrase": phrase, "b_limit": PROBE}).all()
            if len(hits) < PROBE:  # few: those chats, plus rows still streaming (unindexed)
                ids = [row[0] for row in hits]
                in_text = sa.or_(
                    C.id.in_(sa.select(M.conversation_id).where(M.id.in_(ids))),
                    C.id.in_(sa.select(M.conversation_id).where(
                        M.streaming == sa.true(), text_matches(M.content))),
                )
                return conn.execute(
                    sa.select(*SUMMARY).where(live, sa.or_(by_title, in_text))
                    .order_by(C.updated_at.desc()).limit(limit)
                ).all()
        # newest first, each chat's messages checked until ``limit`` chats match
        if not fold:
            in_text = sa.exists().where(M.conversation_id == C.id, text_matches(M.content))
        else:  # one Python call per chat instead of one per message
            in_text = text_matches(sa.func.coalesce(
                sa.select(sa.func.group_concat(M.content, "\x1f"))
                .where(M.conversation_id == C.id).scalar_subquery(), ""))
        return conn.execute(
            sa.select(*SUMMARY).where(live, sa.or_(by_title, in_text))
            .order_by(C.updated_at.desc()).limit(limit)
        ).all()

    def _search_pg(self, conn: Connection, owner: str, query: str, limit: int) -> list[Any]:
        conn.exec_driver_sql("SET LOCAL jit = off")  # JIT costs more than these queries
        # a case-insensitive regular expression of the literal text: PostgreSQL matches it
        # 2-3x faster than ILIKE (no lower() copy of every text), pg_trgm indexes it alike
        regex = _regex_escape(query)
        live = sa.and_(C.owner == owner, C.deleted_at.is_(None))
        by_title = C.title.regexp_match(regex, flags="i")
        if self.trigram and len(query) >= 3:
            hits = conn.execute(
                sa.select(M.conversation_id).where(M.content.regexp_match(regex, flags="i"))
                .limit(PROBE)
            ).scalars().all()
            if len(hits) < PROBE:  # few: read those conversations by primary key
                ids = sorted(set(hits))
                union = sa.union(
                    sa.select(*SUMMARY).where(live, by_title),
                    sa.select(*SUMMARY).where(
                        live, C.id == sa.any_(sa.bindparam(
                            "ids", ids, type_=postgresql.ARRAY(sa.String)))),
                ).subquery()
                return conn.execute(
                    sa.select(union).order_by(union.c.updated_at.desc()).limit(limit)
                ).all()
        # newest first, each chat checked on its own; OFFSET 0 keeps PostgreSQL from
        # turning the EXISTS into one hashed scan of every message of every owner
        in_text = sa.exists(
            sa.select(sa.literal(1)).where(
                M.conversation_id == C.id, M.content.regexp_match(regex, flags="i"),
            ).offset(0)
        )
        return conn.execute(
            sa.select(*SUMMARY).where(live, sa.or_(by_title, in_text))
            .order_by(C.updated_at.desc()).limit(limit)
        ).all()

    def _set(self, action: str, owner: str, chat_id: str, **values: Any) -> None:
        now = self._now()
        with self._tx(action, write=True) as conn:
            done = conn.execute(
                sa.update(conversations)
                .where(C.id == chat_id, C.owner == owner, C.deleted_at.is_(None))
                .values(updated_at=now, **values)
            )
            if done.rowcount != 1:
                raise StoreError("Chat history: that conversation does not exist (it may "
                                 "have been deleted)")

    def set_model(self, owner: str, chat_id: str, model: str) -> None:
        self._set("change the model", owner, chat_id, model=model)

    def set_system(self, owner: str, chat_id: str, system: str | None) -> None:
        self._set("change the system prompt", owner, chat_id, system=_enc_opt(system))

    def rename(self, owner: str, chat_id: str, title: str) -> None:
        """New title: whitespace collapsed, cut to :data:`TITLE_MAX` characters."""
        self._set("rename the conversation", owner, chat_id, title=_enc(_title(title)))

    def delete_chat(self, owner: str, chat_id: str) -> None:
        """Soft delete (undone by :meth:`restore_chat` until :meth:`purge_deleted`). Deleting
        what is not there (already deleted, missing, another owner's) does nothing."""
        now = self._now()
        with self._tx("delete the conversation", write=True) as conn:
            conn.execute(
                sa.update(conversations)
                .where(C.id == chat_id, C.owner == owner, C.deleted_at.is_(None))
                .values(deleted_at=now)
            )

    def restore_chat(self, owner: str, chat_id: str) -> None:
        """Undo :meth:`delete_chat`; StoreError if there is no such deleted chat (purged,
        never existed, or another owner's)."""
        with self._tx("restore the conversation", write=True) as conn:
            done = conn.execute(
                sa.update(conversations)
                .where(C.id == chat_id, C.owner == owner, C.deleted_at.is_not(None))
                .values(deleted_at=None)
            )
            if done.rowcount != 1:
                raise StoreError("Chat history: that conversation cannot be restored (it "
                                 "is not in the recently deleted ones)")

    def purge_deleted(self, older_than: timedelta = timedelta(days=1)) -> int:
        """Remove for good the chats (of every owner) deleted more than ``older_than``
        ago, with their messages; returns how many chats went."""
        cutoff = _utc(self._clock()) - older_than
        with self._tx("purge deleted conversations", write=True) as conn:
            doomed = (sa.select(C.id)
                      .where(C.deleted_at.is_not(None), C.deleted_at < cutoff))
            conn.execute(sa.delete(messages).where(M.conversation_id.in_(doomed)))
            done = conn.execute(
                sa.delete(conversations)
                .where(C.deleted_at.is_not(None), C.deleted_at < cutoff)
            )
            return done.rowcount

    # -- messages ------------------------------------------------------------------------------

    def add_message(self, owner: str, chat_id: str, message: Message,
                    turn: int | None = None, show: bool = True,
                    question: int | None = None) -> int:
        """Append ``message``; returns its row id. Concurrent appends all stay, in the
        order they were committed. With ``turn`` it becomes that turn's shown version: a
        question hides the turn's other rows, an answer the turn's other answers (they
        stay as versions); with ``show=False`` it is stored as a version, not shown.
        ``question``: the row of the question an answer answers. An answer belongs to the
        question row before it, so when the turn has a later question (the person went
        back to an earlier wording after an edit) that question is stored again first."""
        now = self._now()
        with self._tx("save the message", write=True) as conn:
            self._touch(conn, owner, chat_id, now)
            again = None
            if turn is not None and question is not None and message.role is not Role.USER:
                later = conn.execute(
                    sa.select(M.id).where(M.conversation_id == chat_id, M.turn == turn,
                                          M.role == Role.USER.value, M.id > question)
                    .limit(1)).first()
                if later is not None:
                    again = conn.execute(
                        sa.select(M.content).where(M.id == question,
                                                   M.conversation_id == chat_id)).first()
            if turn is not None and show:
                hide = sa.update(messages).where(M.conversation_id == chat_id,
                                                 M.turn == turn)
                if message.role is not Role.USER and again is None:
                    hide = hide.where(M.role == Role.ASSISTANT.value)
                conn.execute(hide.values(chosen=False))
            if again is not None:
                asked = Message(Role.USER, _dec(again.content))
                conn.execute(INSERT_MESSAGE, self._message_row(chat_id, asked, now, turn, show))
            result = conn.execute(INSERT_MESSAGE,
                                  self._message_row(chat_id, message, now, turn, show))
            return int(result.scalar_one())

    def choose(self, owner: str, chat_id: str, turn: int, message_ids: Iterable[int]) -> None:
        """Show these rows (a question and its answer) of ``turn``; its other rows become
        versions. Nothing happens when the chat is not one of ``owner``'s live chats."""
        ids = sorted({int(i) for i in message_ids})
        now = self._now()
        with self._tx("choose a version", write=True) as conn:
            self._touch(conn, owner, chat_id, now)
            conn.execute(sa.update(messages)
                         .where(M.conversation_id == chat_id, M.turn == turn)
                         .values(chosen=M.id.in_(ids)))

    def update_message(self, owner: str, chat_id: str, message_id: int,
                       message: Message) -> None:
        """Rewrite a stored message's content, reasoning, stopped, error and streaming
        flag (role and model stay); StoreError if it is not in that chat of ``owner``.

        Called every 2 s while an answer streams, so it runs pre-compiled SQL through the
        driver (the Core statements above, compiled once): on PostgreSQL one atomic
        statement in autocommit (no BEGIN/COMMIT round trips), on SQLite two statements in
        one write transaction."""
        (sql_touch, order_touch), (sql_update, order_update) = self._touch_sql, self._update_sql
        values = {
            "b_id": chat_id, "b_owner": owner, "b_mid": message_id,
            "b_content": _enc(message.content), "b_reasoning": _enc(message.reasoning or ""),
            "b_stopped": bool(message.stopped), "b_error": _enc_opt(message.error),
            "b_error_kind": _kind(message), "b_streaming": bool(message.streaming),
            "b_now": self._bind_time(self._now()),
        }
        if order_update is None:  # PostgreSQL: named parameters
            with self._serial, self._errors("save the message"), \
                    self.engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT")
                if conn.exec_driver_sql(sql_update, values).rowcount == 1:
                    return
                live = conn.execute(LOAD_HEAD, {"b_id": chat_id, "b_owner": owner}).first()
        else:
            with self._tx("save the message", write=True) as conn:
                touched = conn.exec_driver_sql(
                    sql_touch, tuple(values[k] for k in order_touch)).rowcount
                if touched == 1 and conn.exec_driver_sql(
                        sql_update, tuple(values[k] for k in order_update)).rowcount == 1:
                    return
                live = touched == 1
        if not live:
            raise StoreError("Chat history: that conversation does not exist (it may have "
                             "been deleted)")
        raise StoreError("Chat history: that message does not exist (it may have been "
                         "deleted)")

    def delete_messages(self, owner: str, chat_id: str, message_ids: Iterable[int]) -> None:
        """Remove these messages of the chat (ids not in it are ignored); nothing happens
        when the chat is not one of ``owner``'s live chats."""
        ids = sorted({int(i) for i in message_ids})
        if not ids:
            return
        now = self._now()
        with self._tx("delete messages", write=True) as conn:
            owned = conn.execute(
                sa.update(conversations)
                .where(C.id == chat_id, C.owner == owner, C.deleted_at.is_(None))
                .values(updated_at=now)
            ).rowcount
            if owned == 1:
                conn.execute(sa.delete(messages).where(M.conversation_id == chat_id,
                                                       M.id.in_(ids)))

    def close(self) -> None:
        """Close every pooled connection (the store is not used after this)."""
        with contextlib.suppress(Exception):
            self.engine.dispose()
