"""Tools in Ollama Go TEMPLATEs: how each family writes tool definitions, calls and results.

`layout` says what a tool layout is, `layouts` is their table and `choice` chooses one from a
template's renders; a family
whose Go text is long keeps it in a module of its own here (`cohere`, `deepseek`, `dsml`, `gemma`,
`kimi3`, `minimax`, `minicpm`, `nemotron`, `hermes_pro`, `command_r_plus`, `seed`, `functionary`,
`families`); `tag` says where Ollama's generic tool parser finds calls in a reply.
"""

from edgepack.chat.tools.choice import CHOICE_TOOLS, TOOL_CHOICE, candidate_layouts, choose_layout, tools_hold
from edgepack.chat.tools.layout import ToolLayout
from edgepack.chat.tools.layouts import LAYOUTS
from edgepack.chat.tools.tag import ToolTag, declare_tag, reply_tag

__all__ = ["CHOICE_TOOLS", "LAYOUTS", "TOOL_CHOICE", "ToolLayout", "ToolTag", "candidate_layouts", "choose_layout",
           "declare_tag", "reply_tag", "tools_hold"]
