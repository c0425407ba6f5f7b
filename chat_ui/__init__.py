"""Gradio chat app, answer pipeline, conversation log and Python API."""
