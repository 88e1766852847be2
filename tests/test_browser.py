"""The web chat in a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright)."""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
from conftest import ROOT, make_assistant
from helpers import served_app

from rag.answer.followup import REWRITE_SYSTEM
from rag.config import Settings
from rag.generation.llama import FakeGenerator
from rag.ingest.indexing import build_index
from rag.retrieval.embedders import FakeEmbedder

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
# Without these, Chromium's background services try the network, which this machine does not have.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
HOSTILE = (
    "Le rapport secret décrit la cible <img src=\"http://evil.example/x.png\" onerror=\"alert(1)\"> "
    "<script>alert('pwned')</script> ![pixel](http://evil.example/p.png) [cliquez](http://evil.example/a) {{value}} ${1+1}."
)


class ChatGenerator(FakeGenerator):
    """The fake, slowed to a visible stream, answering rewrite prompts with `rewrite`."""

    def __init__(self, answer: str, rewrite: str = "", delay: float = 0.05):
        super().__init__([answer])
        self.answer, self.rewrite, self.delay = answer, rewrite, delay

    def stream(self, messages, max_tokens, temperature=0.0):
        self.replies = [self.rewrite if messages[0]["content"] == REWRITE_SYSTEM else self.answer]
        for piece in super().stream(messages, max_tokens, temperature):
            time.sleep(self.delay)
            yield piece


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is not installed (apt-get install chromium); CI installs it")
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
    yield b
    b.close()
    pw.stop()


@pytest.fixture
def app(corpus, gradio_tmp):
    (Path(corpus.docs_dir) / "rapport.txt").write_text(HOSTILE, encoding="utf-8")
    build_index(corpus, FakeEmbedder())
    assistant, _ = make_assistant(corpus, ["x"])
    gen = ChatGenerator("Rustem Umerov est le ministre de la défense [2].",
                        rewrite="ses → Rustem Umerov: Quels contrats Rustem Umerov a-t-il signés ?")
    assistant.generator = gen
    with served_app(assistant, corpus) as (url, _):
        yield url, gen, corpus


def open_chat(browser_or_context, url: str):
    page = browser_or_context.new_page()
    page.set_viewport_size({"width": 1400, "height": 900})
    page.requests = []
    page.dialogs = []
    page.on("request", lambda r: page.requests.append(r.url))
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    page.goto(url)
    page.wait_for_selector("#rag-question textarea")
    return page


def ask(page, question: str) -> None:
    page.fill("#rag-question textarea", question)
    page.press("#rag-question textarea", "Enter")


def bot_texts(page) -> list[str]:
    return page.eval_on_selector_all("#rag-chat [data-testid='bot']", "els => els.map(e => e.innerText)")


def wait_for_answer(page, turn: int, timeout: float = 30) -> None:
    page.wait_for_selector(f"#rag-sources [id^='rag-src-{turn}-']", timeout=timeout * 1000)


def external_requests(page) -> list[str]:
    return [u for u in page.requests if urlparse(u).hostname not in ("127.0.0.1", "localhost", None)
            and not u.startswith(("data:", "blob:"))]


def test_streamed_answer_with_a_citation_linked_to_its_source_passage(browser, app):
    url, gen, corpus = app
    gen.delay = 0.25
    page = open_chat(browser, url)
    ask(page, "Qui est le ministre de la défense ?")
    seen = []
    deadline = time.time() + 30
    while time.time() < deadline and not page.query_selector("#rag-sources .rag-source"):
        texts = bot_texts(page)
        if texts and texts[-1].strip() not in ("", "…") and (not seen or seen[-1] != texts[-1]):
            seen.append(texts[-1])
        time.sleep(0.1)
    wait_for_answer(page, 0)
    final = bot_texts(page)[-1]
    assert "Rustem Umerov est le ministre de la défense" in final
    assert any(0 < len(s) < len(final) and final.startswith(s[:20]) for s in seen), f"not streamed: saw {seen}"

    link = page.query_selector("#rag-chat a.rag-cite")
    # Passages are numbered as shown to the model; the link goes to the source of its own number.
    n = re.fullmatch(r"\[(\d)\]", link.inner_text()).group(1) if link else None
    target = link.get_attribute("href")
    assert n and target == f"#rag-src-0-{n}"
    source = page.query_selector(f"#rag-sources {target}")
    passage = Path(corpus.docs_dir, "beta.md").read_text(encoding="utf-8")
    assert "beta.md" in source.inner_text() and "Rustem Umerov est le ministre de la défense." in source.inner_text()
    assert "Rustem Umerov" in source.query_selector("mark").inner_text(), "the supporting sentence is highlighted"
    assert "Rustem Umerov est le ministre de la défense." in passage
    link.click()
    assert page.evaluate("location.hash") == target
    assert source.is_visible()
    assert not external_requests(page)
    page.screenshot(path=str(corpus.docs_dir.parent / "chat.png"))
    page.close()


