"""Web chat and API: `python app.py` serves http://127.0.0.1:7860, as `rag serve` does (RAG_HOST,
RAG_PORT, RAG_API_KEY and the other RAG_* variables apply)."""

from rag.apps.web.launch import serve
from rag.config import Settings

if __name__ == "__main__":
    serve(Settings.from_env())
