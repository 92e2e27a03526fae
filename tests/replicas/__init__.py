"""Replica Spaces: real Gradio servers reproducing each Qwen Space's event layout."""
