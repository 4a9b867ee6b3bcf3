"""The pre-flight's result types: a :class:`Report` of problems (each with its fix), warnings and passed checks."""

from __future__ import annotations

from dataclasses import dataclass, field


class PreflightError(Exception):
    """The overrides do not compose with verl's config, or hold values no later check could read."""

    def __init__(self, problem: str, fix: str, more: list[tuple[str, str]] | None = None) -> None:
        super().__init__(problem)
        self.problem, self.fix = problem, fix
        self.problems = [(problem, fix), *(more or [])]

    def render(self) -> str:
        lines = ["pre-flight FAILED"]
        for problem, fix in self.problems:
            lines += [f"  ✗ {problem}", f"    fix: {fix}"]
        return "\n".join(lines)


@dataclass
class Report:
    """Problems (each with a fix), warnings and passed checks, in the order they were found."""

    problems: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def fail(self, problem: str, fix: str) -> None:
        self.problems.append((problem, fix))

    def render(self) -> str:
        lines = [f"pre-flight {'passed' if self.ok else 'FAILED'} ({len(self.problems)} problem(s))"]
        lines += [f"  ✓ {p}" for p in self.passed]
        lines += [f"  ! {w}" for w in self.warnings]
        for problem, fix in self.problems:
            lines += [f"  ✗ {problem}", f"    fix: {fix}"]
        return "\n".join(lines)

