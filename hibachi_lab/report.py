"""Reports a person would rather look at than read: Markdown and self-contained HTML with plots."""

from __future__ import annotations

import base64
import html
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # reports are written headless, on laptops, CI and Kaggle alike
import matplotlib.pyplot as plt

from hibachi_lab.files import write_text_atomic


@dataclass
class _Figure:
    name: str
    caption: str
    png: bytes


@dataclass
class Report:
    """Blocks in order: headings, paragraphs, tables and figures; written as report.md + report.html."""

    title: str
    blocks: list[tuple[str, object]] = field(default_factory=list)

    def heading(self, text: str) -> None:
        self.blocks.append(("heading", text))

    def paragraph(self, text: str) -> None:
        self.blocks.append(("paragraph", text))

    def banner(self, text: str) -> None:
        """A warning set apart from the text around it (a quote in Markdown, a framed box in HTML)."""
        self.blocks.append(("banner", text))

    def bullets(self, items: list[str]) -> None:
        self.blocks.append(("bullets", list(items)))

    def table(self, header: list[str], rows: list[list[object]]) -> None:
        self.blocks.append(("table", (header, rows)))

    def figure(self, fig: plt.Figure, name: str, caption: str) -> None:
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        self.blocks.append(("figure", _Figure(name, caption, buffer.getvalue())))

    def write(self, directory: str | os.PathLike, stem: str = "report") -> tuple[Path, Path]:
        """Write ``stem.md`` (figures as PNG files beside it) and a self-contained ``stem.html``."""
        directory = Path(directory)
        figures = directory / "figures"
        figures.mkdir(parents=True, exist_ok=True)
        for kind, content in self.blocks:
            if kind == "figure":
                (figures / f"{content.name}.png").write_bytes(content.png)
        markdown = write_text_atomic(directory / f"{stem}.md", self._markdown())
        page = write_text_atomic(directory / f"{stem}.html", self._html())
        return markdown, page

    def _markdown(self) -> str:
        lines = [f"# {self.title}", ""]
        for kind, content in self.blocks:
            if kind == "heading":
                lines += [f"## {content}", ""]
            elif kind == "paragraph":
                lines += [str(content), ""]
            elif kind == "banner":
                lines += [f"> **{content}**", ""]
            elif kind == "bullets":
                lines += [f"- {item}" for item in content] + [""]
            elif kind == "table":
                header, rows = content
                lines.append("| " + " | ".join(header) + " |")
                lines.append("|" + "---|" * len(header))
                for row in rows:
                    lines.append("| " + " | ".join(_markdown_cell(cell) for cell in row) + " |")
                lines.append("")
            elif kind == "figure":
                lines += [f"![{content.caption}](figures/{content.name}.png)", "", f"*{content.caption}*", ""]
        return "\n".join(lines)

    def _html(self) -> str:
        parts = [
            "<!doctype html><html><head><meta charset='utf-8'>",
            f"<title>{html.escape(self.title)}</title>",
            _STYLE,
            f"<h1>{html.escape(self.title)}</h1>",
        ]
        for kind, content in self.blocks:
            if kind == "heading":
                parts.append(f"<h2>{html.escape(str(content))}</h2>")
            elif kind == "paragraph":
                parts.append(f"<p>{html.escape(str(content))}</p>")
            elif kind == "banner":
                parts.append(f"<p class='banner'><strong>{html.escape(str(content))}</strong></p>")
            elif kind == "bullets":
                parts.append("<ul>" + "".join(f"<li>{html.escape(str(item))}</li>" for item in content) + "</ul>")
            elif kind == "table":
                header, rows = content
                parts.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>")
                for row in rows:
                    parts.append("<tr>" + "".join(f"<td>{html.escape(_text(cell))}</td>" for cell in row) + "</tr>")
                parts.append("</table>")
            elif kind == "figure":
                data = base64.b64encode(content.png).decode()
                parts.append(
                    f"<figure><img alt='{html.escape(content.caption)}' src='data:image/png;base64,{data}'>"
                    f"<figcaption>{html.escape(content.caption)}</figcaption></figure>"
                )
        parts.append("</body></html>")
        return "\n".join(parts)


_STYLE = (
    "<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:1em 0;font-size:0.9em}td,th{border:1px solid #ccc;padding:4px 8px;"
    "text-align:left;vertical-align:top}th{background:#f3f3f3}figure{margin:1.5em 0}img{max-width:100%}"
    "figcaption{color:#555;font-size:0.9em}.banner{border:2px solid #c62828;background:#fdecea;padding:0.6em 1em}"
    "</style></head><body>"
)


def _text(cell: object) -> str:
    if isinstance(cell, float):
        return f"{cell:,.4g}" if abs(cell) < 1000 else f"{cell:,.0f}"
    return str(cell)


def _markdown_cell(cell: object) -> str:
    return _text(cell).replace("|", "\\|").replace("\n", " ")
