"""The result rows and the Markdown report."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Row:
    metric: str
    qwen_core: str = "—"
    raw: str = "—"
    gradio_client: str = "—"
    ratio: str = "—"
    goal: str = "—"
    met: bool | None = None  # None: information only


@dataclass
class Section:
    name: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms"


def sec(seconds: float) -> str:
    return f"{seconds:.2f} s"


def us(seconds: float) -> str:
    return f"{seconds * 1e6:.1f} µs"


def mb(nbytes: float) -> str:
    return f"{nbytes / 1e6:.1f} MB"


def x(ratio: float) -> str:
    return f"{ratio:.2f}x"


def _mark(met: bool | None) -> str:
    return "—" if met is None else ("✅ yes" if met else "❌ no")


def render(machine: dict[str, str], sections: list[Section], settings: str) -> str:
    lines = ["# qwen_core benchmarks", ""]
    lines.append(" · ".join(f"**{k}** {v}" for k, v in machine.items()))
    lines += ["", settings, ""]
    lines.append("| metric | qwen_core | raw | gradio_client | ratio / overhead | goal | met? |")
    lines.append("|---|---|---|---|---|---|---|")
    for section in sections:
        for row in section.rows:
            lines.append(
                f"| {row.metric} | {row.qwen_core} | {row.raw} | {row.gradio_client} | "
                f"{row.ratio} | {row.goal} | {_mark(row.met)} |"
            )
    notes = [(s.name, n) for s in sections for n in s.notes]
    if notes:
        lines += ["", "Notes:", ""]
        lines += [f"- **{name}**: {note}" for name, note in notes]
    timing = ", ".join(f"{s.name} {s.seconds:.0f} s" for s in sections)
    lines += ["", f"Run time: {timing}.", ""]
    return "\n".join(lines)


def write(text: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
