"""Qwen Spaces Chat — the entry file (``streamlit run streamlit_app.py``; Streamlit
Community Cloud's main file).

``st.App`` serves the chat page (``qwen_chat/page.py``), Streamlit's own routes and the
OpenAI-compatible API (``/v1/...``) on one port; the owner-cookie middleware gives each
browser its private conversation list."""

import streamlit as st
from starlette.middleware import Middleware

from qwen_chat.api import lifespan, routes
from qwen_chat.owner import OwnerCookieMiddleware

app = st.App("qwen_chat/page.py", middleware=[Middleware(OwnerCookieMiddleware)],
             routes=routes(), lifespan=lifespan)
