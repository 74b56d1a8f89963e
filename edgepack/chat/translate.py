"""Translate a Hugging Face chat template (Jinja) into an Ollama TEMPLATE (Go text/template).

A chat template is never guessed. Each known prompt format (edgepack.chat.formats, one row per
family variant) is turned into a Go template (modelfiles/chat/turns.gotmpl.j2, by edgepack.chat.go_writer), and a format
is chosen only when, for every conversation in CHOICE_PROBES, that Go template filled the way Ollama
fills it renders exactly the text the Hugging Face template renders (transformers' Jinja, in
edgepack.chat.sandbox). What follows the generation prompt with thinking unset/on/off and how an
assistant turn's thinking is written (ThinkingLayout) are read from the template's own renders,
then checked like the rest. Whether the choice holds for real chats (padding, thinking, tools)
is proven separately, on other conversations, by edgepack.chat.proof.

Pure apart from the bounded render child: no files are written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from edgepack.chat.capabilities import advertise_thinking, hide_thinking_tags
from edgepack.chat.go_writer import go_template_for, render_ollama
from edgepack.chat.conversations import PROBES, Message, has_system, template_messages, template_tool_values
from edgepack.chat.formats import FORMATS, ChatFormat, ThinkingLayout, declared_thinking
from edgepack.chat.dates import source_date_formats
from edgepack.chat.sandbox import (RenderError, RenderJob, SpecialTokens, TemplateBoundError, render_many,
                                   with_empty_tool_list)
from edgepack.chat.text_edits import (PREFILL_KWARGS, describe_edits, drop_markers, edit_jobs, find_edits,
                                      split_markers)
from edgepack.chat.tools.tag import ToolTag, declare_tag, reply_tag
from edgepack.chat.tools.choice import (CHOICE_TOOLS, ONE_TOOL, TOOL_CHOICE, candidate_layouts, choose_layout,
                                        tools_hold)
from edgepack.errors import ChatTemplateError


# --------------------------------------------------------------------------- translation

@dataclass
class Translation:
    family: str
    variant: str
    go_template: str
    stops: list[str]
    system_handling: str  # how system prompts reach the model, in words
    notes: list[str] = field(default_factory=list)
    fixed_text: str | None = None  # text taken from the template (default system prompt, header)
    think_tails: tuple[str, str, str] | None = None  # after the generation prompt: thinking unset/on/off
    thinking: ThinkingLayout | None = None  # how assistant turns keep their thinking (None: dropped)
    thinking_tags: bool = True  # the block's tags are text, so Ollama infers the thinking capability
    default_system: bool = False  # the format writes a default system prompt when none is given
    tokenizer_adds_bos: bool = True
    edits: dict[str, str] = field(default_factory=dict)  # per role, how the TEMPLATE edits its text (text_edits)
    tools: str = ""  # the tool layout the TEMPLATE writes (chat.tools.layouts), "" for none
    tool_tag: ToolTag | None = None  # where Ollama's generic tool parser finds the calls in a reply


_SENTINEL = "\u2063EDGEPACK-FIXED-TEXT\u2063"
# Chosen on as well: an earlier assistant turn with thinking (Ollama's .Thinking), so that a format
# is chosen only when it keeps or drops that thinking as the template does.
# And a final assistant turn (Ollama's prefill: the TEMPLATE leaves it open; transformers'
# continue_final_message) with and without thinking, which shows how a turn's thinking is written.
_THOUGHT, _PREFILL_TEXT = "17 * 3 = 51.", "The answer is"
CHOICE_PROBES: dict[str, tuple[Message, ...]] = {
    **PROBES,
    "thinking_history": (Message("user", "Hi!"), Message("assistant", "Hello!", thinking="Greet back."),
                         Message("user", "Bye.")),
    "prefill": (Message("user", "What is 17 * 3?"), Message("assistant", _PREFILL_TEXT)),
    "prefill_thinking": (Message("user", "What is 17 * 3?"), Message("assistant", _PREFILL_TEXT, thinking=_THOUGHT)),
    # thinking on may change the system turn too (Bielik adds an instruction to it)
    "system_thinking": (Message("system", "Be brief."), Message("user", "Hi!")),
}
_THINK_ON = "/think=True"  # suffix of a choice probe rendered with thinking on (Ollama's .Think)
for _name in ("thinking_history", "prefill", "prefill_thinking", "system_thinking"):
    CHOICE_PROBES[_name + _THINK_ON] = CHOICE_PROBES[_name]
CHOICE_KWARGS = {name: PREFILL_KWARGS for name in CHOICE_PROBES if name.startswith("prefill")}
# A template may refuse to continue a final message: then it is not compared.
_OPTIONAL = set(CHOICE_KWARGS)


def _choice_job(name: str) -> RenderJob:
    think = (("enable_thinking", True),) if name.endswith(_THINK_ON) else ()
    return RenderJob(CHOICE_PROBES[name], CHOICE_KWARGS.get(name, ()) + think)


def _choice_think(name: str) -> bool | None:
    return True if name.endswith(_THINK_ON) else None
_BOS_SENTINEL = "\u2063EDGEPACK-BOS\u2063"


class SourceRenders:
    """The Hugging Face renders of PROBES for one template, done once in one bounded child."""

    def __init__(self, chat_template: str, tokens: SpecialTokens):
        self.tokens = tokens
        self.date_formats = source_date_formats(chat_template)
        names = list(CHOICE_PROBES)
        marked = SpecialTokens(_BOS_SENTINEL, tokens.eos)
        jobs = [_choice_job(n) for n in names]
        for think in (True, False):  # the generation prompt with thinking on / off
            names.append(f"user/think={think}")
            jobs.append(RenderJob(PROBES["user"], (("enable_thinking", think),)))
        self.markers = split_markers(chat_template)
        self.drops = drop_markers(chat_template)
        self.tool_layouts = candidate_layouts(chat_template)
        if self.tool_layouts:  # the tools as Ollama hands them to a Go template
            tools = (("tools", list(template_tool_values(CHOICE_TOOLS))),)
            names += list(TOOL_CHOICE)
            jobs += [RenderJob(template_messages(messages), tools) for messages in TOOL_CHOICE.values()]
            one = (("tools", list(template_tool_values(CHOICE_TOOLS[:1]))),)
            names += [name + ONE_TOOL for name in TOOL_CHOICE]
            jobs += [RenderJob(template_messages(messages), one) for messages in TOOL_CHOICE.values()]
        for name, job in edit_jobs(self.markers, self.drops):
            names.append(name)
            jobs.append(job)
        try:
            results = render_many(chat_template, jobs, tokens)
            # a tool-use template fails without a tool list: rendered with an empty one, as Ollama's .Tools
            self.tool_list = with_empty_tool_list(chat_template, jobs, results, tokens)
            for i, text in self.tool_list.items():
                results[i] = text
            user_job = RenderJob.of(PROBES["user"])
            if names.index("user") in self.tool_list:
                user_job = RenderJob(user_job.messages, (("tools", []),))
            [bos_probe] = render_many(chat_template, [user_job], marked) if tokens.bos else [""]
        except TemplateBoundError as exc:
            raise ChatTemplateError(f"the chat template cannot be rendered: {exc}") from None
        self.results = dict(zip(names, results))
        self.emits_bos = isinstance(bos_probe, str) and bos_probe.startswith(_BOS_SENTINEL)

    def choice_holds(self, go_template: str) -> bool:
        """Whether `go_template` renders every choice conversation the template renders, exactly."""
        for name in CHOICE_PROBES:
            want = self.expected(name)
            if want is not None and render_ollama(go_template, CHOICE_PROBES[name], think=_choice_think(name)) != want:
                return False
        return True

    def expected(self, name: str) -> str | None:
        """The HF rendering Ollama must reproduce (None: the template refuses this conversation)."""
        text = self.results[name]
        if isinstance(text, RenderError):
            return None
        if self.emits_bos and self.tokens.bos and text.startswith(self.tokens.bos):
            text = text[len(self.tokens.bos):]
        return text


def _fixed_text(fmt: ChatFormat, expected_user_only: str) -> str | None | bool:
    """Extract the text a format takes from the template (default system prompt, preamble).

    Returns False when the format has such a slot but the template's output does not fit it.
    """
    if not (fmt.default_system or fmt.preamble or fmt.system == "header"):
        return None
    ours = render_ollama(go_template_for(fmt, fixed_text=_SENTINEL), PROBES["user"])
    before, _, after = ours.partition(_SENTINEL)
    text = expected_user_only
    # The template may write more after the generation prompt (a think tail, found later).
    end = text.rfind(after)
    if not (text.startswith(before) and end >= len(before)):
        return False
    return text[len(before):end]


def _matches(renders: SourceRenders, fmt: ChatFormat):
    """(go_template_without_bos, fixed_text, think_tails, thinking) when `fmt` reproduces the template
    on every probe."""
    expected = {name: renders.expected(name) for name in CHOICE_PROBES}
    if expected["user"] is None or expected["multi_turn"] is None:
        return None
    fixed = _fixed_text(fmt, expected["user"])
    if fixed is False:
        return None
    tails = _think_tails(renders, fmt, fixed)
    if tails is False:
        return None
    thinking = _thinking_layout(renders, fmt, fixed, tails)
    if thinking is False:
        return None
    for name, conv in CHOICE_PROBES.items():
        if expected[name] is None:
            if name in _OPTIONAL or (fmt.rejects_system and has_system(conv)):
                continue
            return None
        if fmt.rejects_system and has_system(conv):
            return None  # the format says the template rejects system messages; it did not
    go = go_template_for(fmt, fixed_text=fixed, think_tails=tails, date_formats=renders.date_formats,
                         thinking=thinking)
    return (go, fixed, tails, thinking) if renders.choice_holds(go) else None


def _thinking_layout(renders: SourceRenders, fmt: ChatFormat, fixed, tails) -> ThinkingLayout | None | bool:
    """How the template writes an assistant turn's thinking, read from the final-turn probes:
    as they render with thinking unset, else (DeepSeek V3.2) only with thinking on.

    None: the template drops thinking (or cannot continue a final turn); False: it writes
    thinking in a way this format cannot.
    """
    if fmt.go_file:  # a family's own template writes its thinking itself
        return None
    layout = _layout_in_mode(renders, fmt, fixed, tails, think=None)
    return _layout_in_mode(renders, fmt, fixed, tails, think=True) if layout is None else layout


def _layout_in_mode(renders: SourceRenders, fmt: ChatFormat, fixed, tails, think: bool | None):
    mode = _THINK_ON if think else ""
    plain, thought = renders.expected("prefill" + mode), renders.expected("prefill_thinking" + mode)
    go = go_template_for(fmt, fixed_text=fixed, think_tails=tails, date_formats=renders.date_formats)
    ours = render_ollama(go, CHOICE_PROBES["prefill"], think=think)
    if plain is None or thought is None or plain == thought == ours:
        return None
    tail = fmt.content_open + _PREFILL_TEXT
    if not (ours.endswith(tail) and thought.endswith(tail)) or thought[:-len(tail)].count(_THOUGHT) != 1:
        return False
    head = ours[:-len(tail)]
    before, closing = thought[:-len(tail)].split(_THOUGHT)
    # The block goes after the assistant prefix, or in place of its end (what closes an empty block):
    # where the two part, moved back to the start of a tag cut there.
    split = len(os.path.commonprefix([head, before]))
    tag = head.rfind("<", 0, split)
    if tag > head.rfind(">", 0, split):
        split = tag
    if split < len(head) - len(fmt.assistant[0]):
        return False
    kept_head, replaces, opening = head[:split], head[split:], before[split:]
    if plain == ours:
        always_last = False
    elif plain == kept_head + opening + closing + tail:
        always_last = True
    else:
        return False
    history = renders.expected("thinking_history" + mode)
    for kept in ("all", "after_last_user"):
        layout = ThinkingLayout(opening, closing, kept, always_last, think_only=bool(think), replaces=replaces)
        go = go_template_for(fmt, fixed_text=fixed, think_tails=tails, date_formats=renders.date_formats,
                             thinking=layout)
        if history is None or render_ollama(go, CHOICE_PROBES["thinking_history"], think=think) == history:
            return layout
    return False


def _think_tails(renders: SourceRenders, fmt: ChatFormat, fixed) -> tuple[str, str, str] | None | bool:
    """What the template writes after the format's generation prompt with thinking unset / on / off.

    The three may be equal (a think block always opened, e.g. "<think>\n"). None when nothing is
    written there; False when thinking changes something elsewhere.
    """
    if fmt.go_file:  # a family template writes its own thinking
        return _family_thinking(renders, fmt, fixed)
    wanted = [renders.expected("user"), renders.expected("user/think=True"), renders.expected("user/think=False")]
    if None in wanted:
        return None
    same = wanted[0] == wanted[1] == wanted[2]
    if not fmt.generation:
        return None if same else False
    base = render_ollama(go_template_for(fmt, fixed_text=fixed, date_formats=renders.date_formats), PROBES["user"])
    if not all(w.startswith(base) for w in wanted):
        return None if same else False
    tails = tuple(w[len(base):] for w in wanted)
    return tails if any(tails) else None


def system_handling(fmt: ChatFormat) -> str:
    if fmt.rejects_system:
        return ("the source template rejects system messages; edgepack puts the system prompt "
                "at the start of the first user message")
    return {
        "turn": "system messages are turns of their own",
        "first_user": "the system prompt is merged into the first user message",
        "last_user": "the system prompt is merged into the last user message",
        "header": "the system prompt follows the template's fixed header in the first turn",
        "dropped": "the source template drops system messages",
        "last_first": "only the last system message is written, at the start, as the source template does",
    }[fmt.system]


def candidate_formats(chat_template: str) -> list[ChatFormat]:
    """Formats whose markers all occur in the template source."""
    return [f for f in FORMATS if all(m in chat_template for m in f.markers)]


def template_emits_bos(chat_template: str, tokens: SpecialTokens) -> bool:
    """Whether the template starts its output with `bos_token` (not merely with the same text)."""
    return SourceRenders(chat_template, tokens).emits_bos if tokens.bos else False


def translate(chat_template: str, tokens: SpecialTokens, *, tokenizer_adds_bos: bool = True,
              renders: SourceRenders | None = None) -> Translation:
    """The Ollama TEMPLATE and stops for a Hugging Face chat template, chosen on CHOICE_PROBES.

    Raises ChatTemplateError (one line) when the template cannot be rendered or no known format
    reproduces it exactly.
    """
    if not chat_template or not chat_template.strip():
        raise ChatTemplateError("the model has no chat template")
    renders = renders or SourceRenders(chat_template, tokens)
    first = renders.results["user"]
    if isinstance(first, RenderError):
        needs = f" (it needs the variable {first.variable!r}, which edgepack does not set)" if first.variable else ""
        raise ChatTemplateError(f"the chat template cannot be rendered{needs} ({first})")
    # BOS: llama.cpp's tokenizer adds it when the GGUF says so, so the Go template must not
    # write it again; when the tokenizer does not, the Go template writes it as text.
    candidates = candidate_formats(chat_template)
    for fmt in candidates:
        concrete = fmt.with_tokens(tokens)
        found = _matches(renders, concrete)
        if found is None:
            continue
        go, fixed, tails, thinking = found
        leading = (tokens.bos or "") if renders.emits_bos and not tokenizer_adds_bos else ""
        tags = advertise_thinking(chat_template)
        if thinking is None and tags and not fmt.go_file:
            thinking = declared_thinking(tails)
        trims = find_edits(renders, render_ollama, lambda t: go_template_for(
            concrete, fixed_text=fixed, think_tails=tails, date_formats=renders.date_formats, thinking=thinking,
            trims=t))
        tools, thinking = choose_layout(renders, concrete, thinking, render_ollama, lambda layout, thinking: go_template_for(
            concrete, fixed_text=fixed, think_tails=tails, date_formats=renders.date_formats, thinking=thinking,
            trims=trims, tools=layout))
        if tools:  # a tool layout can make the TEMPLATE read .Thinking (Gemma 4: beside tool calls),
            # which lets find_edits try the Go 1.24 helpers: kept if the tools still hold with them
            def build_with_tools(t):
                return go_template_for(concrete, fixed_text=fixed, think_tails=tails, date_formats=renders.date_formats,
                                       thinking=thinking, trims=t, tools=tools)
            if ".Thinking" in build_with_tools(trims) and ".Thinking" not in go_template_for(
                    concrete, fixed_text=fixed, think_tails=tails, date_formats=renders.date_formats, thinking=thinking,
                    trims=trims):
                more = find_edits(renders, render_ollama, build_with_tools)
                if more != trims and tools_hold(renders, build_with_tools(more), render_ollama):
                    trims = more
        if leading or (thinking and not tags) or trims or tools:
            go = go_template_for(concrete, fixed_text=fixed, leading_text=leading, think_tails=tails,
                                 date_formats=renders.date_formats, thinking=thinking, thinking_tags=tags, trims=trims,
                                 tools=tools)
        if fmt.go_file and not tags:  # a family's own template writes its tags as text: hide them the same way
            go = hide_thinking_tags(go)
        found = reply_tag(go, render_ollama) if tools else None  # how Ollama finds calls in a reply
        if found is not None and found.json_calls:
            go = declare_tag(go, found.tag)
        notes = [fmt.note] if fmt.note else []
        if thinking:
            notes.append(thinking.describe())
        if fixed:
            notes.append(f"fixed text taken from the template: {fixed!r}")
        if trims:
            notes.append(describe_edits(trims))
        return Translation(
            family=fmt.family, variant=fmt.variant, go_template=go, stops=list(concrete.stops),
            system_handling=system_handling(fmt), notes=notes, fixed_text=fixed,
            default_system=fmt.default_system, tokenizer_adds_bos=tokenizer_adds_bos, think_tails=tails,
            thinking=thinking, thinking_tags=tags, edits=trims, tools=tools.name if tools else "", tool_tag=found,
        )
    if candidates:
        names = ", ".join(dict.fromkeys(f.family for f in candidates))
        raise ChatTemplateError(
            f"the chat template looks like {names} but renders differently from every edgepack "
            "translation of it (tools, content rewriting or another variant)"
        )
    raise ChatTemplateError("the chat template matches none of the families edgepack can translate")


def _family_thinking(renders: SourceRenders, fmt: ChatFormat, fixed) -> None | bool:
    """For a family's own Go template (ChatFormat.go_file), which writes its thinking itself: None
    when it renders the generation prompt as the template does with thinking unset / on / off,
    else False. No think tails are added to it."""
    wanted = [renders.expected("user"), renders.expected("user/think=True"), renders.expected("user/think=False")]
    go = go_template_for(fmt, fixed_text=fixed)
    ours = [render_ollama(go, PROBES["user"], think=think) for think in (None, True, False)]
    return None if all(w is None or w == o for w, o in zip(wanted, ours)) else False
