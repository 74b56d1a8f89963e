"""Writing an Ollama TEMPLATE (Go text/template) for a row of edgepack.chat.formats, and running
one the way Ollama does (edgepack's Go model on Ollama's template data).

The Go text comes from modelfiles/chat/turns.gotmpl.j2 (or a family's own file under
modelfiles/chat/families/), rendered with jinja2 and `[% %]`/`[= =]` delimiters so that the Go
template's own `{{ }}` pass through; which row, thinking layout, text edits and tool layout to
write is chosen and proven by edgepack.chat.translate and edgepack.chat.proof.
"""

from __future__ import annotations

import json
from functools import lru_cache

import jinja2

from edgepack.chat import godrop, gohelpers
from edgepack.chat.conversations import ollama_template_data
from edgepack.chat.dates import date_prologue, go_date_expression
from edgepack.chat.formats import ChatFormat, ThinkingLayout
from edgepack.chat.gotemplate import GoTemplate
from edgepack.chat.tools.layout import ToolLayout
from edgepack.errors import ChatTemplateError
from edgepack.paths import package_data_dir


def render_ollama(go_template: str, messages, **data) -> str:
    """Render an Ollama TEMPLATE for a chat the way Ollama does (Python model of Go's text/template)."""
    if ".Messages" not in go_template:
        raise ChatTemplateError("only templates that range over .Messages can be rendered here")
    return GoTemplate(go_template).execute(ollama_template_data(messages, **data))


# --------------------------------------------------------------------------- Go templates

def _go_text(text: str, action: bool = False) -> str:
    """Text for a Go template: verbatim when safe, else (or when `action`) a Go string literal action."""
    if text and (action or "{{" in text or "}}" in text or text[-1] == "{" or text[0] == "}"):
        return "{{ " + json.dumps(text, ensure_ascii=False) + " }}"
    return text


@lru_cache(maxsize=1)
def _go_environment() -> jinja2.Environment:
    # Different delimiters, so the Go template's own {{ }} pass through untouched.
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(package_data_dir("modelfiles") / "chat"),
        block_start_string="[%", block_end_string="%]",
        variable_start_string="[=", variable_end_string="=]",
        comment_start_string="[#", comment_end_string="#]",
        undefined=jinja2.StrictUndefined, autoescape=False, trim_blocks=True, lstrip_blocks=True,
    )
    env.filters["go_text"] = _go_text
    env.filters["go_string"] = lambda s: json.dumps(s, ensure_ascii=False)
    env.globals["blank_check"] = gohelpers.blank_check  # for families' own templates
    env.globals["remove"] = godrop.remove
    return env


def go_template_for(fmt: ChatFormat, *, fixed_text: str | None = None, leading_text: str = "",
                    think_tails: tuple[str, str, str] | None = None, date_formats: tuple[str, ...] = (),
                    thinking: ThinkingLayout | None = None, thinking_tags: bool = True,
                    trims: dict[str, str] | None = None, tools: ToolLayout | None = None) -> str:
    """The Ollama TEMPLATE for a format whose `{bos}`/`{eos}` are already substituted.

    fixed_text: the default system prompt, preamble or header preamble the format extracts.
    leading_text: written first (the BOS text, when the tokenizer does not add BOS itself).
    think_tails: text after the generation prompt when thinking is unset / on / off (Ollama's
    .IsThinkSet and .Think; e.g. Qwen3's empty think block when thinking is off).
    date_formats: the strftime formats of the template's dates (source_date_formats).
    thinking: how assistant turns keep their thinking (None: dropped).
    thinking_tags: write the thinking block's open/close as text, from which Ollama infers the
    thinking capability; False writes them as string actions, which it does not see.
    trims: per role ("system", "user", "assistant", "thinking"), the Go helper (edgepack.chat.gohelpers:
    a trim such as "strip", or a cut "tail:..."/"after:...") that edits that text as the template
    does (read from renders by chat.text_edits).
    tools: how the template writes tools (chat.tools.layout), None for a TEMPLATE without .Tools.
    """
    trims = trims or {}
    fixed = go_date_expression(fixed_text or "", date_formats)
    name = f"families/{fmt.go_file}" if fmt.go_file else "turns.gotmpl.j2"  # a family's own template
    text = _go_environment().get_template(name).render(
        f=fmt, fixed_text=fixed_text or "", fixed=fixed, date_prologue=date_prologue(fixed), leading_text=leading_text,
        thinking=thinking, thinking_condition=_thinking_condition(thinking), thinking_tags=thinking_tags,
        think_tails=think_tails if think_tails and any(think_tails) else None,
        content=lambda role, expression: gohelpers.call(trims.get(role, ""), expression),
        last_edit="assistant_last" in trims,
        go_defines=gohelpers.defines([*trims.values(), *fmt.helpers, *(tools.helpers if tools else ())]),
        tools=tools, tools_no_system_lead=_no_system_lead(fmt, tools, fixed),
        fixed_split=_fixed_split(fixed_text or "", tools, date_formats),
        fixed_tools=_fixed_with_tools(fixed_text or "", tools, date_formats),
    )
    return text.rstrip("\n")  # every template ends with an action; the file's last newline is not text


def _fixed_split(fixed_text: str, tools: ToolLayout | None, date_formats: tuple[str, ...]) -> tuple[str, str] | None:
    """The fixed header or preamble as two Go expressions, before and after the place of the tool
    definitions (ToolLayout.header_defs_after, less header_defs_replace); None when the layout puts
    them elsewhere or the text is not there."""
    if tools is None or not tools.header_defs_after or tools.header_defs_after not in fixed_text:
        return None
    head, mark, tail = fixed_text.partition(tools.header_defs_after)
    if not tail.startswith(tools.header_defs_replace):
        return None
    tail = tail[len(tools.header_defs_replace):]
    return go_date_expression(head + mark, date_formats), go_date_expression(tail, date_formats)


def _fixed_with_tools(fixed_text: str, tools: ToolLayout | None, date_formats: tuple[str, ...]) -> str | None:
    """The default system prompt with tools given (ToolLayout.default_system_tools) as a Go
    expression; None when the layout keeps it or the text to replace is not there."""
    if tools is None or not tools.default_system_tools or tools.default_system_tools[0] not in fixed_text:
        return None
    return go_date_expression(fixed_text.replace(*tools.default_system_tools), date_formats)


def _no_system_lead(fmt: ChatFormat, tools: ToolLayout | None, fixed: str) -> str:
    """The Go expression written before the tool definitions when there is no system message."""
    if tools is None:
        return ""
    if tools.no_system_lead is not None:
        return json.dumps(tools.no_system_lead, ensure_ascii=False) if tools.no_system_lead else ""
    if fmt.default_system:
        return f"print {fixed} {json.dumps(tools.defs_joiner, ensure_ascii=False)}"
    return ""


def _thinking_condition(thinking: ThinkingLayout | None) -> str:
    """The Go condition under which an assistant turn's thinking block is written."""
    if thinking is None:
        return ""
    if thinking.kept == "none":  # never written; the block only shows Ollama the tags
        return "false"
    conds = ["$.Think"] if thinking.think_only else []
    if thinking.kept == "after_last_user":
        conds.append("(gt $i $lastUser)")
    if not (thinking.kept == "after_last_user" and thinking.empty_after_last_user):
        conds.append("(or .Thinking (eq (len (slice $.Messages $i)) 1))" if thinking.always_last else ".Thinking")
    return "and " + " ".join(conds) if len(conds) > 1 else conds[0]
