"""Numbers, dates and currencies by value, from num2words and Babel by language code (rag.text.values)."""

from rag.text import values


def test_number_words_of_languages_nobody_wrote_down():
    assert values.number_words("de")["zwei"] == "2" and values.number_words("es")["dos"] == "2"
    assert values.number_words("fr")["milliards"] == values.number_words("en")["billion"] == "1000000000"
    # Spanish writes a billion "mil millones": "millones" stays a million, not a billion.
    assert values.number_words("es")["millones"] == "1000000"
    assert "un" not in values.number_words("fr") and "one" not in values.number_words("en")  # articles


def test_same_value_across_the_question_and_documents_languages():
    assert values.same_value("deux", ("fr", "en")) == {"2", "deux", "two"}
    assert values.same_value("2", ("de",)) == {"2", "zwei"}
    assert values.same_value("mars", ("fr", "en")) == {"mars", "march"}
    assert "morgen" in values.same_value("demain", ("fr", "de"))  # CLDR's relative day names
    assert values.same_value("plan", ("fr", "en")) == frozenset()


def test_currency_nouns_without_their_adjectives():
    en, fr, es = (values.currency_words(lang) for lang in ("en", "fr", "es"))
    assert {"euro", "dollars", "franc", "hryvnia", "yen", "yuan"} <= en
    assert {"livres", "euros", "hryvnias"} <= fr and {"dolares", "libras"} <= es
    # Words of a country's or region's name are no currency: "three new factories" is no sum of money.
    assert not {"new", "south", "african", "islands", "korean", "ukrainian"} & en
    assert not {"nouveau", "sud"} & fr


def test_a_language_the_libraries_lack_still_works():
    assert values.number_words("zz") == {} and values.date_words("zz") == {} and values.currency_words("zz") == frozenset()
    assert values.same_value("7", ("zz",)) == {"7"}
    assert values.is_currency_sign("₴") and values.is_currency_sign("$") and not values.is_currency_sign("%")
