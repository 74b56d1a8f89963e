"""Ollama's Modelfile parser, rewritten in Python from its rules (ollama/parser/parser.go:
ParseFile, parseRuneForState, unquote), to check that what edgepack writes reads back unchanged.

A rune-by-rune state machine: a command name (letters), a space, then a value that ends at a
newline only once the trimmed text so far unquotes (\"\"\"...\"\"\" or "..."); a space or an unfinished
quote keeps the value going. Runes that Go's strconv.IsPrint rejects are dropped, except the
spaces and newlines the value path writes itself.
"""

from __future__ import annotations

COMMANDS = {"from", "license", "template", "system", "adapter", "parameter", "message", "requires"}
ROLES = {"system", "user", "assistant"}


class ParseError(Exception):
    pass


def _is_space(r: str) -> bool:
    return r in " \t"


def _is_newline(r: str) -> bool:
    return r in "\r\n"


def _is_print(r: str) -> bool:
    # Go's strconv.IsPrint: letters, marks, numbers, punctuation, symbols and the ASCII space;
    # Python's str.isprintable draws the same line (Other and Separator categories are out).
    return r == " " or r.isprintable()


def _unquote(s: str) -> tuple[str, bool]:
    if len(s) >= 3 and s[:3] == '"""':
        if len(s) >= 6 and s[-3:] == '"""':
            return s[3:-3], True
        return "", False
    if len(s) >= 1 and s[0] == '"':
        if len(s) >= 2 and s[-1] == '"':
            return s[1:-1], True
        return "", False
    return s, True


def _trim(s: str) -> str:
    return s.strip(" \t\n\r\v\f\x85\xa0")  # Go's strings.TrimSpace (unicode.IsSpace)


def _next(r: str, state: str) -> tuple[str, str | None]:
    if state == "nil":
        if r == "#":
            return "comment", None
        if _is_space(r) or _is_newline(r):
            return "nil", None
        return "name", r
    if state in ("name", "parameter", "message"):  # a word (a parameter's may hold digits and _), then a space
        if r.isalpha() or (state == "parameter" and (r.isdigit() or r == "_")):
            return state, r
        if _is_space(r):
            return "value", None
        raise ParseError("invalid command" if state == "name" else "unexpected EOF")
    if state == "value":
        if _is_newline(r) or _is_space(r):
            return "nil", r
        return "value", r
    if state == "comment":
        return ("nil", None) if _is_newline(r) else ("comment", None)
    raise AssertionError(state)


def parse(text: str) -> list[tuple[str, str]]:
    """(command, argument) pairs, as Ollama's ParseFile returns them; PARAMETER gives (name, value)."""
    commands: list[tuple[str, str]] = []
    buf: list[str] = []
    state, name, role = "nil", "", ""
    for r in text:
        nxt, out = _next(r, state)
        if nxt != state:
            if state == "name":
                word = "".join(buf).lower()
                if word not in COMMANDS:
                    raise ParseError(f"invalid command {word!r}")
                if word == "from":
                    name = "model"
                elif word == "parameter":
                    nxt = "parameter"
                elif word == "message":
                    nxt, name = "message", word
                else:
                    name = word
            elif state == "parameter":
                name = "".join(buf)
            elif state == "message":
                role = "".join(buf)
                if role not in ROLES:
                    raise ParseError(f"invalid message role {role!r}")
            elif state == "value":
                value, ok = _unquote(_trim("".join(buf)))
                if not ok or _is_space(out):
                    buf.append(out)
                    continue
                if role:
                    value, role = f"{role}: {value}", ""
                commands.append((name, value))
            buf = []
            state = nxt
        if out is not None and _is_print(out):
            buf.append(out)
    if state == "value":
        value, ok = _unquote(_trim("".join(buf)))
        if not ok:
            raise ParseError("unexpected EOF")
        commands.append((name, f"{role}: {value}" if role else value))
    elif state not in ("nil", "comment"):
        raise ParseError("unexpected EOF")
    return commands
