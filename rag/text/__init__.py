"""Text and language: the one sentence splitter, folding, stop words and stemming, the language of a
question or a corpus, and the one support scorer (how much of a question a sentence holds).

Owns no state beyond cached language resources. May import only rag.config, rag.schema, rag.errors."""
