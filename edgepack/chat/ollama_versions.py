"""The oldest Ollama a Go TEMPLATE runs on: the first release whose template data and functions
have everything the TEMPLATE uses.

Older Ollama executes such a TEMPLATE until it reaches a field or function it lacks, then stops
with a template error (a TEMPLATE names no version, and Ollama checks none), so the bundle says
which release it needs. Each row was read from ollama's git history: the release that first
has the field in api/types.go or server/ template values, the function in template/template.go,
or `go 1.24` in go.mod (range over an integer). Hand-written: nothing in Ollama states it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# (first release, what the TEMPLATE uses, how it is spelled in the Go text)
_FEATURES: tuple[tuple[tuple[int, ...], str, re.Pattern[str]], ...] = (
    ((0, 6, 0), "range over an integer (Go 1.24)", re.compile(r"\brange\s+(?:\$\w+\s*:=\s*)?len\b")),
    ((0, 9, 0), ".Thinking", re.compile(r"\.Thinking\b")),
    ((0, 9, 0), ".Think / .IsThinkSet", re.compile(r"\.(?:Think|IsThinkSet)\b")),
    ((0, 9, 6), "a tool message's .ToolName", re.compile(r"\.ToolName\b")),
    ((0, 11, 1), ".ThinkLevel", re.compile(r"\.ThinkLevel\b")),
    ((0, 11, 1), "currentDate", re.compile(r"\bcurrentDate\b")),
    ((0, 12, 10), "tool call ids (.ID, .ToolCallID)", re.compile(r"\.(?:ID|ToolCallID)\b")),
    ((0, 13, 3), "yesterdayDate", re.compile(r"\byesterdayDate\b")),
    # a property's own nested properties (the top-level ones, .Parameters.Properties, are older)
    ((0, 13, 5), "a tool property's .Properties", re.compile(r"(?<!Parameters)\.Properties\b")),
    ((0, 14, 0), "ordered tool properties' .ToMap", re.compile(r"\.ToMap\b")),
)


@dataclass(frozen=True)
class OllamaNeed:
    version: str  # "0.14.0"
    uses: tuple[str, ...]  # what in the TEMPLATE needs that release

    def line(self) -> str:
        return f"the Go TEMPLATE needs Ollama {self.version} or later (it uses {', '.join(self.uses)})"


def needed_ollama(go_template: str) -> OllamaNeed | None:
    """The newest release any feature the TEMPLATE uses needs; None when it uses none of them."""
    found = [(version, what) for version, what, pattern in _FEATURES if pattern.search(go_template)]
    if not found:
        return None
    newest = max(version for version, _ in found)
    return OllamaNeed(".".join(map(str, newest)), tuple(what for version, what in found if version == newest))
