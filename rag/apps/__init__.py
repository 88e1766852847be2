"""Front ends: the CLI, the Gradio web chat and (later) the API server. Thin: each builds one
Assistant and calls it.

The top of the stack: may import every package; nothing imports it (app.py and the `rag` script aside)."""
