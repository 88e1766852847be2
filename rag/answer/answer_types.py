"""What kind of fact a question asks for, and whether a text brings one.

Question classification by expected answer type is the oldest check of open-domain QA: "how many"
wants a number, "when" a date, "who" a name. A small model asked something the documents do not
say answers with what they do say ("France" for a budget, a sentence about the factory instead of
its output). An answer that holds no new fact of the asked-for kind does not answer the question,
however well its words match. The kinds are read from English and French questions; a question in
another language, or of a kind not listed here, is not constrained. The facts are read in any
language: numbers, months and currencies spelt out come from rag.text.values by language code.
"""

from __future__ import annotations

import functools
import re

from rag.answer.question_kind import asked_kind, asking_phrase
from rag.text.language import detect_language
from rag.text import values
from rag.text.lexical import (
    _ELISION,
    ENTITY_NOUNS,
    dictionary_word,
    fold,
    stopwords,
)
from rag.text.resources import function_words, stopword_languages
from rag.text.sentences import period_continues
from rag.text.support import COGNATE_PREFIX


@functools.lru_cache(maxsize=64)
def _money_words(langs: tuple[str, ...]) -> frozenset[str]:
    """Words that say a number is money: a currency's name, or a magnitude ("two billion")."""
    magnitudes = {w: v for w, v in values.numbers(langs).items() if len(v) > 4}  # a million and more
    return values.currencies(langs) | set(magnitudes) | set(magnitudes.values())


def _is_money(token: str, langs: tuple[str, ...]) -> bool:
    return values.is_currency_sign(token) or token in _money_words(langs)


def _langs(*texts: str) -> tuple[str, ...]:
    """The languages of texts, for the number, date and money words of each."""
    return tuple(dict.fromkeys(detect_language(t) for t in texts if t))

# "which / name" then the noun after at most four adjectives or numbers ("name two major British
# defence manufacturers"), articles and "of" aside; any other small word (a verb: "what did the
# minister say") ends the search. French puts the noun first: "quel(le)(s) / le nom de" + noun.
_WHICH = frozenset("which what name names".split())
_QUEL = frozenset("quel quelle quels quelles lequel laquelle nom noms nommez citez".split())
_LINKS = frozenset("the a an of de du des la le les l d".split())
_HOW_MANY = re.compile(r"\b(?:how many|how much|combien d(?:e\s+|'|’))\s*((?:[\w-]+\s*){1,2})")
# How many words that are no stop words may lie between a focus noun and the fact that answers it:
# "le fabricant d'armes public Ukroboronprom", "plus de 250 producteurs"; a name before the noun only
# right before it ("Rustem Umerov, ministre").
FOCUS_AFTER = 5
FOCUS_BEFORE = 1

_LOWER_WORD = re.compile(r"(?<![\w'’-])[a-zà-ÿ][\w-]*")
_TOKEN = re.compile(r"[^\W_]+|[^\w\s]", re.UNICODE)
_YEAR = re.compile(r"^(?:1[5-9]\d\d|20\d\d)$")
_NAME = re.compile(r"(?<![\w'’-])([A-ZÀ-Ý][\w-]*)")
_OPENERS = ".!?:;«»\"“”(\n-–—•*"


@functools.lru_cache(maxsize=4096)
def _stops(text: str) -> frozenset[str]:
    """The stop words of text's own language (rag.text.lexical.stopwords), whatever the corpus's."""
    return stopwords(detect_language(text))


def _tokens(text: str) -> list[str]:
    """Words and currency signs ("$"), folded; no other punctuation."""
    return [fold(t) for t in _TOKEN.findall(text) if t[0].isalnum() or values.is_currency_sign(t)]


def expected_kind(question: str) -> str | None:
    """"money", "date", "number", "name", or None when the question does not say."""
    kind = asked_kind(question)
    if kind == "name" and _gives_the_name(question):
        return None  # "Who is Umerov?" asks about a name it already gives: a description answers it
    return kind


