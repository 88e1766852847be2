"""Numbers, months, weekdays and currencies written as words, in any language the libraries cover.

"two billion" in an English answer is "deux milliards" in a French document and "zwei Milliarden" in a
German one; "March" is "mars" and "März". The answer checks compare such words by their value
(rag.answer.answer_types, rag.text.support), so the words come from maintained libraries by
language code, none are written here: num2words (about 50 languages) spells numbers, Babel (the
Unicode CLDR data, hundreds of locales) names months, weekdays, nearby days and currencies. A
language neither covers has no such words: its digits, years and currency signs still count.
"""

from __future__ import annotations

import functools
import re
import unicodedata

# The counts written out in words often enough to matter (2-20, the tens, a hundred, a thousand) and
# the magnitudes that scale them ("two billion"). One is left out: as an article it is in every
# other sentence ("un", "une", "a", "ein").
COUNTS = (*range(2, 21), 30, 40, 50, 60, 70, 80, 90, 100, 1000)
MAGNITUDES = (10**6, 10**9)
# Days next to today, by their offset (CLDR's relative day names: "yesterday", "demain").
NEARBY_DAYS = (-1, 0, 1)

_WORD = re.compile(r"[^\W\d_]+")


def fold(text: str) -> str:
    """Lower-case and strip accents (as rag.text.lexical.fold, which imports this module)."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _words(text: str) -> list[str]:
    return _WORD.findall(fold(text))


@functools.lru_cache(maxsize=None)
def number_words(lang: str) -> dict[str, str]:
    """Folded number words of a language by the digits they stand for: {"deux": "2", "milliards": "1000000000"}.
    A count spelt in one word is kept ("zwanzig"), one spelt "one thousand" by its last word; a
    magnitude by the last word of its singular and plural ("million", "millions"), unless that word
    already names a smaller value (Spanish writes a billion "mil millones")."""
    try:
        from num2words import num2words
        num2words(2, lang=lang)
    except (ImportError, NotImplementedError):
        return {}
    values: dict[str, str] = {}
    for n in COUNTS:
        words = _words(num2words(n, lang=lang))
        if len(words) == 1 or (len(words) == 2 and n >= 100):
            values.setdefault(words[-1], str(n))
    for n in MAGNITUDES:
        for spelt in (num2words(n, lang=lang), num2words(2 * n, lang=lang)):
            words = _words(spelt)
            if words and words[-1] not in values:
                values[words[-1]] = str(n)
    return values


def _babel_locale(lang: str):
    try:
        from babel import Locale, UnknownLocaleError
    except ImportError:
        return None
    try:
        return Locale.parse(lang)
    except (UnknownLocaleError, ValueError):
        return None


@functools.lru_cache(maxsize=None)
def date_words(lang: str) -> dict[str, str]:
    """Folded names of months, weekdays and the days next to today by one value shared across
    languages: {"mars": "month3", "lundi": "weekday0", "demain": "day+1"}. A name of several words
    counts by its longest ("aujourd'hui" by "aujourd")."""
    locale = _babel_locale(lang)
    if locale is None:
        return {}
    names: dict[str, str] = {}

    def add(name: str, value: str) -> None:
        words = _words(name)
        if words:
            names.setdefault(max(words, key=len), value)

    for context in ("format", "stand-alone"):
        for month, name in locale.months.get(context, {}).get("wide", {}).items():
            add(name, f"month{month}")
        for day, name in locale.days.get(context, {}).get("wide", {}).items():
            add(name, f"weekday{day}")
    relative = locale._data.get("date_fields", {}).get("day", {}).get("relative", {})  # CLDR "relative-type-N"
    for offset in NEARBY_DAYS:
        if offset in relative:
            add(relative[offset], f"day{offset:+d}")
    return names


# A demonym shares its first four letters with its country's name ("ukra-inian", "chin-ese").
STEM = 4
# Four currencies sharing a word share their noun ("dollar", "franc", "shilling"); three can share an
# adjective ("South", "African").
SHARED = 4


@functools.lru_cache(maxsize=None)
def currency_words(lang: str) -> frozenset[str]:
    """Folded words that name money in a language, singular and plural: the noun of each currency's
    name ("hryvnia" of "Ukrainian hryvnia", "livre" of "livre sterling"), its adjectives aside.
    Signs ($, €) are any text's: see is_currency_sign.

    A name's noun is the name when it is one word ("euro"), what is left of it without stop words and
    words made from a country's or region's name ("Ukrainian" from "Ukraine", "South", "New"), or a
    word four currencies or more share ("franc", though it begins like "France"): read from CLDR, no
    language listed here."""
    locale = _babel_locale(lang)
    if locale is None:
        return frozenset()
    from babel.numbers import get_currency_name

    from rag.text.resources import stopword_list

    territory_words = {w for name in locale.territories.values() for w in _words(name)}
    territory_stems = {w[:STEM] for w in territory_words if len(w) >= STEM}
    stops = {fold(w) for w in stopword_list(lang)}
    # Currencies in use today (CLDR's tender by territory), not the historical ones ("East German mark").
    current = {code for territory in locale.territories for code in _tender(territory)}
    # Each currency's name, singular and plural, as its words.
    names = {code: [_words(get_currency_name(code, count=count, locale=locale)) for count in (1, 2)]
             for code in sorted(current & set(locale.currencies))}
    sharing: dict[str, int] = {}  # word -> how many currencies' names hold it
    for forms in names.values():
        for w in {w for words in forms for w in words}:
            sharing[w] = sharing.get(w, 0) + 1
    shared = {w for w, n in sharing.items() if n >= SHARED and len(w) > 2 and w not in stops and w not in territory_words}
    nouns = set(shared)
    for name in (name for forms in names.values() for name in forms):
        words = [w for w in name if len(w) > 2 and w not in stops]
        left = [w for w in words if len(words) == 1 or w in shared
                or (w not in territory_words and w[:STEM] not in territory_stems)]
        if len(left) == 1:
            nouns.add(left[0])
    return frozenset(nouns)


def _tender(territory: str) -> list[str]:
    from babel.numbers import get_territory_currencies

    try:
        return get_territory_currencies(territory, tender=True)
    except Exception:  # noqa: BLE001 - a region code (CLDR "419") has no currency of its own
        return []


def is_currency_sign(token: str) -> bool:
    """A currency sign of any script ($, €, £, ¥, ₴, ₹): Unicode's category Sc."""
    return len(token) == 1 and unicodedata.category(token) == "Sc"


