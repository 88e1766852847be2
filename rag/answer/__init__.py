"""Answering: the `Assistant` every front end calls, and what an answer passes before it is final:
citations, the evidence check, answer kinds, compound and follow-up questions.

May import generation, retrieval, ingest, text and the top-level records; never measure or apps."""
