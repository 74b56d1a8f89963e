"""The chat stage: for one model's chat template, how each runtime renders chat and the proof.

`analyze_chat` runs once per bundle (the template is the same in every quant), before any slow
step, and returns a ChatReport: the three paths (llama.cpp Jinja, Ollama Go TEMPLATE, Ollama
RENDERER/PARSER), which one current and older Ollama will use with the Modelfile edgepack
writes, the stops, the SYSTEM it must carry, and one-line warnings. It never raises for a bad
template: a template edgepack cannot handle is a warning and "not handled".
"""

from __future__ import annotations

import datetime
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from edgepack.chat.proof import (
    EXACT, NOT_CHECKED, NOT_HANDLED, PathResult, ReferenceRenders, prove_go, template_capabilities,
)
from edgepack.chat.proof_llama_cpp import prove_llama_cpp
from edgepack.chat.ollama_versions import needed_ollama
from edgepack.chat.renderers import OLLAMA_VERSION, match_renderer
from edgepack.chat.sandbox import RenderError, RenderJob, SpecialTokens, TemplateBoundError, render_many
from edgepack.chat.text_edits import describe_edits
from edgepack.chat.conversations import GO_PROOF_PROBES, PROOF_PROBES, Message
from edgepack.errors import ChatTemplateError

LLAMA_CPP, GO_TEMPLATE, RENDERER = "llama_cpp_jinja", "ollama_go_template", "ollama_renderer"
PATH_TITLES = {LLAMA_CPP: "llama.cpp Jinja", GO_TEMPLATE: "Ollama Go TEMPLATE", RENDERER: "Ollama RENDERER/PARSER"}
SCHEMA = 1
THINK_TAGS = ("<think>", "</think>")
PLAIN_PROBES = {name for name, p in {**PROOF_PROBES, **GO_PROOF_PROBES}.items() if p.mode == "plain"}


@dataclass
class ChatReport:
    """Per bundle: how chat is rendered in each runtime and how that was proven (manifest section)."""

    template_sha256: str | None
    template_source: str  # "gguf", "source" (tokenizer_config.json / chat_template.jinja) or "none"
    capabilities: list[str] = field(default_factory=list)  # tools / thinking, as ollama detects them
    paths: dict[str, PathResult] = field(default_factory=dict)  # LLAMA_CPP / GO_TEMPLATE / RENDERER
    family: str | None = None
    variant: str | None = None
    system_handling: str | None = None
    renderer: str | None = None  # written as RENDERER/PARSER when set
    parser: str | None = None
    default_system: str | None = None  # written as SYSTEM (the Go template cannot express it)
    needs_variables: list[str] = field(default_factory=list)
    current_ollama: str = ""  # which path current Ollama takes with edgepack's Modelfile
    older_ollama: str = ""
    warnings: list[str] = field(default_factory=list)
    ollama_version: str = OLLAMA_VERSION
    go_template: str | None = field(default=None, repr=False)  # the TEMPLATE written into the Modelfiles
    stops: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA, "template_sha256": self.template_sha256, "template_source": self.template_source,
            "capabilities": list(self.capabilities),
            "paths": {k: v.to_dict() for k, v in self.paths.items()},
            "family": self.family, "variant": self.variant, "system_handling": self.system_handling,
            "renderer": self.renderer, "parser": self.parser, "default_system": self.default_system,
            "needs_variables": list(self.needs_variables), "current_ollama": self.current_ollama,
            "older_ollama": self.older_ollama, "warnings": list(self.warnings),
            "ollama_version": self.ollama_version, "stops": list(self.stops), "go_template": self.go_template,
            "go_template_needs_ollama": self.go_template_needs_ollama,
        }

    @property
    def go_template_needs_ollama(self) -> str | None:
        """The oldest Ollama release the written TEMPLATE runs on (None: any with TEMPLATE support)."""
        need = needed_ollama(self.go_template) if self.go_template else None
        return need.version if need else None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ChatReport:
        return cls(
            template_sha256=d.get("template_sha256"), template_source=d.get("template_source", "none"),
            capabilities=list(d.get("capabilities", [])),
            paths={k: PathResult.from_dict(v) for k, v in d.get("paths", {}).items()},
            family=d.get("family"), variant=d.get("variant"), system_handling=d.get("system_handling"),
            renderer=d.get("renderer"), parser=d.get("parser"), default_system=d.get("default_system"),
            needs_variables=list(d.get("needs_variables", [])), current_ollama=d.get("current_ollama", ""),
            older_ollama=d.get("older_ollama", ""), warnings=list(d.get("warnings", [])),
            ollama_version=d.get("ollama_version", OLLAMA_VERSION), stops=list(d.get("stops", [])),
            go_template=d.get("go_template"),
        )

    def summary_lines(self) -> list[str]:
        """One line per path, for the model card and `edgepack inspect`."""
        lines = []
        for key, title in PATH_TITLES.items():
            p = self.paths.get(key)
            if p is None:
                continue
            detail = f"; {p.differences[0]}" if p.differences else (f"; {p.notes[0]}" if p.notes else "")
            if p.status == NOT_CHECKED and p.proof:
                detail = f"; {p.proof}{detail}"
            sends = f" ({p.as_ollama_sends} as current Ollama sends it)" if p.as_ollama_sends else ""
            lines.append(f"{title}: {p.status}{sends} - {p.how}{detail}")
        if self.current_ollama:
            lines.append(f"current Ollama uses: {self.current_ollama}")
        need = needed_ollama(self.go_template) if self.go_template else None
        if need:
            lines.append(need.line())
        return lines