def numbers(langs: tuple[str, ...]) -> dict[str, str]:
    """Number words of several languages together (the question's and the documents')."""
    return _merged(tuple(dict.fromkeys(langs)), number_words)


def dates(langs: tuple[str, ...]) -> dict[str, str]:
    """Month, weekday and nearby-day names of several languages together."""
    return _merged(tuple(dict.fromkeys(langs)), date_words)


def currencies(langs: tuple[str, ...]) -> frozenset[str]:
    return frozenset().union(*(currency_words(l) for l in dict.fromkeys(langs)))


@functools.lru_cache(maxsize=64)
def _merged(langs: tuple[str, ...], table) -> dict[str, str]:
    merged: dict[str, str] = {}
    for lang in langs:
        for word, value in table(lang).items():
            merged.setdefault(word, value)
    return merged


@functools.lru_cache(maxsize=64)
def _by_value(langs: tuple[str, ...]) -> dict[str, frozenset[str]]:
    """Every word of the languages by its value, numbers and dates alike (their values never clash:
    digits against "month3")."""
    grouped: dict[str, set[str]] = {}
    for table in (numbers(langs), dates(langs)):
        for word, value in table.items():
            grouped.setdefault(value, set()).add(word)
    return {value: frozenset(words) for value, words in grouped.items()}


def same_value(word: str, langs: tuple[str, ...]) -> frozenset[str]:
    """The folded word's other spellings in the languages: "deux" is "2" and "two"; "mars" is "march"."""
    value = numbers(langs).get(word) or dates(langs).get(word) or (word if word.isdigit() else None)
    if value is None:
        return frozenset()
    return _by_value(langs).get(value, frozenset()) | ({value} if value[0].isdigit() else set())


def warm(langs: tuple[str, ...]) -> None:
    """Read the libraries' tables for these languages now (about 0.2 s for two), off the answer's path:
    the CLI does it beside the model's load, so a first question's checks do not wait for them."""
    numbers(langs), dates(langs), currencies(langs)