def test_document_markup_and_links_stay_inert_text(browser, app):
    url, gen, _ = app
    # Markup the model copies from the document's sentence about the question: grounded, so the engine
    # keeps it, and it must show as typed.
    gen.answer = 'Le rapport secret décrit la cible ![pixel](http://evil.example/p.png) <img src="http://evil.example/x.png"> [1].'
    page = open_chat(browser, url)
    ask(page, "Que décrit le rapport secret ?")
    wait_for_answer(page, 0)
    sources = page.inner_text("#rag-sources")
    assert "<script>alert('pwned')</script>" in sources and '<img src="http://evil.example/x.png"' in sources
    assert "{{value}} ${1+1}" in sources
    shown = bot_texts(page)[-1]
    assert "![pixel](http://evil" in shown and '<img src="http://evil' in shown, "model output shown as typed"
    for area in ("#rag-chat", "#rag-sources"):
        assert page.query_selector_all(f"{area} .message-content img, {area} .rag-source img") == []
        assert page.query_selector_all(f"{area} script") == []
        hrefs = page.eval_on_selector_all(f"{area} a[href]", "els => els.map(e => e.getAttribute('href'))")
        # In-page citation anchors, and the engine's own "open" links to an indexed file's /source/ route.
        assert all(h.startswith("#rag-src-") or (h.startswith("/source/") and "//" not in h) for h in hrefs), hrefs
    time.sleep(0.5)
    assert not page.dialogs and not external_requests(page)
    page.close()


def test_stop_button_stops_the_answer_and_the_next_question_works(browser, app):
    url, gen, _ = app
    gen.answer = " ".join(["Rustem Umerov est le ministre de la défense [2]."] * 12)
    gen.delay = 0.2
    page = open_chat(browser, url)
    ask(page, "Qui est le ministre de la défense ?")
    page.wait_for_function("() => { const b = document.querySelectorAll(\"#rag-chat [data-testid='bot']\");"
                           " return b.length && b[b.length - 1].innerText.length > 40; }", timeout=30000)
    page.click("#rag-stop")
    time.sleep(1.0)
    stopped = bot_texts(page)[-1]
    time.sleep(1.5)
    assert bot_texts(page)[-1] == stopped and len(stopped) < len(gen.answer), "no more text after Stop"
    gen.answer, gen.delay = "Rustem Umerov est le ministre de la défense [2].", 0.02
    ask(page, "Qui est le ministre de la défense ?")
    wait_for_answer(page, 1)  # the stopped question keeps its turn number
    assert bot_texts(page)[-1].startswith("Rustem Umerov") and len(bot_texts(page)) == 2
    page.close()


def test_two_tabs_keep_separate_conversations(browser, app):
    url, gen, _ = app
    gen.delay = 0.01
    context = browser.new_context()  # two tabs of one browser: same cookies and storage
    try:
        tab_a, tab_b = (open_chat(context, url) for _ in range(2))
        ask(tab_a, "Qui est le ministre de la défense ?")
        wait_for_answer(tab_a, 0)
        ask(tab_b, "Et ses contrats ?")
        wait_for_answer(tab_b, 0)
        assert "Question as searched" not in tab_b.inner_text("#rag-chat"), "tab B has no earlier turn to lean on"
        assert "Qui est le ministre" not in tab_b.inner_text("#rag-chat")
        ask(tab_a, "Et ses contrats ?")
        wait_for_answer(tab_a, 1)
        assert "Question as searched" in tab_a.inner_text("#rag-chat")
        assert "Quels contrats" not in tab_a.inner_text("#rag-chat"), "folded until asked for"
        tab_a.click("#rag-chat [role=button]:has-text('Question as searched')")
        assert "Quels contrats Rustem Umerov a-t-il signés ?" in tab_a.inner_text("#rag-chat")
        assert len(bot_texts(tab_b)) == 1
    finally:
        context.close()


def test_uploaded_document_is_indexed_and_answerable(browser, app, tmp_path):
    url, gen, corpus = app
    gen.delay = 0.01
    gen.answer = "Le barrage de Vouglans retient 605 millions de mètres cubes d'eau [1]."
    new = tmp_path / "vouglans.txt"
    new.write_text("Le barrage de Vouglans retient 605 millions de mètres cubes d'eau dans le Jura.", encoding="utf-8")
    page = open_chat(browser, url)
    page.get_by_role("tab", name="Documents").click()
    page.set_input_files("#rag-upload input[type=file]", str(new))
    page.wait_for_selector("#rag-upload :text('vouglans.txt')", timeout=30000)
    page.click("#rag-add")
    page.wait_for_function("() => document.querySelector('#rag-index-log').innerText.includes('Added')", timeout=60000)
    assert "1 added" in page.inner_text("#rag-index-log")
    assert (Path(corpus.docs_dir) / "vouglans.txt").read_text(encoding="utf-8") == new.read_text(encoding="utf-8")
    page.get_by_role("tab", name="Chat").click()
    ask(page, "Combien d'eau retient le barrage de Vouglans ?")
    wait_for_answer(page, 0)
    assert "vouglans.txt" in page.inner_text("#rag-sources")
    page.close()


@pytest.mark.slow
def test_real_model_answer_with_sources_screenshot(browser, seed_index, tmp_path, gradio_tmp):
    """A real answered question and its sources panel; RAG_SCREENSHOT=docs/screenshot.png keeps it."""
    from rag.answer.assistant import build_assistant

    settings = Settings.from_env(docs_dir=ROOT / "seeds", index_dir=seed_index)
    with served_app(build_assistant(settings), settings) as (url, _):
        page = open_chat(browser, url)
        ask(page, os.environ.get("RAG_SCREENSHOT_QUESTION",
                                 "Which Ukrainian defence minister announced the letter of intent with France, and on which platform?"))
        wait_for_answer(page, 0, timeout=600)
        page.wait_for_timeout(500)
        assert page.query_selector("#rag-chat a.rag-cite") is not None
        shot = tmp_path / "screenshot.png"
        page.screenshot(path=str(shot), full_page=False)
        assert shot.stat().st_size > 10_000
        if os.environ.get("RAG_SCREENSHOT"):
            shutil.copyfile(shot, os.environ["RAG_SCREENSHOT"])
        page.close()
