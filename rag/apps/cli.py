"""Command line: `rag index`, `rag ask`, `rag eval`, `rag bench`, `rag serve`, `rag models`."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import click

from rag.errors import RagError
from rag.options import index_option, llm_url_option, model_option, settings_from, top_k_option


def _quiet_libraries() -> None:
    """Offline and quiet, through the variables the libraries read when (and if) they are imported:
    importing transformers only to call its logging setters cost about 1.8 s of every command."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


# rag.retrieval.embedders' bundled models, written out: importing it (numpy, ONNX Runtime) would slow
# every command's start; tests/test_cli.py checks the two agree.
EMBEDDERS = ("all-MiniLM-L6-v2-int8", "all-MiniLM-L6-v2", "multilingual-e5-small-q4")

# Front ends that live in their own modules, imported only when their command runs so that
# `rag ask` does not pay for Gradio or the report code.
LAZY_COMMANDS = {
    "eval": "rag.measure.evaluate:eval_command",
    "bench": "rag.measure.bench:bench_command",
    "serve": "rag.apps.web:serve_command",
}


class RagGroup(click.Group):
    """Turns RagError into one line on stderr and exit status 1, instead of a traceback."""

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(LAZY_COMMANDS))

    def get_command(self, ctx, name):
        if name in LAZY_COMMANDS and name not in self.commands:
            import importlib

            module, attr = LAZY_COMMANDS[name].split(":")
            try:
                return getattr(importlib.import_module(module), attr)
            except ImportError as e:
                # Say what is missing instead of "No such command": a front end's library failed to import.
                raise click.ClickException(f"`rag {name}` needs {e.name or 'a library'} ({e}); "
                                           "run scripts/setup.sh to install what is missing") from None
        return super().get_command(ctx, name)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except RagError as e:
            click.echo(f"error: {e}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)


@click.group(cls=RagGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="rag")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Ask questions about a folder of documents, offline, with cited answers."""
    _quiet_libraries()
    ctx.obj = {}


@main.command()
@click.option("--docs", "docs_dir", type=click.Path(path_type=Path), help="Folder to index, recursively (default: seeds/).")
@index_option
@click.option("--rebuild", is_flag=True, help="Re-embed every file instead of only new or changed ones.")
@click.option("--watch", is_flag=True, help="Keep running and index again whenever a file is added, changed or removed.")
@click.option("--interval", type=click.FloatRange(0.1), default=2.0, show_default=True, help="Seconds between checks with --watch.")
@click.option("--embedder", type=click.Choice(EMBEDDERS), help="Embedding model (RAG_EMBEDDER; default all-MiniLM-L6-v2-int8, "
              "or multilingual-e5-small-q4 for an index built with it). multilingual-e5-small-q4 finds passages across "
              "languages and in non-English documents better, but indexes about 18 times slower; questions use "
              "the index's own embedder. Another embedder than the index's re-embeds every file.")
@click.pass_context
def index(ctx, docs_dir, index_dir, rebuild, watch, interval, embedder):
    """Index .txt, .md, .html, .pdf, .docx, .odt and .epub files; re-runs only embed what changed.
    An interrupted run resumes where it stopped."""
    from rag.ingest.indexing import IndexStats, build_index
    from rag.ingest.workspace import unfinished_embedder
    from rag.retrieval.multilingual import E5_NAME
    from rag.retrieval.remote import built_embedder, embedder_for

    chosen = embedder or os.environ.get("RAG_EMBEDDER")
    settings = settings_from(ctx, docs_dir=docs_dir, index_dir=index_dir, embedder=embedder)
    if embedder and settings.embed_url:
        raise click.UsageError("--embedder picks a bundled model, but RAG_EMBED_URL sends the texts to a server; "
                               "unset RAG_EMBED_URL or leave out --embedder")
    if not chosen and E5_NAME in (built_embedder(settings.index_dir), unfinished_embedder(settings.index_dir)):
        # Built (or being built) with --embedder multilingual-e5-small-q4: a later `rag index` adds,
        # updates or resumes with it, instead of re-embedding the whole folder with the default. (An
        # index of MiniLM's float graph is rebuilt with the default int8 one, as before.)
        settings = settings.replace(embedder=E5_NAME)
    embedder = embedder_for(settings)  # RAG_EMBED_URL's server, else the local model

    def build(rebuild: bool = rebuild) -> IndexStats:
        stats = IndexStats()
        with IndexBar(stats) as bar:
            return build_index(settings, embedder, rebuild=rebuild, progress=bar.update, stats=stats)

    def report(stats: IndexStats) -> None:
        for rel, reason in stats.skipped:
            click.echo(f"warning: skipped {rel}: {reason}", err=True)
        for rel, what in stats.warnings:
            click.echo(f"warning: {rel}: {what}", err=True)
        click.echo(
            f"indexed {stats.files} files, {stats.chunks} chunks in {settings.index_dir} "
            f"({len(stats.added)} added, {len(stats.changed)} changed, {len(stats.removed)} removed, "
            f"{stats.unchanged} unchanged; {stats.embedded_chunks} chunks embedded in {stats.seconds:.1f}s)"
        )

    if not watch:
        report(build())
        return
    import threading

    from rag.errors import RagError
    from rag.ingest.watch import watch as watch_folder

    first = [rebuild]

    def once() -> IndexStats:
        stats, first[0] = build(first[0]), False  # --rebuild applies to the first build only
        return stats

    def on_build(result) -> None:
        if isinstance(result, RagError):
            click.echo(f"error: {result}", err=True)
        else:
            report(result)
        click.echo(f"watching {settings.docs_dir} (Ctrl-C to stop)", err=True)

    import signal

    # Ctrl-C (or a service manager's SIGTERM) is how a watch ends: exit 0. A build it interrupts keeps
    # what it finished in INDEX/.wip and the live index as it was; the next `rag index` resumes there.
    def terminated(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminated)
    building = [False]

    def tracked() -> IndexStats:
        building[0] = True
        try:
            stats = once()
        except RagError:
            building[0] = False
            raise
        building[0] = False  # not in a finally: an interrupted build must still read as one below
        return stats

    try:
        watch_folder(settings, embedder, on_build, threading.Event(), interval=interval, build=tracked)
    except KeyboardInterrupt:
        if building[0]:
            click.echo(f"stopped during a build: {settings.index_dir} is as it was before it; the files embedded "
                       "so far are kept and the next `rag index` resumes from them", err=True)
        else:
            click.echo("stopped watching", err=True)


class IndexBar:
    """tqdm over the files `rag index` reads, with chunks embedded and their rate, on a terminal
    only: into a pipe or a file the summary line alone is written."""

    def __init__(self, stats):
        self.stats, self.bar = stats, None

    def update(self, done: int, total: int) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="file", desc="indexing", disable=not sys.stderr.isatty(), file=sys.stderr,
                            dynamic_ncols=True)
        embed_s = self.stats.stages["embed"]
        self.bar.set_postfix_str(f"{self.stats.embedded_chunks} chunks, "
                                 f"{self.stats.embedded_chunks / embed_s if embed_s else 0:.1f} chunks/s embedding", refresh=False)
        self.bar.n = done
        self.bar.refresh()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()


@main.command()
@click.argument("question")
@index_option
@model_option
@top_k_option
@llm_url_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of streaming text.")
@click.pass_context
def ask(ctx, question, index_dir, model, top_k, llm_url, as_json):
    """Answer QUESTION from the indexed documents, with cited sources."""
    from rag.apps.startup import Stages, import_bm25s_for_search

    stages = Stages()
    import_bm25s_for_search()
    from concurrent.futures import ThreadPoolExecutor

    from rag.answer.assistant import Replace, build_assistant, clean_question, load_model
    from rag.schema import Answer
    from rag.text.language import detect_language

    stages.mark("imports_s")
    question = clean_question(question)  # fail fast, before loading any model
    settings = settings_from(ctx, index_dir=index_dir, model=model, top_k=top_k, llm_url=llm_url)
    assistant = build_assistant(settings)
    with stages.timed("index_load_s"):
        assistant.retriever.data  # a missing or damaged index is reported before any model loads

    def retrieval_side() -> str:
        with stages.timed("language_s"):
            lang = detect_language(question)
        with stages.timed("embedder_load_s"):  # with the question's embedding, which the search reuses
            assistant.retriever.query_vector(question)
        from rag.answer import question_kind
        from rag.text import values

        values.warm((lang, assistant.retriever.data.manifest.language or lang))  # the answer checks' number words
        question_kind.warm(settings.cache_dir, settings.n_threads)  # and what kind of fact the question asks for, read now
        question_kind.asked_kind(question)  # (cached) while the model loads, not after it answers
        return lang

    # The GGUF loads on this thread (llama.cpp reads and repacks it outside the GIL) while a worker
    # loads the embedder and embeds the question: the first token waits for the slower of the two,
    # not their sum. This thread loads because the library silences the process's output streams
    # while it loads; nothing is printed before both are done (load_model's docstring).
    with ThreadPoolExecutor(1, thread_name_prefix="retrieval-side") as pool:
        ready = pool.submit(retrieval_side)
        with stages.timed("model_load_s"):
            load_model(assistant.generator)
        lang = ready.result()
    answer = None
    # Streamed only to a terminal, where what failed the evidence check can be erased: a pipe or a
    # file gets the checked answer alone, never a sentence the engine then took back.
    columns = None if as_json else _terminal_columns()
    shown = ""
    for item in assistant.stream(question, lang=lang):
        if isinstance(item, Answer):
            answer = item
            continue
        stages.mark("first_token_s")
        if columns is not None:
            if isinstance(item, Replace):  # the checked answer takes the streamed one's place, as in the web chat
                click.echo(erase(shown, columns), nl=False, color=True)  # click strips ANSI it thinks unseen
                shown = ""
            shown += item
            click.echo(item, nl=False)
    stages.mark("total_s")
    answer.timings["startup"] = stages.times
    if as_json:
        click.echo(json.dumps(answer.to_dict(), ensure_ascii=False, indent=2))
        return
    click.echo(answer.text if columns is None else "")
    if answer.citations:
        click.echo("\nSources:")
        for c in answer.citations:
            snippet = " ".join(c.text.split())
            click.echo(f"[{c.n}] {c.location} (chars {c.start}-{c.end})\n    {snippet}")
    t = answer.timings
    click.echo(f"\n({t['retrieval_ms']:.0f} ms retrieval, first token {t['ttft_s']:.2f} s, total {t['total_s']:.2f} s)", err=True)


def _terminal_columns() -> int | None:
    """Width of the terminal stdout writes to, or None when it is a pipe or a file."""
    return shutil.get_terminal_size().columns if sys.stdout.isatty() else None


def erase(text: str, columns: int) -> str:
    """ANSI codes taking the cursor back to where `text` began, as a terminal `columns` wide wrapped
    it, and clearing from there. Characters are counted as one column each: a wide (CJK) one makes
    the count short, and a row of the text stays."""
    rows = sum(max(1, -(-len(line) // columns)) for line in text.split("\n"))
    return "\r" + (f"\x1b[{rows - 1}A" if rows > 1 else "") + "\x1b[J"


@main.command()
@click.option("--prepare", is_flag=True, help="Assemble, verify (and re-quantize) the default model and export the embedder now.")
@click.option("--preset", "presets", multiple=True, help="Preset to prepare (repeatable).")
@click.pass_context
def models(ctx, prepare, presets):
    """List the bundled model presets and where they are cached."""
    from rag.generation.models import PRESETS, is_verified, resolve_model, runtime_path

    settings = settings_from(ctx)
    for name in presets or (["default"] if prepare else []):
        if name not in PRESETS:
            raise click.BadParameter(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
        path = resolve_model(name, settings.cache_dir, requantize=settings.requantize)
        click.echo(f"{name}: ready at {path}")
    if prepare:
        from rag.retrieval.embedders import bundled_minilm_dir, ensure_int8, ensure_onnx

        click.echo(f"embedder: ready at {ensure_onnx(bundled_minilm_dir(), settings.cache_dir)}")
        click.echo(f"embedder, int8: ready at {ensure_int8(bundled_minilm_dir(), settings.cache_dir)}")
        from rag.answer import question_kind

        question_kind.warm(settings.cache_dir, settings.n_threads)  # embeds the answer-kind examples once, into the cache
    if prepare or presets:
        return
    for p in PRESETS.values():
        path = Path(settings.cache_dir) / "models" / p.filename
        state = "ready" if is_verified(path, p) else "not assembled yet"
        if p.runtime_type and settings.requantize:
            runtime = runtime_path(p, settings.cache_dir)
            state += f"; runs as {p.runtime_type} ({'ready' if runtime.is_file() else 'made on first use'})"
        click.echo(f"{p.name:8} {p.filename} ({p.size / 1e6:.0f} MB) {state}")


if __name__ == "__main__":
    main()
