"""Path 3: Ollama's built-in RENDERER/PARSER pairs, and which chat templates they belong to.

Current Ollama renders some families with Go code instead of a template: a Modelfile's
RENDERER and PARSER name it. The names and what each renders were read from ollama's
`model/renderers/renderer.go` (rendererForName), `model/parsers/parsers.go` and
`server/images.go` at OLLAMA_VERSION; nothing of ollama's code is copied. edgepack cannot run
that Go code, so a match is never reported exact: it says what it was based on, either the
template being byte-identical to the one ollama's own reference tests render
(`model/renderers/testdata/`), or the family's distinctive markers all being present.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

OLLAMA_VERSION = "v0.33.0-rc2 (commit fb30760996871fa9460115c753afd2c60d4ab0f7)"


@dataclass(frozen=True)
class OllamaRenderer:
    renderer: str
    parser: str
    markers: tuple[str, ...]  # all occur in the family's Hugging Face chat template
    renders: str  # what ollama's renderer writes, in words
    reference_sha256: tuple[str, ...] = ()  # sha256 of ollama's reference templates (stripped)


# Most specific first: the first row whose markers all occur is the match.
RENDERERS: tuple[OllamaRenderer, ...] = (
    OllamaRenderer("glimmer", "glimmer", ("<atem:function_calls>",),
                   "Glimmer turns with <atem:...> tool calls",
                   ("6cd0e94d9b48",)),
    OllamaRenderer("laguna", "laguna", ("<available_tools>", "<arg_key>"),
                   "Laguna turns, tools in <available_tools>, <arg_key>/<arg_value> calls",
                   ("dadad29ff28c",)),
    OllamaRenderer("gemma4", "gemma4", ("<|turn>", "<turn|>"),
                   "Gemma 4 <|turn>/<turn|> turns, <|channel>thought thinking, <|tool_call> calls"),
    OllamaRenderer("glm-4.7", "glm-4.7", ("[gMASK]<sop>", "<arg_key>"),
                   "GLM 4.x turns, <think> thinking, <arg_key>/<arg_value> tool calls"),
    OllamaRenderer("nemotron-3-nano", "nemotron-3-nano", ("<|im_start|>", "<function=", "truncate_history_thinking"),
                   "ChatML turns, <think> thinking, <function=...> XML tool calls"),
    OllamaRenderer("qwen3.5", "qwen3.5", ("<|im_start|>", "<function=", "<think>", "vision_start"),
                   "Qwen 3.5 ChatML turns, <think> thinking, <function=...> XML tool calls, image tags"),
    OllamaRenderer("qwen3-coder", "qwen3-coder", ("<|im_start|>", "<function=", "<parameter="),
                   "ChatML turns, tools as <tools> XML, <function=...> tool calls"),
    OllamaRenderer("deepseek3.1", "deepseek3", ("<｜tool▁calls▁begin｜>", "<｜Assistant｜>", "</think>", "thinking"),
                   "DeepSeek V3.1 turns, thinking toggled by </think> after <｜Assistant｜>, tool calls"),
    OllamaRenderer("lfm2", "lfm2", ("<|im_start|>", "<|tool_call_start|>"),
                   "LFM2 ChatML turns with <|tool_call_start|> calls"),
    OllamaRenderer("cohere", "cohere", ("<|START_THINKING|>", "<|START_OF_TURN_TOKEN|>"),
                   "Command A/R7B turns with <|START_THINKING|> and <|START_ACTION|> tool calls"),
)


@dataclass(frozen=True)
class RendererMatch:
    renderer: OllamaRenderer
    basis: str  # what the match was based on, in words
    identical_to_reference: bool


def _digest(template: str) -> str:
    return hashlib.sha256(template.strip().encode("utf-8")).hexdigest()[:12]


def match_renderer(chat_template: str) -> RendererMatch | None:
    """The Ollama RENDERER/PARSER for a chat template, when one of its families matches."""
    digest = _digest(chat_template)
    for row in RENDERERS:
        if digest in row.reference_sha256:
            return RendererMatch(row, f"byte-identical to the template ollama's {row.renderer} reference tests "
                                      f"render (ollama {OLLAMA_VERSION})", True)
    for row in RENDERERS:
        if all(m in chat_template for m in row.markers):
            markers = ", ".join(repr(m) for m in row.markers)
            return RendererMatch(row, f"the template has the {row.renderer} family's markers {markers} "
                                      f"(names from ollama {OLLAMA_VERSION})", False)
    return None
