"""Benchmarks of qwen_core against a raw httpx reader and gradio_client (``python -m bench``).

Importing this package turns off every phone-home of the libraries measured: all traffic
goes to replica Spaces on 127.0.0.1."""

from __future__ import annotations

import os

for _name, _value in {
    "GRADIO_ANALYTICS_ENABLED": "False",  # gradio_client's telemetry thread
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}.items():
    os.environ[_name] = _value
