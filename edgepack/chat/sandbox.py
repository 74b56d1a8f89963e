"""Render a Hugging Face chat template the way transformers does, bounded in time, memory and size.

Chat templates come with the model and are untrusted. transformers renders them in jinja2's
sandbox, which stops attribute tricks but not work: nested loops run for ever, a huge string
or deep recursion end in MemoryError/RecursionError. So every render of a template runs in one
forked child process (all probes at once: one fork per template), under a CPU-time and
address-space limit, with a wall-clock deadline and a cap on the text it may return. The
parent never sees more than a list of strings or one-line errors.
"""

from __future__ import annotations

import multiprocessing
import re
from dataclasses import dataclass
from typing import Any, Iterable

from edgepack.chat.conversations import Message, Probe

TIME_LIMIT_S = 20.0  # for all renders of one template together
MEMORY_LIMIT_BYTES = 2 << 30  # address space the child may add to what it inherits
OUTPUT_LIMIT_CHARS = 200_000  # per render; real prompts for the probes are a few kB


@dataclass(frozen=True)
class SpecialTokens:
    """The token strings a chat template sees as `bos_token` / `eos_token` (None: undefined)."""

    bos: str | None = None
    eos: str | None = None

    def template_kwargs(self) -> dict[str, str]:
        # transformers passes only the special tokens a tokenizer defines.
        return {k: v for k, v in (("bos_token", self.bos), ("eos_token", self.eos)) if v is not None}


@dataclass(frozen=True)
class RenderJob:
    messages: tuple[Message, ...]
    kwargs: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, probe: Probe | tuple[Message, ...]) -> RenderJob:
        if isinstance(probe, Probe):
            return cls(probe.messages, tuple(probe.hf_kwargs().items()))
        return cls(tuple(probe))


@dataclass(frozen=True)
class RenderError:
    """Why a template did not render one conversation (one line)."""

    kind: str  # "raised" (the template refused, e.g. raise_exception), "undefined", "bound"
    message: str
    variable: str | None = None  # for "undefined": the variable the template needs

    def __str__(self) -> str:
        return self.message


class TemplateBoundError(Exception):
    """The template hit a time, memory, recursion or output bound: it is not rendered at all."""


def _render_one(template: str, job: RenderJob, tokens: SpecialTokens) -> str | RenderError:
    import jinja2
    from transformers.utils.chat_template_utils import render_jinja_template

    try:
        rendered, _ = render_jinja_template(
            conversations=[[m.to_dict() for m in job.messages]], chat_template=template,
            **{"add_generation_prompt": True, **tokens.template_kwargs(), **dict(job.kwargs)},
        )
    except jinja2.UndefinedError as exc:
        found = re.search(r"'([A-Za-z_][A-Za-z0-9_]*)' is undefined", str(exc))
        return RenderError("undefined", f"UndefinedError: {_line(exc)}", found.group(1) if found else None)
    except (RecursionError, MemoryError) as exc:
        return RenderError("bound", f"{type(exc).__name__} (the template recurses or allocates without bound)")
    except Exception as exc:  # a template's own error of any type: it refuses this conversation
        return RenderError("raised", f"{type(exc).__name__}: {_line(exc)}")
    text = rendered[0]
    if len(text) > OUTPUT_LIMIT_CHARS:
        return RenderError("bound", f"the template wrote more than {OUTPUT_LIMIT_CHARS} characters for a short chat")
    return text


def _line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200]


def _child(conn, template: str, jobs: list[RenderJob], tokens: SpecialTokens, time_limit_s: float) -> None:
    try:
        import resource

        cpu = int(time_limit_s) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        try:
            import psutil

            used = psutil.Process().memory_info().vms
            resource.setrlimit(resource.RLIMIT_AS, (used + MEMORY_LIMIT_BYTES, used + MEMORY_LIMIT_BYTES))
        except (ImportError, ValueError, OSError):
            pass
    except ImportError:  # not on POSIX: the wall-clock deadline still holds
        pass
    results = [_render_one(template, job, tokens) for job in jobs]
    conn.send(results)
    conn.close()


def _context():
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def render_many(template: str, jobs: Iterable[RenderJob], tokens: SpecialTokens,
                *, time_limit_s: float | None = None) -> list[str | RenderError]:
    """Render `template` for every job (add_generation_prompt=True unless a job says otherwise), in one bounded child process.

    Returns, per job, the text or the RenderError the template raised for it. Raises
    TemplateBoundError when the template ran out of time or memory as a whole.
    """
    import transformers.utils.chat_template_utils  # noqa: F401  imported once, before forking

    jobs = list(jobs)
    time_limit_s = TIME_LIMIT_S if time_limit_s is None else time_limit_s
    ctx = _context()
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(send, template, jobs, tokens, time_limit_s), daemon=True)
    proc.start()
    send.close()
    try:
        if not receive.poll(time_limit_s):
            raise TemplateBoundError(f"rendering took longer than {time_limit_s:g} s (a loop without bound?)")
        try:
            results = receive.recv()
        except (EOFError, OSError):
            raise TemplateBoundError("rendering ran out of its memory or CPU limit") from None
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join(5)
        receive.close()
    return results


def with_empty_tool_list(template: str, jobs: list[RenderJob], results: list[str | RenderError],
                         tokens: SpecialTokens) -> dict[int, str]:
    """For the jobs without tools that `template` failed on (not on purpose), their renders given
    an empty tool list, where that renders: by index into `jobs`.

    A tool-use template (Hermes 2 Pro/3 tool_use, Command R+ tool_use) loops over `tools` and fails
    on transformers' tools=None; Ollama gives a TEMPLATE an empty .Tools for a request without tools,
    which is what such a template is compared with there. Raises TemplateBoundError like render_many.
    """
    retry = [i for i, (job, result) in enumerate(zip(jobs, results))
             if isinstance(result, RenderError) and result.kind == "raised" and not result.message.startswith("TemplateError:")
             and "tools" not in dict(job.kwargs)]
    if not retry:
        return {}
    again = render_many(template, [RenderJob(jobs[i].messages, jobs[i].kwargs + (("tools", []),)) for i in retry], tokens)
    return {i: text for i, text in zip(retry, again) if isinstance(text, str)}


def render_hf(chat_template: str, messages: Iterable[Message], tokens: SpecialTokens, **kwargs: Any) -> str:
    """One render, as `apply_chat_template(..., add_generation_prompt=True)`, bounded.

    Raises ChatTemplateError (one line) when the template refuses the conversation or hits a bound.
    """
    from edgepack.errors import ChatTemplateError

    try:
        [result] = render_many(chat_template, [RenderJob(tuple(messages), tuple(kwargs.items()))], tokens)
    except TemplateBoundError as exc:
        raise ChatTemplateError(f"the chat template cannot be rendered: {exc}") from None
    if isinstance(result, RenderError):
        raise ChatTemplateError(f"the chat template cannot be rendered ({result})")
    return result
