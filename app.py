"""Web chat: `python app.py` serves http://127.0.0.1:7860 (RAG_HOST, RAG_PORT and the other RAG_* variables apply)."""

from rag.answer.assistant import build_assistant
from rag.apps.web import create_app, launch_options
from rag.config import Settings

if __name__ == "__main__":
    settings = Settings.from_env()
    create_app(build_assistant(settings), settings).launch(**launch_options(settings))
