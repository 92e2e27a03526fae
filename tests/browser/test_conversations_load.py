"""Load: 20 sessions x 5 turns spread over two app servers on one PostgreSQL. Every
question and answer is stored exactly once: 200 of each, none lost or duplicated."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from playwright.sync_api import Browser, expect

from tests.pg import pg_cluster, require_pg
from tests.replicas import script
from tests.replicas.bed import ReplicaPool

from .test_browser import ask, last_message
from .test_conversations import MAX_SYSTEM, app_server, open_app

pytestmark = [pytest.mark.browser, pytest.mark.replica]
SESSIONS, TURNS = 20, 5
GROUP = 5  # sessions streaming at once (2 cores: browser, two servers, replica, DB)


@pytest.mark.timeout(1200)
def test_twenty_sessions_of_five_turns_on_two_servers_store_everything_once(
    browser: Browser, replica_pool: ReplicaPool
):
    require_pg()
    replica = replica_pool.get("max_g6", concurrency=20)
    with pg_cluster() as pg:
        db = pg.url.replace("postgresql://", "postgresql+psycopg://", 1)
        with app_server(replica, db, "load-a") as url_a, \
                app_server(replica, db, "load-b") as url_b:
            for group in range(0, SESSIONS, GROUP):  # GROUP sessions at a time
                pages = []
                try:
                    for i in range(group, group + GROUP):
                        context = browser.new_context(viewport={"width": 1000, "height": 700})
                        page = context.new_page()
                        open_app(page, (url_a if i % 2 == 0 else url_b) + "/")
                        pages.append((i, page))
                    for turn in range(TURNS):
                        for i, page in pages:
                            ask(page, f"session {i} turn {turn}")
                        for i, page in pages:
                            expect(last_message(page)).to_contain_text(
                                f"ECHO query=session {i} turn {turn}", timeout=180_000)
                            expect(page.get_by_role("button", name="Regenerate")
                                   ).to_be_visible(timeout=180_000)
                finally:
                    for _, page in pages:
                        page.context.close()
        engine = sa.create_engine(db)
        try:
            with engine.connect() as conn:
                rows = conn.execute(sa.text(
                    "SELECT c.id, c.owner, m.role, m.content, m.streaming FROM messages m "
                    "JOIN conversations c ON c.id = m.conversation_id ORDER BY m.id")).all()
        finally:
            engine.dispose()
    questions = [r.content for r in rows if r.role == "user"]
    answers = [r for r in rows if r.role == "assistant"]
    assert sorted(questions) == sorted(f"session {i} turn {t}"
                                       for i in range(SESSIONS) for t in range(TURNS))
    assert len(answers) == SESSIONS * TURNS and not any(r.streaming for r in answers)
    by_chat: dict[str, list] = {}
    for row in rows:
        by_chat.setdefault(row.id, []).append(row)
    assert len(by_chat) == SESSIONS and len({r.owner for r in rows}) == SESSIONS
    for messages in by_chat.values():
        session = messages[0].content.split()[1]
        history: list[list[str]] = []
        for turn in range(TURNS):
            question, answer = messages[2 * turn], messages[2 * turn + 1]
            assert question.content == f"session {session} turn {turn}"
            assert answer.content == script.expected_answer(
                question.content, system=MAX_SYSTEM, history=history)
            history.append([question.content, answer.content])
