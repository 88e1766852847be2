"""The `rag bench` command: reads the questions, runs the mode its options choose, writes the report.

A mode is a module with OPTIONS (its own click options), `selected(options)` (do these options ask
for it?) and `run(job)` -> (report name, report, Markdown). The first selected mode in MODES runs,
the answers mode when none is; a new mode is a new module and one more entry in MODES.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import click

from rag.measure.bench import answers, chat_app, cold, retrieval, sweep
from rag.measure.bench import big_folder, embedding, index_build, scale_store
from rag.measure.bench.common import DEFAULT_QUESTIONS, read_questions, report_header, write_outputs
from rag.options import index_option, model_option, settings_from, top_k_option

MODES = (chat_app, cold, scale_store, retrieval, sweep, embedding, big_folder, index_build)
DEFAULT_MODE = answers


@dataclass
class Job:
    """One `rag bench` run as a mode sees it: the questions, every option, and the engine on demand."""

    ctx: click.Context
    questions: list[tuple[str, str]]
    options: dict
    build_s: float = 0.0
    _assistant: object = field(default=None, repr=False)

    def say(self, message: str) -> None:
        click.echo(message, err=True)

    def header(self) -> dict:
        return report_header(len(self.questions))

    def assistant(self):
        """The engine of `rag ask` for these options, built once (the models load on first use)."""
        if self._assistant is None:
            from rag.answer.assistant import build_assistant

            o = self.options
            settings = settings_from(self.ctx, index_dir=o["index_dir"], model=o["model"], top_k=o["top_k"])
            t0 = time.perf_counter()
            assistant = build_assistant(settings)
            self.build_s = time.perf_counter() - t0
            if o["no_prompt_cache"] and hasattr(assistant.generator, "prompt_cache_dir"):
                assistant.generator.prompt_cache_dir = None
            self._assistant = assistant
        return self._assistant


def mode_options(command):
    """Every mode's own options, in MODES order after the default mode's."""
    for mode in reversed((DEFAULT_MODE, *MODES)):
        for option in reversed(mode.OPTIONS):
            command = option(command)
    return command


@click.command("bench")
@click.argument("questions_file", required=False, type=click.Path(path_type=Path))
@index_option
@model_option
@top_k_option
@click.option("--limit", type=click.IntRange(1), help="Only the first N questions.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("runs/bench"), show_default=True,
              help="Folder for bench.json and bench.md (or sweep.*, retrieval.*, app.*).")
@click.option("--markdown", "markdown_file", type=click.Path(path_type=Path),
              help="Also write the table into this Markdown file, replacing its previous generated section.")
@click.option("--no-prompt-cache", is_flag=True, help="Do not use the disk prompt cache.")
@mode_options
@click.pass_context
def bench_command(ctx, questions_file, limit, out_dir, markdown_file, **options):
    """Time questions through the engine of `rag ask`: retrieval, first token, latency, tokens/s
    against llama.cpp's own counters, memory; cold and warm. Default questions: eval/questions.jsonl."""
    questions = read_questions(questions_file or DEFAULT_QUESTIONS)
    if limit:
        questions = questions[:limit]
    mode = next((m for m in MODES if m.selected(options)), DEFAULT_MODE)
    name, report, md = mode.run(Job(ctx, questions, options))
    write_outputs(out_dir, name, report, md, markdown_file)
    click.echo(md)
