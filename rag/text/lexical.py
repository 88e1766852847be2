"""Lexical side of retrieval: language-aware normalisation and a BM25 index (bm25s)."""

from __future__ import annotations

import functools
import re

from rag.text import values
from rag.text.resources import snowball, stopword_list

# An elided word glued to the next by an apostrophe, in any language that writes them: French l'armée,
# qu'elle, jusqu'à; Italian dell'anno, un'altra; Catalan d'una. Read by spelling, not from a list: a
# short word, then an apostrophe, then a word of at least two letters. English possessives and
# negations ("company's", "don't") have one letter after it and are left whole.
_ELISION = re.compile(r"\b[^\W\d_]{1,7}['’ʼ`´](?=[^\W\d_]{2})")
_WORD = re.compile(r"[^\W_]+", re.UNICODE)

QUESTION_WORDS = frozenset({"quel", "quels", "quelle", "quelles", "lequel", "laquelle", "lesquels", "lesquelles",
                            "combien", "comment", "pourquoi", "quand", "ou", "qui", "que", "quoi",
                            "what", "which", "who", "whom", "whose", "when", "where", "why", "how",
                            # Imperatives that ask ("Name the bombs…", "Citez…"): no word a passage would share.
                            "name", "give", "identify", "describe",
                            "nommez", "citez", "donnez", "indiquez", "precisez", "decrivez"})

# Nouns that name what "which X" asks for when X is something with a proper name (a lexical answer
# type, rag.answer.answer_types): people by role, organisations, places, channels. Grouped by meaning across
# English and French, so "companies" in a question finds "entreprises" in a document (rag.answer.evidence.coverage
# counts it as found). Things as often described as named (documents, systems, weapons) are left out:
# "quel type de document" wants "une lettre d'intention", not a name.
_ENTITY_GROUPS = (
    "minister ministers ministre ministres", "president presidents presidente presidentes",
    "person people personne personnes", "journalist journalists journaliste journalistes reporter reporters",
    "author authors auteur auteurs", "spokesman spokeswoman spokesperson porte-parole",
    "ambassador ambassadors ambassadeur ambassadeurs ambassadrice", "general generals generaux",
    # A maker is a company: "quelle entreprise allemande" is answered by "le fabricant allemand Rheinmetall".
    "company companies firm firms entreprise entreprises societe societes firme firmes compagnie compagnies "
    "manufacturer manufacturers maker makers fabricant fabricants constructeur constructeurs",
    "agency agencies agence agences", "organisation organisations organization organizations organisme organismes",
    "group groups groupe groupes", "ministry ministries ministere ministeres", "cluster clusters",
    "bank banks banque banques", "university universities universite universites",
    "newspaper newspapers journal journaux", "network networks reseau reseaux", "platform platforms plateforme plateformes",
    "messaging messagerie messageries", "party parties parti partis",
    "factory factories fabrique fabriques usine usines", "city cities ville villes", "country countries pays", "region regions", "capital capitale",
)
ENTITY_NOUNS = {w: frozenset(g.split()) for g in _ENTITY_GROUPS for w in g.split()}

# "sixfold", "ten-fold", "3fold": a count as a multiplier.
_MULTIPLIER = re.compile(r"^(\w+?)-?fold$")


def translations(word: str, spec: str) -> frozenset[str]:
    """The folded word's other forms in the languages of a spec ("fr+en"): a number's in any of its
    words ("sixfold" is "six", "deux" is "2" and "two"), a month's or a day's (rag.text.values), an
    entity noun's ("maker" is "fabricant")."""
    return ENTITY_NOUNS.get(word, frozenset()) | values.same_value(number_value(word, spec) or word, tuple(languages(spec)))


def number_value(word: str, spec: str) -> str | None:
    """The digits a folded number word (in a language of the spec), multiplier ("sixfold") or number stands for."""
    m = _MULTIPLIER.match(word)
    word = m.group(1) if m else word
    return word if word.isdigit() else values.numbers(tuple(languages(spec))).get(word)


fold = values.fold  # lower-case and strip accents: 'Défense' -> 'defense'