_SYSTEM_SENTINEL = "\u2063EDGEPACK-SYSTEM\u2063"


def _without_and_with_system(chat_template: str, tokens: SpecialTokens, system: str) -> tuple | None:
    """One user message rendered alone and after a system message `system` (None: not rendered)."""
    user = Message("user", "Hello there.")
    try:
        bare, given = render_many(chat_template, [RenderJob((user,)), RenderJob((Message("system", system), user))],
                                  tokens)
    except TemplateBoundError:
        return None
    return None if isinstance(bare, RenderError) or isinstance(given, RenderError) else (bare, given)


def _default_system_prompt(chat_template: str, tokens: SpecialTokens) -> str | None:
    """The system prompt the template writes when none is given (None when it writes none)."""
    renders = _without_and_with_system(chat_template, tokens, _SYSTEM_SENTINEL)
    if renders is None or _SYSTEM_SENTINEL not in renders[1]:
        return None
    bare, marked = renders
    before, _, after = marked.partition(_SYSTEM_SENTINEL)
    if before and bare.startswith(before) and bare.endswith(after) and len(bare) > len(before) + len(after):
        text = bare[len(before):len(bare) - len(after)]
        return text if text.strip() else None
    return None


# Differences edgepack's Go template does not avoid, named in the report: such a TEMPLATE is still written,
# with a warning (older Ollama has no other chat format).
_NAMED_GO_LIMITS = re.compile(r"trims whitespace|rewrites an assistant text that carries its thinking")


def _same_as_explicit(chat_template: str, tokens: SpecialTokens, default: str) -> bool:
    """Whether giving the default system prompt as a system message renders exactly like giving none."""
    renders = _without_and_with_system(chat_template, tokens, default)
    return renders is not None and renders[0] == renders[1]


def _dated(text: str) -> bool:
    today = datetime.date.today()
    return any(s in text for s in (today.isoformat(), today.strftime("%d %b %Y"), today.strftime("%B %d, %Y"),
                                    today.strftime("%Y-%m-%d"), str(today.year) + "-"))


