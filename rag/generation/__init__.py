"""Generation: the model files and presets, the llama.cpp adapter, the prompt and the prompt cache.

May import rag.retrieval (the ranked sentences a prompt is made of), rag.text and the top-level
records; never rag.answer or the front ends."""
