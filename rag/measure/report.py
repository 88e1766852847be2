"""The self-contained HTML report of an eval run: tables, inline-SVG charts, failures with their
answers and passages. Every piece of document or answer text is escaped; nothing is fetched."""

from __future__ import annotations

import html
import json

from rag.measure.metrics import LOWER_IS_BETTER, METRIC_KEYS
from rag.schema import location

RATE_KEYS = ("hit_at_k", "recall_at_k", "mrr", "support_at_k", "answer_accuracy", "token_f1", "language_match",
             "refusal_rate_unanswerable", "false_refusal_rate", "citation_validity", "citation_precision", "citation_recall")

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:#17692c;font-weight:600}.fail{color:#b3261e;font-weight:600}
.better{color:#17692c}.worse{color:#b3261e}
.failure{border:1px solid #e3c4c0;border-radius:6px;padding:8px 12px;margin:12px 0;background:#fffafa}
.passage{white-space:pre-wrap;background:#f7f7f7;border-left:3px solid #ccc;padding:4px 8px;margin:4px 0;font-size:13px}
.passage.gold{border-left-color:#2e7d32}.answer{white-space:pre-wrap;background:#eef4ff;padding:6px 8px}
.muted{color:#666}code{background:#f4f4f4;padding:0 3px}
"""


def e(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def fmt(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def bar_chart(summary: dict, keys=RATE_KEYS) -> str:
    """Horizontal bars for the 0..1 metrics, as inline SVG."""
    rows = [(k, summary.get(k)) for k in keys if summary.get(k) is not None]
    if not rows:
        return "<p class=muted>No rate metrics in this run.</p>"
    label_w, bar_w, row_h = 200, 420, 22
    height = row_h * len(rows) + 6
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + bar_w + 70}" height="{height}" role="img" aria-label="metrics">']
    for i, (k, v) in enumerate(rows):
        y = i * row_h + 3
        colour = "#c0504d" if k in LOWER_IS_BETTER else "#4f81bd"
        parts.append(f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end" font-size="12">{e(k)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y}" width="{bar_w}" height="{row_h - 6}" fill="#eee"/>')
        parts.append(f'<rect x="{label_w}" y="{y}" width="{bar_w * max(0.0, min(1.0, v)):.1f}" height="{row_h - 6}" fill="{colour}"/>')
        parts.append(f'<text x="{label_w + bar_w + 6}" y="{y + 14}" font-size="12">{v:.3f}</text>')
    parts.append("</svg>")
    return "".join(parts)


def histogram(values: list[float], label: str, bins: int = 12) -> str:
    """Counts of values per equal-width bin, as an inline SVG column chart."""
    values = [float(v) for v in values if v is not None]
    if not values:
        return f"<p class=muted>No {e(label)} measured in this run.</p>"
    lo, hi = min(values), max(values)
    width = (hi - lo) / bins or 1.0
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, int((v - lo) / width))] += 1
    chart_w, chart_h, pad = 560, 160, 30
    col = chart_w / bins
    top = max(counts)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{chart_w + 2 * pad}" height="{chart_h + 2 * pad}" role="img" aria-label="{e(label)}">']
    for i, c in enumerate(counts):
        h = chart_h * c / top
        x = pad + i * col
        parts.append(f'<rect x="{x + 1:.1f}" y="{pad + chart_h - h:.1f}" width="{col - 2:.1f}" height="{h:.1f}" fill="#4f81bd"><title>{c}</title></rect>')
        if c:
            parts.append(f'<text x="{x + col / 2:.1f}" y="{pad + chart_h - h - 3:.1f}" text-anchor="middle" font-size="11">{c}</text>')
    for i in range(0, bins + 1, max(1, bins // 4)):
        x = pad + i * col
        parts.append(f'<text x="{x:.1f}" y="{pad + chart_h + 14}" text-anchor="middle" font-size="11">{lo + i * width:.2f}</text>')
    parts.append(f'<line x1="{pad}" y1="{pad + chart_h}" x2="{pad + chart_w}" y2="{pad + chart_h}" stroke="#999"/>')
    parts.append(f'<text x="{pad + chart_w / 2}" y="{chart_h + 2 * pad - 2}" text-anchor="middle" font-size="12">{e(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def summary_table(summary: dict, comparison: dict | None) -> str:
    deltas = (comparison or {}).get("deltas", {})
    head = "<tr><th>metric</th><th>value</th>" + ("<th>before</th><th>delta</th>" if comparison else "") + "</tr>"
    rows = []
    for k in ("n", "n_answerable", "n_unanswerable", "n_errors", "pass_rate", *METRIC_KEYS, "retrieval_ms_p50"):
        if k not in summary:
            continue
        cells = f"<td>{e(k)}</td><td class=num>{e(fmt(summary[k]))}</td>"
        if comparison:
            d = deltas.get(k)
            if d:
                cls = "" if not d["delta"] else ("worse" if (d["delta"] > 0) == (k in LOWER_IS_BETTER) else "better")
                cells += f"<td class=num>{e(fmt(d['before']))}</td><td class='num {cls}'>{d['delta']:+.3f}</td>"
            else:
                cells += "<td></td><td></td>"
        rows.append(f"<tr>{cells}</tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def question_table(records: list[dict], retrieval_only: bool) -> str:
    cols = ["id", "lang", "answerable", "result", "hit", "rr"] + ([] if retrieval_only else ["refused", "f1", "latency s"]) + ["question", "why"]
    rows = []
    for r in records:
        q, m = r["question"], r["metrics"]
        result = '<span class=pass>pass</span>' if m["passed"] else '<span class=fail>FAIL</span>'
        cells = [f"<td><a href='#q-{e(q['id'])}'>{e(q['id'])}</a></td>" if not m["passed"] else f"<td>{e(q['id'])}</td>",
                 f"<td>{e(q.get('lang') or '')}</td>", f"<td>{e(fmt(q['answerable']))}</td>", f"<td>{result}</td>",
                 f"<td>{e(fmt(m.get('hit')))}</td>", f"<td class=num>{e(fmt(m.get('rr')))}</td>"]
        if not retrieval_only:
            cells += [f"<td>{e(fmt(m.get('refused')))}</td>", f"<td class=num>{e(fmt(m.get('f1')))}</td>",
                      f"<td class=num>{e(fmt(m.get('total_s')))}</td>"]
        cells += [f"<td>{e(q['question'])}</td>", f"<td>{e('; '.join(m.get('reasons', [])))}</td>"]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return "<table><tr>" + "".join(f"<th>{e(c)}</th>" for c in cols) + "</tr>" + "".join(rows) + "</table>"


def failure_block(r: dict, retrieval_only: bool) -> str:
    from rag.measure.metrics import is_gold

    q, m, a = r["question"], r["metrics"], r.get("answer") or {}
    out = [f"<div class=failure id='q-{e(q['id'])}'><h3>{e(q['id'])}: {e(q['question'])}</h3>",
           f"<p><b>why:</b> {e('; '.join(m.get('reasons', [])))}</p>"]
    if q["answerable"]:
        out.append(f"<p><b>reference:</b> {e(q.get('answer'))}<br><b>keywords:</b> {e(', '.join(q.get('keywords', [])))}"
                   f"<br><b>gold sources:</b> {e(', '.join(q.get('sources', [])))}</p>")
    else:
        out.append("<p><b>expected:</b> a refusal (the documents do not answer this)</p>")
    if not retrieval_only and a:
        out.append(f"<p><b>answer</b> ({e(a.get('language'))}, {e(fmt(m.get('total_s')))} s):</p><div class=answer>{e(a.get('answer'))}</div>")
        if r.get("raw_answer") is not None and r["raw_answer"].strip() != (a.get("answer") or "").strip():
            out.append(f"<details><summary>raw model output</summary><div class=answer>{e(r['raw_answer'])}</div></details>")
    passages = a.get("retrieved", [])
    if passages:
        out.append("<p><b>passages given to the model</b> (numbered as in the prompt; rank = retrieval rank):</p>")
        for n, p in enumerate(passages, start=1):
            gold = " gold" if is_gold(p["source"], q.get("sources", [])) else ""
            where = location(p["source"], p.get("page"), p.get("page_end"), p.get("section"))
            out.append(f"<div class='passage{gold}'><b>[{n}] {e(where)}</b> rank {e(p.get('rank'))}, "
                       f"chars {e(p.get('start'))}-{e(p.get('end'))}\n{e(p.get('text'))}</div>")
    out.append("</div>")
    return "".join(out)


def compare_section(comparison: dict) -> str:
    out = [f"<p>Against <code>{e(comparison['other'])}</code>.</p>"]
    for w in comparison.get("warnings", []):
        out.append(f"<p class=worse>{e(w)}</p>")
    for title, key in (("Now failing", "now_failing"), ("Now passing", "now_passing"), ("Retrieval lost", "hit_lost"),
                       ("Retrieval gained", "hit_gained"), ("Only in this run", "added"), ("Only in the other run", "removed")):
        ids = comparison.get(key, [])
        if ids:
            out.append(f"<p><b>{e(title)}:</b> {e(', '.join(ids))}</p>")
    return "".join(out)


def render_report(summary: dict, records: list[dict], comparison: dict | None = None) -> str:
    retrieval_only = bool(summary.get("retrieval_only"))
    failures = [r for r in records if not r["metrics"]["passed"]]
    settings = summary.get("settings", {})
    model = summary.get("model", {})
    meta = {"questions": summary.get("questions_file"), "started": summary.get("started_at"),
            "duration s": summary.get("duration_s"), "mode": "retrieval only" if retrieval_only else "full",
            "model": model.get("label"), "model sha256": model.get("sha256"), "index": settings.get("index_dir"),
            "top_k": settings.get("top_k"), "embedder": settings.get("embedder")}
    parts = [
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>",
        # Self-contained: no scripts, no remote assets; only inline styles and images.
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">",
        f"<title>rag eval – {e(summary.get('started_at'))}</title><style>{CSS}</style></head><body>",
        f"<h1>rag eval report</h1><table>{''.join(f'<tr><th>{e(k)}</th><td>{e(v)}</td></tr>' for k, v in meta.items())}</table>",
        "<h2>Summary</h2>", summary_table(summary, comparison), bar_chart(summary),
    ]
    if comparison:
        parts += ["<h2>Compared with an earlier run</h2>", compare_section(comparison)]
    if not retrieval_only:
        parts += ["<h2>Latency</h2>",
                  histogram([r["metrics"].get("total_s") for r in records], "total answer time (s)"),
                  histogram([r["metrics"].get("ttft_s") for r in records], "time to first token (s)")]
    parts += [f"<h2>Questions ({len(records)}, {len(failures)} failed)</h2>", question_table(records, retrieval_only),
              f"<h2>Failures ({len(failures)})</h2>"]
    parts += [failure_block(r, retrieval_only) for r in failures] or ["<p>None.</p>"]
    parts.append(f"<h2>Settings</h2><pre>{e(json.dumps(settings, indent=1, ensure_ascii=False))}</pre></body></html>")
    return "\n".join(parts)