@functools.lru_cache(maxsize=1)
def stopword_lists() -> dict[str, list[str]]:
    """bm25s's own stop-word list of each stemmer language, unmixed."""
    import bm25s.stopwords as sw

    return {"fr": sw.STOPWORDS_FRENCH, "en": sw.STOPWORDS_EN, "de": sw.STOPWORDS_GERMAN, "es": sw.STOPWORDS_SPANISH,
            "it": sw.STOPWORDS_ITALIAN, "pt": sw.STOPWORDS_PORTUGUESE, "nl": sw.STOPWORDS_DUTCH}


def languages(spec: str) -> list[str]:
    """The codes of a language spec: "en", or "en+de" for a question or an answer in German read
    against English documents: stemmed as the first, without the stop words of any. The documents'
    own text is read in the first alone (rag.text.support): "man" or "die" is an English word there."""
    return [code for code in spec.split("+") if code] or ["en"]


def documents_language(spec: str) -> str:
    """The documents' language of a spec ("en" of "en+de")."""
    return languages(spec)[0]


def text_languages(corpus_lang: str, lang: str) -> str:
    """The spec for a question's or an answer's words in lang, read against documents in corpus_lang."""
    return corpus_lang if lang in (corpus_lang, "") else f"{corpus_lang}+{lang}"


@functools.lru_cache(maxsize=None)
def stopwords(lang: str) -> frozenset[str]:
    import bm25s.stopwords as sw

    words = {w for code in languages(lang) for w in stopword_list(code)}
    # Questions are often asked in English about documents in another language: drop both sets.
    words |= set(sw.STOPWORDS_EN_PLUS)
    # Question words say what is asked, not what it is about; bm25s's French list lacks them.
    words |= QUESTION_WORDS
    return frozenset(fold(w) for w in words)


def stemmer(lang: str):
    """The Snowball stemmer of the language (the first of a spec "en+de"), or none (rag.text.resources)."""
    return snowball(documents_language(lang))


def lemmas(text: str, langs: tuple[str, ...]) -> set[str]:
    """Folded dictionary lemmas of text's words in any of the languages: "led" and "leads" are both
    "lead", which neither a stemmer nor a shared prefix sees."""
    import simplemma
    from simplemma.strategies.dictionaries.dictionary_factory import SUPPORTED_LANGUAGES

    known = tuple(l for l in dict.fromkeys(langs) if l in SUPPORTED_LANGUAGES) or ("en",)
    return {fold(simplemma.lemmatize(w, lang=known)) for w in _WORD.findall(_ELISION.sub(" ", text))}


def dictionary_word(word: str, lang: str) -> bool:
    """word is in simplemma's dictionary of lang (some 50 languages): a common word, not a proper name,
    whatever its case (German writes "Präsident" capitalised). False in a language it has no dictionary of."""
    import simplemma
    from simplemma.strategies.dictionaries.dictionary_factory import SUPPORTED_LANGUAGES

    return lang in SUPPORTED_LANGUAGES and simplemma.is_known(word.lower(), lang=lang)


def content_words(text: str, lang: str = "fr") -> list[str]:
    """Words without elisions, accents, case or stop words, not stemmed."""
    text = _ELISION.sub(" ", text)
    stops = stopwords(lang)
    return [w for w in (fold(m) for m in _WORD.findall(text)) if w not in stops and (len(w) > 1 or w.isdigit())]


def tokenize(text: str, lang: str = "fr") -> list[str]:
    """Words without elisions, accents, case or stop words, stemmed for the corpus language."""
    return stemmer(lang).stemWords(content_words(text, lang))


def detect_corpus_language(texts: list[str]) -> str:
    """The corpus language among the stemmer languages, by counting stop words (cheap and robust
    for whole documents)."""
    lists = stopword_lists()
    sample = [fold(w) for t in texts[:200] for w in _WORD.findall(_ELISION.sub(" ", t[:5000]))]
    if not sample:
        return "en"
    scores = {lang: sum(w in s for w in sample) for lang, s in ((k, {fold(x) for x in v}) for k, v in lists.items())}
    return max(scores, key=scores.get)




