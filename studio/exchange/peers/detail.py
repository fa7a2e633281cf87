"""How an imported run shows its origin: the tool, the file and the benchmark it came
from, that it is read-only, whether it was recounted or holds the tool's aggregates
only, and each figure the studio recounted beside the tool's own, with the
definition that differs where they part by more than 1 %.

Everything here came out of someone else's file: each piece of text is escaped for
HTML and Markdown before it is shown.
"""

from __future__ import annotations

import html
import re

MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+!|<>~])")
TOOL_NAMES = {"guidellm": "GuideLLM", "aiperf": "AIPerf", "vllm": "vLLM bench",
              "inference-benchmarker": "inference-benchmarker"}


def safe(value) -> str:
    """Text from a file as Markdown shows it literally: no tags, links or table breaks."""
    text = " ".join(str(value).split())
    return MARKDOWN.sub(r"\\\1", html.escape(text, quote=True))


def origin(run: dict) -> dict | None:
    imported = (run.get("config") or {}).get("imported")
    return imported if isinstance(imported, dict) else None


def tool_label(imported: dict) -> str:
    name = TOOL_NAMES.get(imported.get("tool"), imported.get("tool") or "another tool")
    return f"{name} {imported['version']}" if imported.get("version") else name


def history_status(run: dict) -> str | None:
    """The History table's status cell for an imported run."""
    imported = origin(run)
    if not imported:
        return None
    return f"imported ({tool_label(imported)})" + (", aggregates only" if imported.get("aggregates_only") else "")


def origin_line(run: dict) -> str:
    imported = origin(run) or {}
    how = ("the tool's own aggregates, not recounted (the file holds no per-request times)"
           if imported.get("aggregates_only") else "recounted from its per-request times with the studio's definitions")
    return (f"Imported from **{safe(tool_label(imported))}**: {safe(imported.get('file'))}, "
            f"{safe(imported.get('benchmark'))} ({safe(imported.get('format'))}). Read-only, measured outside the "
            f"studio; its figures are {how}.")


def _number(value) -> str:
    return "–" if value is None else f"{value:.4g}" if isinstance(value, float) else safe(value)


def origin_rows(run: dict) -> list[tuple[str, str]]:
    imported = origin(run) or {}
    rows = [("measured by", safe(tool_label(imported))), ("scenario", safe(imported.get("scenario"))),
            ("engine", safe(imported.get("engine") or "not in the file")),
            ("GPUs from", safe(imported.get("gpus_from"))), ("GPU type", safe(imported.get("gpu_type") or "–")),
            ("requests completed / failed", f"{_number(imported.get('completed'))} / {_number(imported.get('failed'))}")]
    rows += [(f"label {safe(k)}", safe(v)) for k, v in (imported.get("labels") or {}).items()]
    return rows


def comparison_markdown(run: dict) -> str:
    """The recounted figures beside the tool's, one row each."""
    imported = origin(run) or {}
    rows = imported.get("comparison") or []
    if imported.get("aggregates_only"):
        shown = "\n".join(f"| {safe(k)} | {_number(v)} |" for k, v in (imported.get("tool_metrics") or {}).items())
        return f"**{safe(tool_label(imported))}'s own figures (aggregates only)**\n\n| figure | value |\n|---|---|\n{shown}"
    if not rows:
        return ""
    lines = [f"**Recounted by the studio beside {safe(tool_label(imported))}'s own figures** (differences over 1 % "
             "name the definition that differs)", "",
             "| studio figure | studio | tool figure | tool | difference | why |", "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {safe(row['metric'])} | {_number(row['studio'])} | {safe(row['tool_metric'])} | "
                     f"{_number(row['tool'])} | {row['percent']:+.2f} % | {safe(row['cause'] or 'agrees within 1 %')} |")
    return "\n".join(lines)


def imported_parts(run: dict, parts: list[str]) -> list[str]:
    """The run detail's [title, settings, results, times] with an imported run's origin added."""
    if not origin(run):
        return parts
    title, settings, results, times = parts
    origin_table = "\n".join(f"| {k} | {v} |" for k, v in origin_rows(run))
    title = f"{title} · read-only import\n\n{origin_line(run)}"
    settings = f"{settings}\n{origin_table}"
    return [title, settings, f"{results}\n\n{comparison_markdown(run)}", times]


def imported_text(run: dict) -> str | None:
    """The same for `studio show`, as plain text."""
    imported = origin(run)
    if not imported:
        return None
    lines = [f"{'imported from':>18}: {tool_label(imported)}: {imported.get('file')}, {imported.get('benchmark')} "
             f"(read-only; {'aggregates only' if imported.get('aggregates_only') else 'recounted'})"]
    for row in imported.get("comparison") or []:
        why = f"  <- {row['cause']}" if row.get("cause") else ""
        lines.append(f"{row['metric']:>18}: studio {row['studio']:.4g}, tool {row['tool_metric']} {row['tool']:.4g} "
                     f"({row['percent']:+.2f} %){why}")
    return "\n".join(lines)


def imported_badge(sweep: dict) -> str:
    """An imported sweep's badge in the HTML report: who measured it, and that the report's words
    for the studio's own workload (batch, rounds, generate calls) read as its concurrency here."""
    settings = sweep.get("settings") or {}
    if sweep.get("origin") != "import" and not settings.get("imported"):
        return ""
    name = tool_label({"tool": settings.get("tool"), "version": settings.get("version")})
    return (f' <span class="badge">imported: {html.escape(name)}, {html.escape(str(settings.get("file") or ""))}; '
            "measured outside the studio, batch = its concurrency</span>")
