"""Qwen Spaces Chat — the Streamlit app over ``qwen_core``.

Modules, arrows pointing down (nothing imports ``page``; the pure modules import no
Streamlit and are tested without it):

- ``page``: the Streamlit script — layout and wiring, top to bottom.
- ``stream_view``: an answer as it streams on the page.
- ``persist``: keeping a session's conversation in the store as it happens.
- ``store``: conversations in SQL per owner (SQLAlchemy Core; SQLite, PostgreSQL).
- ``owner``: whose conversations — the owner cookie middleware, the signed-in identity.
- ``api``: the OpenAI-compatible routes over qwen_core's async stream.
- ``settings``: secrets and environment -> Settings; the Spaces' Hub states.
- ``conversation``, ``draft``, ``files``, ``display``: pure — the chat and its
  transitions, the streaming draft and coalescer, export/import, text transforms.
"""