def _gives_the_name(question: str) -> bool:
    """The words that follow the question's asking words are a name: "Who is Umerov", "¿Quién es
    Richard Stallman", "Wer ist Linus Torvalds". A name: written capitalised after the first word and
    in no dictionary of the question's language (rag.text.lexical.dictionary_word), so German's
    capitalised nouns ("Wer ist der Präsident") are none; and no dictionary word is written in
    lower case beside it ("Who leads Rheinmetall" asks for a name). A short function word of any
    language right between two capitalised words is a particle of the name ("Guido van Rossum"),
    not a verb ("Who in Paris welcomed Zelensky" asks for a name)."""
    lang = detect_language(question)
    function = function_words(lang)
    said = asking_phrase(question, lang).split()[1:]
    group = [w for w in said if fold(w) not in function]
    names = [w for w in group if w[0].isupper() and not dictionary_word(w, lang)]

    def particle(i: int) -> bool:
        return (0 < i < len(group) - 1 and group[i - 1][0].isupper() and group[i + 1][0].isupper()
                and len(group[i]) <= PARTICLE_LETTERS and _function_word_anywhere(fold(group[i])))

    return bool(names) and not any(w[0].islower() and dictionary_word(w, lang) and not particle(i)
                                   for i, w in enumerate(group))


# Name particles are short: van, von, de, da, del, der, bin, al.
PARTICLE_LETTERS = 3


@functools.lru_cache(maxsize=1024)
def _function_word_anywhere(word: str) -> bool:
    """word is a stop word of some language the libraries cover ("van" is Dutch, "von" German)."""
    return any(word in function_words(lang) for lang in stopword_languages())


def _entity_noun(folded_question: str) -> str | None:
    words = re.findall(r"[\w-]+", _ELISION.sub(" ", folded_question))
    stops = _stops(folded_question)
    counts = values.numbers(_langs(folded_question))  # "which two companies": a count goes on to the noun
    for i, w in enumerate(words):
        if w not in _WHICH and w not in _QUEL:
            continue
        seen, most = 0, 4 if w in _WHICH else 0
        for word in words[i + 1 :]:
            if word in ENTITY_NOUNS:
                return word
            if word in _LINKS:
                continue
            seen += 1
            if seen > most or (word in stops and word not in counts):
                break
    return None


def focus_words(question: str, kind: str | None) -> frozenset[str]:
    """The folded words naming what the question asks a fact about: the entity noun of "which
    minister" (with its translations) for a name, the noun of "how many shells" for a number."""
    q = fold(question)
    if kind == "name":
        noun = _entity_noun(q)
        return ENTITY_NOUNS[noun] if noun else frozenset()
    if kind == "number":
        m = _HOW_MANY.search(q)
        stops = _stops(question)
        return frozenset(w for w in re.findall(r"[\w-]+", m.group(1)) if len(w) > 2 and w not in stops) if m else frozenset()
    return frozenset()


_WHO = re.compile(r"^\s*(?:who|whom|qui)\b(.*)")


def predicate(question: str) -> str | None:
    """What a who-question says of the person, folded: "dirige" in "Qui dirige l'entreprise ?",
    "head" in "Who is the head of…?". A sentence that names someone without it does not say who
    heads anything, however much else of the question it shares."""
    m = _WHO.match(fold(question))
    if not m:
        return None
    stops = _stops(question)
    words = re.findall(r"[^\W\d_]+(?:-[^\W\d_]+)*", _ELISION.sub(" ", m.group(1)))  # words, not "31m" or "2024"
    return next((w for w in words if w not in stops and len(w) > 2), None)


def _same_word(a: str, b: str) -> bool:
    """Equal, or one the other's plural ("obus", "producteur(s)")."""
    return a == b or a.rstrip("sx") == b.rstrip("sx")


def placed(question: str, text: str, kind: str, found: set[str], langs: tuple[str, ...]) -> set[str]:
    """Of the facts found in text, those next to a word naming what is asked ("which companies":
    a name just after "entreprises"); all of them when text has no such word. A sentence saying
    "un accord avec deux entreprises américaines" does not answer "which two American companies"
    with a name it gives elsewhere."""
    focus = focus_words(question, kind)
    if not focus or not found:
        return found
    stops = _stops(question) | _stops(text)
    tokens = [t for t in _tokens(_ELISION.sub(" ", text)) if t not in stops or t in found]
    at = [i for i, t in enumerate(tokens) if any(_same_word(t, f) for f in focus)]
    if not at:
        return found
    # Adjacent focus words are one mention ("deux entreprises américaines").
    spans: list[list[int]] = []
    for i in at:
        if spans and i == spans[-1][1] + 1:
            spans[-1][1] = i
        else:
            spans.append([i, i])
    # Where the noun comes more than once, the answer stands by the mention described as the question
    # describes it: "quel fabricant d'armes public" is "le fabricant d'armes public Ukroboronprom",
    # not "les fabricants britanniques, dont Babcock" earlier in the same sentence.
    described = {t for t in _tokens(_ELISION.sub(" ", question)) if t not in stops} - focus

    def likeness(span: list[int]) -> int:
        near = tokens[max(0, span[0] - FOCUS_BEFORE) : span[0]] + tokens[span[1] + 1 : span[1] + 1 + FOCUS_AFTER]
        return sum(1 for t in near if any(_same_word(t, d) or (len(t) >= COGNATE_PREFIX and t[:COGNATE_PREFIX] == d[:COGNATE_PREFIX])
                                          for d in described))

    best = max(likeness(span) for span in spans)
    spans = [span for span in spans if likeness(span) == best]
    words = values.numbers(langs)
    value = (lambda t: t) if kind == "name" else (lambda t: words.get(t, t))
    return {value(t) for i, t in enumerate(tokens) if value(t) in found
            and any(0 < i - end <= FOCUS_AFTER or 0 < start - i <= FOCUS_BEFORE for start, end in spans)}


