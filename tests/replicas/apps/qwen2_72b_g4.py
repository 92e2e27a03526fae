"""Replica of Qwen/Qwen2-72B-Instruct (Gradio 4, tuples Chatbot).

Same event layout as the Qwen2.5-Max Space: fn_index 0 = chat, inputs [Textbox query,
Chatbot history (tuples), Textbox system], outputs [Textbox, Chatbot, Textbox]; it runs
on Gradio 4 (no API prefix), so the shared builder runs in the Gradio 4 venv.
"""

from __future__ import annotations

from _common import EventLog, launch, parse_args
from qwen25_max_g5 import build


def main() -> None:
    options = parse_args(__doc__ or "")
    launch(build(EventLog(options.log), "Qwen2-72B-Instruct", "Qwen2-72B-Instruct Bot"), options)


if __name__ == "__main__":
    main()
