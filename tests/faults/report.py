"""What a scenario saw: its figures, its expectations met or not, and the evidence behind a miss
(request ids, states, errors, where the logs are), printed as plain text."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

#: Log lines worth counting when something went wrong.
LOG_MARKERS = ("Traceback", "ERROR", "WARNING")


@dataclasses.dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclasses.dataclass
class Report:
    scenario: str
    figures: dict[str, Any] = dataclasses.field(default_factory=dict)
    checks: list[Check] = dataclasses.field(default_factory=list)
    evidence: list[str] = dataclasses.field(default_factory=list)

    def record(self, **figures: Any) -> None:
        self.figures.update(figures)

    def expect(self, name: str, ok: bool, detail: str = "") -> bool:
        self.checks.append(Check(name, bool(ok), detail))
        return bool(ok)

    def note(self, line: str) -> None:
        self.evidence.append(line)

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def render(self) -> str:
        lines = [f"== {self.scenario}: {'PASS' if self.ok else 'FAIL'}"]
        lines += [f"   {name}: {_figure(value)}" for name, value in self.figures.items()]
        for check in self.checks:
            detail = f" ({check.detail})" if check.detail else ""
            lines.append(f"   [{'ok' if check.ok else 'FAILED'}] {check.name}{detail}")
        lines += [f"   | {line}" for line in self.evidence]
        return "\n".join(lines)


def _figure(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, dict):
        return ", ".join(f"{key} {_figure(count)}" for key, count in value.items()) or "none"
    return str(value)


def log_summary(data_dir: Path) -> list[str]:
    """For each log of the cluster, how many lines carry each marker; where to read them."""
    lines = [f"logs in {data_dir}:"]
    for log in sorted(Path(data_dir).glob("**/*.log")):
        text = log.read_text(errors="replace")
        counts = ", ".join(f"{text.count(marker)} {marker}" for marker in LOG_MARKERS)
        lines.append(f"  {log.relative_to(data_dir)}: {counts}")
    return lines
