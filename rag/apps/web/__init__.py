"""Web chat: a Gradio front end over the same Assistant as `rag ask`. `service` holds what the
page's events call (ChatService: sessions, the streamed answer, the `ask` API, model switching,
status, uploads and re-indexing), usable without a page; `gate` gives the model to one request
at a time and bounds the line of waiting ones; `uploads` checks a file before it joins the
documents; `render` turns model and document text into escaped Markdown and HTML, so no markup,
link or remote image from a document can become active in the browser; `page` builds the Blocks
and its CSS (create_app never launches); `launch` holds the launch options and `rag serve`.
"""

import os

# Set before Gradio is imported (here, ahead of every submodule): it reads them at import time.
# Nothing may phone home.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from rag.apps.web.gate import ModelGate  # noqa: E402
from rag.apps.web.launch import launch_options, serve_command  # noqa: E402
from rag.apps.web.page import create_app  # noqa: E402
from rag.apps.web.render import (  # noqa: E402
    escape_markdown,
    render_answer,
    render_sources,
)
from rag.apps.web.service import ChatService, Session  # noqa: E402
from rag.apps.web.uploads import save_upload  # noqa: E402

__all__ = [
    "ChatService", "ModelGate", "Session", "create_app", "escape_markdown", "launch_options",
    "render_answer", "render_sources", "save_upload", "serve_command",
]