def analyze_chat(chat_template: str | None, tokens: SpecialTokens, *, tokenizer_adds_bos: bool = True,
                 template_source: str = "gguf", prove_llama_cpp_path: bool = True,
                 server_binary=None) -> ChatReport:
    """The chat stage. Never raises for a bad template; see the module doc."""
    from edgepack.chat.capabilities import go_template_capabilities
    from edgepack.chat.dates import frozen_date
    from edgepack.chat.translate import SourceRenders, translate

    if not chat_template or not chat_template.strip():
        report = ChatReport(None, "none")
        why = "the model has no chat template"
        for key in PATH_TITLES:
            report.paths[key] = PathResult(NOT_HANDLED, why)
        report.warnings.append(f"{why}: TEMPLATE left out")
        report.current_ollama = report.older_ollama = "no chat formatting (raw prompts)"
        return report
    report = ChatReport(hashlib.sha256(chat_template.encode("utf-8")).hexdigest(), template_source,
                        capabilities=template_capabilities(chat_template))
    try:
        renders = SourceRenders(chat_template, tokens)
        reference = ReferenceRenders(chat_template, tokens, report.capabilities)
    except (ChatTemplateError, TemplateBoundError) as exc:
        why = str(exc)
        for key in PATH_TITLES:
            report.paths[key] = PathResult(NOT_HANDLED, "not rendered: " + why)
        report.warnings.append(f"{why}; TEMPLATE left out")
        report.current_ollama = report.older_ollama = "the GGUF's template as is (unproven)"
        return report
    for r in list(renders.results.values()) + list(reference.results.values()):
        if isinstance(r, RenderError) and r.kind == "undefined" and r.variable and r.variable not in report.needs_variables:
            report.needs_variables.append(r.variable)
    if report.needs_variables:
        report.warnings.append("the chat template needs variables edgepack does not know: "
                               + ", ".join(report.needs_variables))

    # Path 2: Ollama Go TEMPLATE.
    translation = None
    try:
        translation = translate(chat_template, tokens, tokenizer_adds_bos=tokenizer_adds_bos, renders=renders)
    except ChatTemplateError as exc:
        report.paths[GO_TEMPLATE] = PathResult(NOT_HANDLED, f"no Go TEMPLATE: {exc}")
        report.warnings.append(f"{exc}: TEMPLATE left out, Ollama will use the GGUF's own chat template")
    if translation is not None:
        from edgepack.chat.formats import FORMATS

        fmt = next(f for f in FORMATS if (f.family, f.variant) == (translation.family, translation.variant))
        go = prove_go(reference, translation, tokens, renders.emits_bos, fmt.rejects_system)
        if translation.edits:  # how the Go TEMPLATE trims or cuts text
            go.notes.append(describe_edits(translation.edits))
        if translation.tools:
            go.notes.append(f"tools are written as the template writes them (layout {translation.tools}); "
                            "compared with the tools and calls as Ollama hands them to a template (its own key "
                            "order: definitions as its structs, properties and arguments sorted)")
        tag = translation.tool_tag
        if tag is not None and tag.json_calls:
            go.notes.append(f"tool calls in replies: Ollama's tool parser reads them after {tag.tag!r} (the tag "
                            "the TEMPLATE shows it) as a name and JSON arguments, as the model writes them")

        frozen = frozen_date(translation.go_template, renders.date_formats)
        if frozen:  # equal today, different tomorrow: never exact
            go.modes["plain"] = "differs"
            go.status = "differs"
            go.differences.insert(0, f"date: the template writes today's date as {frozen!r}, a format Ollama's "
                                     "currentDate cannot write, so the TEMPLATE would hold the build day")
        proven_plain = go.modes.get("plain") == EXACT  # on every proof conversation, and no frozen date
        rewritten = fmt.rewrites_edit and any(spec.startswith(fmt.rewrites_edit) for spec in translation.edits.values())
        if fmt.text_rewrites and not rewritten:  # read from the source: such text need not occur in the proofs
            go.modes["plain"] = go.status = "differs"
            go.differences.insert(0, f"text: the template {fmt.text_rewrites}, which edgepack's Go TEMPLATE for this family does not do")
        report.paths[GO_TEMPLATE] = go
        report.family, report.variant = translation.family, translation.variant
        report.system_handling = translation.system_handling
        # A stop inside a thinking marker would end the reply in the middle of its thinking.
        report.stops = [s for s in translation.stops if not any(s in tag for tag in THINK_TAGS)]
        plain = [d for d in go.differences if d.split(":")[0] in PLAIN_PROBES]
        # Never written with the build day in it, even where it would be written with a named difference.
        if not frozen and (proven_plain or (plain and all(_NAMED_GO_LIMITS.search(d) for d in plain))):
            report.go_template = translation.go_template
            for d in go.differences:
                if d.startswith("tools: the TEMPLATE has no .Tools"):
                    continue  # stated in the report; current Ollama takes the GGUF's template for tools
                report.warnings.append(f"the Go TEMPLATE ({translation.family}/{translation.variant}) differs from "
                                       f"the model's template: {d}")
        else:
            report.warnings.append(f"the Go TEMPLATE ({translation.family}/{translation.variant}) differs from the "
                                   f"model's template ({(plain if not frozen and plain else go.differences)[0]}): "
                                   "TEMPLATE left out")

    # SYSTEM: a default system prompt the Go template cannot write itself (before path 1: current
    # Ollama sends it to llama.cpp as a system message).
    default = _default_system_prompt(chat_template, tokens)
    if default and not (translation and translation.default_system and report.go_template):
        if _dated(default):
            report.warnings.append("the template's default system prompt contains today's date; it is not frozen "
                                   "into SYSTEM (Ollama's Jinja path writes it with the current date)")
        elif report.go_template or _same_as_explicit(chat_template, tokens, default):
            report.default_system = default
        else:  # SYSTEM would reach the Jinja path as a system message, which this template renders otherwise
            report.warnings.append("the template's default system prompt is not written as SYSTEM: the template "
                                   "renders it differently when it is given as a system message, and without a "
                                   "Go TEMPLATE the GGUF's own template writes the default itself")

    # Path 1: llama.cpp Jinja.
    if prove_llama_cpp_path:
        report.paths[LLAMA_CPP] = prove_llama_cpp(chat_template, reference, tokens, server_binary,
                                                  ollama_system=report.default_system)
    else:
        report.paths[LLAMA_CPP] = PathResult(NOT_CHECKED, "the GGUF's own chat template, run by llama.cpp's Jinja "
                                             "engine", "not checked in this run")

    # Path 3: Ollama RENDERER/PARSER.
    go_caps = go_template_capabilities(report.go_template) if report.go_template else []
    match = match_renderer(chat_template)
    if match is None:
        report.paths[RENDERER] = PathResult(NOT_HANDLED, "no built-in Ollama renderer for this template "
                                            f"(ollama {OLLAMA_VERSION})")
    else:
        row = match.renderer
        report.paths[RENDERER] = PathResult(
            "matched", f"RENDERER {row.renderer} / PARSER {row.parser}: {row.renders}",
            proof=match.basis + "; not rendered by edgepack (the renderer is Go code inside ollama)")
        jinja = report.paths[LLAMA_CPP]
        go_proven = (report.go_template is not None and report.paths[GO_TEMPLATE].status == EXACT
                     and len(report.capabilities) <= len(go_caps))
        if match.identical_to_reference and go_proven:
            # PARSER alone: Ollama renders with the proven TEMPLATE and reads the model's thinking and
            # tool calls with the family's own parser (server/prompt.go renders with a TEMPLATE
            # unless a RENDERER is named; a PARSER keeps it from the GGUF's Jinja)
            report.parser = row.parser
            report.paths[RENDERER].proof += (f"; RENDERER not written: edgepack's Go TEMPLATE is proven exact, with "
                                             "every capability of the GGUF's template, and current Ollama renders "
                                             f"with it; PARSER {row.parser} is written, so Ollama reads the model's "
                                             "thinking and tool calls as it does for this family")
        elif match.identical_to_reference and (jinja.as_ollama_sends or jinja.status) != EXACT:
            report.renderer, report.parser = row.renderer, row.parser
        elif match.identical_to_reference:
            report.paths[RENDERER].proof += ("; not written into the Modelfile: the GGUF's own template is proven "
                                             "exact through llama.cpp, which current Ollama then uses")
        else:  # a wrong renderer is worse than the GGUF's own template: write only what is identical
            report.paths[RENDERER].proof += ("; not written into the Modelfile (only a template identical to "
                                             "ollama's reference is)")

    tag = translation.tool_tag if translation is not None else None
    if report.go_template and tag is not None and not tag.json_calls and not report.parser:
        report.warnings.append(f"tool calls in replies: this model writes its arguments after {tag.tag!r} in a form "
                               "that is not JSON, which is what Ollama's generic tool parser reads; through the Go "
                               "TEMPLATE alone Ollama returns its calls as text (llama-server, or Ollama with this "
                               "family's PARSER, reads them)")
    _choose_ollama_paths(report, go_caps)
    return report


def _choose_ollama_paths(report: ChatReport, go_capabilities: list[str]) -> None:
    """Which path Ollama takes with edgepack's Modelfile (ollama's server/images.go order)."""
    if report.renderer:
        report.current_ollama = f"RENDERER {report.renderer} / PARSER {report.parser}"
    elif report.parser and report.go_template:  # a PARSER keeps Ollama on the TEMPLATE (server/images.go)
        report.current_ollama = f"the Go TEMPLATE, with PARSER {report.parser}"
    elif report.go_template and len(report.capabilities) <= len(go_capabilities):
        # shouldPreferChatTemplate: only a GGUF template with more capabilities wins.
        report.current_ollama = "the Go TEMPLATE"
    elif report.go_template:
        # The GGUF's template has capabilities (tools, thinking) the Go template lacks: Ollama prefers it.
        report.current_ollama = "the GGUF's template through llama.cpp's Jinja (it has more capabilities)"
    else:
        report.current_ollama = "the GGUF's template through llama.cpp's Jinja (no TEMPLATE written)"
    report.older_ollama = "the Go TEMPLATE" if report.go_template else "Ollama's own template guess (no TEMPLATE)"