def facts(text: str, kind: str, langs: tuple[str, ...], openers: bool = False) -> set[str]:
    """The facts of this kind in text, folded (number words of langs as their digits, month and day
    names as one value across languages: rag.text.values). openers: capitalised
    words opening a sentence count as names too (for an answer whose names are then looked up in
    the documents, which write "Ukroboronprom" mid-sentence and "Selon" never)."""
    if kind == "name":
        # Capitalised words: "Vautrin", "Brave1", "Ukroboronprom"; one opening a sentence only when
        # the next word is capitalised too ("Rustem Umerov a dit", not "Selon lui"), unless openers.
        text = _ELISION.sub(lambda m: " " * len(m.group(0)), text)  # "l'AFP", "d'Airbus" are names too
        found, matches = set(), list(_NAME.finditer(text))
        for i, m in enumerate(matches):
            before = text[: m.start()].rstrip(" \t")
            opens = not before or (before[-1] in _OPENERS and not period_continues(text, len(before)))
            follows = i + 1 < len(matches) and text[m.end() : matches[i + 1].start()] == " "
            if len(m.group(1)) > 1 and (not opens or follows or openers):
                found.add(fold(m.group(1)))
        return found
    tokens = _tokens(text)
    if kind == "date":
        dates = values.dates(langs)
        return {dates.get(t, t) for t in tokens if t in dates or _YEAR.match(t)}
    # A year is a date, not a count: "how many" is not answered by "since 2022".
    words = values.numbers(langs)
    numbers = {words.get(t, t) for t in tokens if (t.isdigit() and not _YEAR.match(t)) or t in words}
    if kind == "money":
        money = {words.get(t, t) for t in tokens if _is_money(t, langs)}
        return numbers | money if money else set()
    return numbers


def common_words(text: str) -> frozenset[str]:
    """Words text writes in lower case: a capitalised "Défense" is no name where "défense" occurs too."""
    return frozenset(fold(w) for w in _LOWER_WORD.findall(text))


def new_facts(question: str, text: str, kind: str, langs: tuple[str, ...], common: frozenset[str] = frozenset(),
              openers: bool = False) -> set[str]:
    """Facts of this kind in text that the question does not already state (for names: no word of
    the question, cognates included, so "Ukraine" does not answer a question about "ukrainienne";
    and none of the `common` words)."""
    found = facts(text, kind, langs, openers) - facts(question, kind, langs)
    if kind == "name":
        asked = {w[:COGNATE_PREFIX] for w in _tokens(question)}
        found = {f for f in found if f[:COGNATE_PREFIX] not in asked and f not in common}
    return found


def brings_kind(question: str, text: str, kind: str | None = None, within: str | None = None,
                common: frozenset[str] = frozenset(), langs: tuple[str, ...] | None = None) -> bool:
    """text holds a fact of the kind the question asks for that the question does not already state
    (and, given `within`, that fact is found there too: an answer's "$155 million" must be in the
    documents, not only "155"). common: words that are no names (see common_words). langs: whose
    number, date and money words count (the question's and the documents'; by default the
    languages the question and text are written in)."""
    kind = kind or expected_kind(question)
    if kind is None:
        return True
    # An answer's first word may be the name it brings ("Ukroboronprom a rendu compte…", "L'AFP
    # assistait…"): it counts when `within` writes it as a name.
    langs = langs or _langs(question, text)
    found = new_facts(question, text, kind, langs, common, openers=within is not None)
    if within is not None:
        found &= facts(within, kind, langs)
        if kind == "money":  # the currency or the scale must match, not only a number
            found = {f for f in found if _is_money(f, langs)}
    return bool(placed(question, text if within is None else within, kind, found, langs))
