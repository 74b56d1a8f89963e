"""A model of Go's text/template, for the part Ollama TEMPLATEs use, run the way Ollama runs them.

Hand-written because no Python library executes Go templates; it covers text, trim markers,
comments, if/else if/else, range (with else, variables, break and continue), variables and
assignment, fields, string/number literals, parentheses, the builtins below (printf with the
%s, %v, %d verbs), Ollama's own functions (json, currentDate), and named templates ({{ define }}
at the top level, {{ template "name" pipeline }}; edgepack's own helpers, edgepack.chat.gohelpers,
run as the Python functions they are proven equal to). Anything else raises GoTemplateError, so a
template is never half-run. Go's real text/template is the oracle in
tests/test_chat_templates.py (tests/go).
Longer than ~400 lines as one job: the lexer, parser and evaluator share the node types.
"""

from __future__ import annotations

import datetime
import json
import re
from dataclasses import dataclass
from typing import Any

from edgepack.errors import GoTemplateError

_GO_SPACE = " \t\r\n"  # what text/template's trim markers remove


def _go_truth(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, OrderedMap):  # a non-nil *api.ToolPropertiesMap, even when empty
        return True
    if isinstance(value, (str, list, tuple, dict)):
        return len(value) > 0 or isinstance(value, GoStruct)  # a struct is never empty
    return True


class GoStruct(dict):
    """A Go struct value in Ollama's template data: its fields by their Go names (what a template
    reads), and how encoding/json writes it: `tags` gives, in field order, (Go name, JSON name,
    omitempty). `printable`: the type has a String() method (Ollama's tool types print as JSON)."""

    def __init__(self, tags: tuple[tuple[str, str, bool], ...], values: dict[str, Any], printable: bool = False):
        super().__init__(values)
        self.tags = tags
        self.printable = printable


class OrderedMap(dict):
    """A map type that keeps and writes its keys in insertion order (Ollama's ToolPropertiesMap)."""


class PropertyType(list):
    """Ollama's api.PropertyType: a list of type names, written as a plain string when it has one."""

    def __str__(self) -> str:  # its String()
        return self[0] if len(self) == 1 else "[" + " ".join(self) + "]" if self else ""


def _float_text(x: float, fixed_below: float, fixed_from: float, exponent_digits: int) -> str:
    """Go's shortest text of a float64: fixed notation for 0 and from `fixed_from` up to (not
    including) `fixed_below`, else d.ddde±XX with at least `exponent_digits` exponent digits.
    encoding/json: fixed from 1e-6 to 1e21, 1e-7 (Python's json writes 18.0 and 1e-05 where Go
    writes 18 and 0.00001); fmt's %v (strconv 'g', shortest): fixed from 1e-4 to 1e6, 1e+06."""
    from decimal import Decimal

    digits = Decimal(repr(x)).normalize()
    if x == 0 or fixed_from <= abs(x) < fixed_below:
        return format(digits, "f")
    mantissa, _, exponent = format(digits, "e").partition("e")
    sign, number = exponent[0], exponent[1:]
    return f"{mantissa}e{sign}{number.zfill(exponent_digits)}"


def _go_float(x: float) -> str:
    """encoding/json's float64."""
    if x != x or x in (float("inf"), float("-inf")):
        raise GoTemplateError("json: unsupported value")
    return _float_text(x, 1e21, 1e-6, 1)


def _go_marshal(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, PropertyType) and len(value) == 1:
        return _go_marshal(value[0])
    if isinstance(value, GoStruct):
        fields = [(name, value[go]) for go, name, omitempty in value.tags
                  if not (omitempty and value[go] in (None, "", 0, False, [], {}))]
        return "{" + ",".join(f"{json.dumps(k, ensure_ascii=False)}:{_go_marshal(v)}" for k, v in fields) + "}"
    if isinstance(value, dict):  # a Go map: keys sorted (an OrderedMap: as they are)
        keys = list(value) if isinstance(value, OrderedMap) else sorted(value)
        return "{" + ",".join(f"{json.dumps(k, ensure_ascii=False)}:{_go_marshal(value[k])}" for k in keys) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_go_marshal(v) for v in value) + "]"
    raise GoTemplateError(f"json of a {type(value).__name__} is not modelled")


def go_json(value: Any) -> str:
    """Go's json.Marshal: compact, map keys sorted, struct fields in order (GoStruct), and <, >, &,
    U+2028, U+2029 escaped as \\u003c, \\u003e, \\u0026, \\u2028, \\u2029."""
    text = _go_marshal(value)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


class JSONList(list):
    """A Go slice type whose String() writes it as JSON (Ollama's templateTools)."""


class JSONMap(dict):
    """A Go map type whose String() writes it as JSON (Ollama's templateArgs, templateProperties)."""


def _go_v(value: Any) -> str:
    """fmt's %v of a value inside a slice or map (Go prints a nil there as <nil>)."""
    if value is None:
        return "<nil>"
    if isinstance(value, float):  # %v of a float64: shortest digits, an exponent below 1e-4 and from 1e6
        if value != value or value in (float("inf"), float("-inf")):
            return {"nan": "NaN", "inf": "+Inf", "-inf": "-Inf"}[repr(value)]
        return _float_text(value, 1e6, 1e-4, 2)
    return _go_print(value)


def _go_print(value: Any) -> str:
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, PropertyType):
        return str(value)
    if isinstance(value, (JSONList, JSONMap)) or isinstance(value, GoStruct) and value.printable:
        return go_json(value)  # Ollama's tool types print themselves as JSON (their String())
    if isinstance(value, GoStruct):
        raise GoTemplateError("printing a Go struct without a String method is not modelled")
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(_go_v(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go_v(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, float):
        return _go_v(value)
    return str(value)


def _go_eq(a: Any, *others: Any) -> bool:
    return any(type(a) is type(b) and a == b for b in others)


# Go strings are bytes: len, slice and index count UTF-8 bytes. A string cut inside a character
# is kept with the cut bytes as surrogate escapes, so that it compares unequal to any whole
# character and turns back into the same bytes when sliced again or printed.
def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _go_len(value: Any) -> int:
    return len(_bytes(value)) if isinstance(value, str) else len(value)


def _go_slice(seq: Any, *idx: int) -> Any:
    if len(idx) not in (1, 2):
        raise GoTemplateError("slice takes one or two indexes here")
    raw = _bytes(seq) if isinstance(seq, str) else seq
    start, end = idx[0], idx[1] if len(idx) == 2 else len(raw)
    if not 0 <= start <= end <= len(raw):
        raise GoTemplateError(f"slice: index out of range: {start}:{end} of {len(raw)}")
    part = raw[start:end]
    return part.decode("utf-8", "surrogateescape") if isinstance(seq, str) else part


def _go_index(seq: Any, *keys: Any) -> Any:
    for k in keys:
        if isinstance(seq, dict):
            seq = seq.get(k)  # a missing key: the zero value
            continue
        try:
            seq = _bytes(seq)[k] if isinstance(seq, str) else seq[k]
        except (IndexError, KeyError, TypeError):
            raise GoTemplateError(f"error calling index: index out of range: {k}") from None
    return seq


_PRINTF_VERB = re.compile(r"%(.)")


def _go_type(value: Any) -> str:
    """%T of a value as Go holds it (a JSON value decoded into `any`: tool-call arguments)."""
    if value is None:
        return "<nil>"
    for kind, name in ((bool, "bool"), (str, "string"), (float, "float64"), (int, "int"),
                       (dict, "map[string]interface {}"), (list, "[]interface {}")):
        if isinstance(value, kind):
            return name
    raise GoTemplateError(f"printf %T of a {type(value).__name__} is not modelled")


def _go_sprintf(fmt: str, *args: Any) -> str:
    """fmt.Sprintf for the verbs Ollama's templates use (%s, %v, %d, %T, %%); others raise."""
    values = list(args)

    def verb(m: re.Match) -> str:
        if m.group(1) == "%":
            return "%"
        if m.group(1) == "T":
            if not values:
                raise GoTemplateError("printf: too few arguments")
            return _go_type(values.pop(0))
        if m.group(1) not in "svd":
            raise GoTemplateError(f"printf verb %{m.group(1)} is not supported here")
        if not values:
            raise GoTemplateError("printf: too few arguments")
        value = values.pop(0)
        if m.group(1) == "d" and (isinstance(value, bool) or not isinstance(value, int)):
            raise GoTemplateError("printf %d of a value that is not an integer")
        return _go_print(value)

    out = _PRINTF_VERB.sub(verb, fmt)
    if values:
        raise GoTemplateError("printf: too many arguments")
    return out


# text/template's html (HTMLEscapeString): one string as it is, other operands through fmt.Sprint
_HTML = {"\"": "&#34;", "'": "&#39;", "&": "&amp;", "<": "&lt;", ">": "&gt;", "\0": "\ufffd"}


def go_html(*args: Any) -> str:
    text = args[0] if len(args) == 1 and isinstance(args[0], str) else _go_sprint(args)
    return "".join(_HTML.get(c, c) for c in text)


_GO_FUNCS = {
    "not": lambda a: not _go_truth(a),
    "eq": _go_eq,
    "ne": lambda a, b: not _go_eq(a, b),
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "len": _go_len,
    "index": _go_index,
    "slice": _go_slice,
    "html": go_html,
    # Ollama's own functions (template/template.go)
    "json": go_json,
    "print": lambda *args: _go_sprint(args),
    "printf": _go_sprintf,
    "currentDate": lambda *fmt: TODAY.get().isoformat(),
    "yesterdayDate": lambda *fmt: (TODAY.get() - datetime.timedelta(days=1)).isoformat(),
}


def _go_sprint(args) -> str:
    """fmt.Sprint: operands joined, with a space between two operands that are both not strings."""
    out = ""
    for i, a in enumerate(args):
        if i and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out += " "
        out += _go_print(a)
    return out


class _Today:
    """The date `currentDate` returns; proofs pin it so that both sides see one day."""

    def __init__(self) -> None:
        self.fixed: datetime.date | None = None

    def get(self) -> datetime.date:
        return self.fixed or datetime.date.today()


TODAY = _Today()

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<str>"(?:[^"\\]|\\.)*")
      | (?P<num>-?\d+)
      | (?P<decl>:=)
      | (?P<assign>=)
      | (?P<lparen>\()
      | (?P<rparen>\)(?:\.[A-Za-z0-9_]+)*)  # a field chain may follow a parenthesised pipeline
      | (?P<comma>,)
      | (?P<var>\$[A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)
      | (?P<field>(?:\.[A-Za-z0-9_]+)+|\.)
      | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)


def _lex_action(src: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    while pos < len(src):
        if src[pos:].strip() == "":
            break
        m = _TOKEN.match(src, pos)
        if not m or m.end() == pos:
            raise GoTemplateError(f"unsupported Go template syntax near {src[pos:pos + 20]!r}")
        kind = m.lastgroup
        tokens.append((kind, m.group(kind)))
        pos = m.end()
    return tokens


@dataclass
class _Text:
    text: str


@dataclass
class _Action:
    tokens: list


@dataclass
class _If:
    branches: list  # [(tokens, body)], else body has tokens None


@dataclass
class _Range:
    tokens: list
    body: list
    else_body: list


@dataclass
class _Call:
    name: str
    tokens: list  # the pipeline whose value the named template runs on


@dataclass
class _Define:
    name: str
    body: list


@dataclass
class _LoopControl:
    kind: str  # "break" or "continue"


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


def action_end(source: str, pos: int) -> int:
    """Where the `}}` closing the action whose text starts at `pos` begins (string literals skipped)."""
    end = pos
    while True:
        if source.startswith("}}", end):
            return end
        if end >= len(source):
            raise GoTemplateError("unclosed action")
        if source[end] == '"':
            end += 1
            while source[end] != '"':
                end += 2 if source[end] == "\\" else 1
        end += 1


class GoTemplate:
    def __init__(self, source: str):
        from edgepack.chat import gohelpers

        self.defines: dict[str, list] = {}
        self.nodes = self._parse(self._split(source))
        # edgepack's helpers, defined exactly as gohelpers writes them, run natively (their Go
        # text is proven equal to the Python function in tests/test_go_helpers.py).
        self.native = {}
        for name in self.defines:
            text = gohelpers.text_of(name)
            if text and source.count(text) == 1 and source.count(f"define {json.dumps(name, ensure_ascii=False)}") == 1:
                native = gohelpers.native_of(name)
                if native is not None:
                    self.native[name] = native
        self._depth = 0

    # lexing into text and actions, applying trim markers
    @staticmethod
    def _split(source: str) -> list[tuple[str, str]]:
        parts: list[tuple[str, str]] = []
        pos = 0
        trim_next = False
        while True:
            start = source.find("{{", pos)
            text = source[pos:] if start < 0 else source[pos:start]
            if trim_next:
                text = text.lstrip(_GO_SPACE)
            if start < 0:
                parts.append(("text", text))
                return parts
            inner_start = start + 2
            if source.startswith("- ", inner_start) or source.startswith("-\n", inner_start):
                text = text.rstrip(_GO_SPACE)
                inner_start += 1
            parts.append(("text", text))
            end = action_end(source, inner_start)
            inner = source[inner_start:end]
            trim_next = inner.endswith(" -") or inner.endswith("\n-")
            if trim_next:
                inner = inner[:-1]
            inner = inner.strip()
            if not (inner.startswith("/*") and inner.endswith("*/")):
                parts.append(("action", inner))
            pos = end + 2

    def _parse(self, parts: list[tuple[str, str]]) -> list:
        stack: list[tuple[Any, list]] = []  # (control node, current body list)
        root: list = []
        body = root
        for kind, value in parts:
            if kind == "text":
                if value:
                    body.append(_Text(value))
                continue
            tokens = _lex_action(value)
            head = tokens[0][1] if tokens and tokens[0][0] == "ident" else None
            if head == "if":
                node = _If([(tokens[1:], [])])
                body.append(node)
                stack.append((node, body))
                body = node.branches[0][1]
            elif head == "range":
                node = _Range(tokens[1:], [], [])
                body.append(node)
                stack.append((node, body))
                body = node.body
            elif head == "else":
                node, _ = stack[-1]
                rest = tokens[1:]
                if isinstance(node, _If):
                    if rest and rest[0] == ("ident", "if"):
                        node.branches.append((rest[1:], []))
                    else:
                        node.branches.append((None, []))
                    body = node.branches[-1][1]
                elif isinstance(node, _Range) and not rest:
                    body = node.else_body
                else:
                    raise GoTemplateError(f"unsupported else: {value!r}")
            elif head == "end":
                _, body = stack.pop()
            elif head in ("break", "continue"):
                if not any(isinstance(node, _Range) for node, _ in stack):
                    raise GoTemplateError(f"{{{{ {head} }}}} outside of a range")
                body.append(_LoopControl(head))
            elif head == "define":
                if stack or len(tokens) != 2 or tokens[1][0] != "str":
                    raise GoTemplateError("{{ define }} is supported only at the top level, with a name")
                name = json.loads(tokens[1][1])
                if name in self.defines:
                    raise GoTemplateError(f"template {name!r} defined twice")
                node = _Define(name, [])
                self.defines[name] = node.body
                stack.append((node, body))
                body = node.body
            elif head == "template":
                if len(tokens) < 3 or tokens[1][0] != "str":
                    # Ollama's Identifiers refuses a {{ template }} without a pipeline
                    raise GoTemplateError("{{ template }} needs a name and a pipeline here")
                body.append(_Call(json.loads(tokens[1][1]), tokens[2:]))
            elif head in ("with", "block"):
                raise GoTemplateError(f"unsupported Go template action {head!r}")
            else:
                body.append(_Action(tokens))
        if stack:
            raise GoTemplateError("missing {{ end }}")
        return root

    # evaluation
    def execute(self, data: dict[str, Any]) -> str:
        out: list[str] = []
        self._run(self.nodes, data, [{"$": data}], out)
        return _bytes("".join(out)).decode("utf-8", "replace")  # cut characters print as Go's bytes would

    def _run(self, nodes: list, dot: Any, scopes: list[dict], out: list[str]) -> None:
        for node in nodes:
            if isinstance(node, _Text):
                out.append(node.text)
            elif isinstance(node, _Action):
                value, declared = self._pipeline(node.tokens, dot, scopes)
                if not declared:
                    out.append(_go_print(value))
            elif isinstance(node, _If):
                for tokens, body in node.branches:
                    if tokens is None or _go_truth(self._pipeline(tokens, dot, scopes)[0]):
                        self._run(body, dot, scopes + [{}], out)
                        break
            elif isinstance(node, _Range):
                tokens = node.tokens
                names: list[str] = []
                if any(t[0] == "decl" for t in tokens):
                    split = [i for i, t in enumerate(tokens) if t[0] == "decl"][0]
                    names = [t[1] for t in tokens[:split] if t[0] == "var"]
                    tokens = tokens[split + 1:]
                seq = self._pipeline(tokens, dot, scopes)[0] or []
                if isinstance(seq, int) and not isinstance(seq, bool):
                    seq = range(seq)  # Go 1.24: range over an integer yields 0..n-1
                if isinstance(seq, (OrderedMap, GoStruct)):
                    raise GoTemplateError(f"range can't iterate over a {type(seq).__name__}")
                pairs = ([(k, seq[k]) for k in sorted(seq)] if isinstance(seq, dict)  # a Go map: its values, keys sorted
                         else list(enumerate(seq)))
                if not pairs:
                    self._run(node.else_body, dot, scopes + [{}], out)
                for i, item in pairs:
                    scope: dict[str, Any] = {}
                    if len(names) == 1:
                        scope[names[0]] = item  # the element (for an integer range, the integer)
                    elif len(names) == 2:
                        scope[names[0]], scope[names[1]] = i, item
                    try:
                        self._run(node.body, item, scopes + [scope], out)
                    except _Continue:
                        continue
                    except _Break:
                        break
            elif isinstance(node, _LoopControl):
                raise _Break() if node.kind == "break" else _Continue()
            elif isinstance(node, _Call):
                self._call(node, dot, scopes, out)

    def _call(self, node: _Call, dot: Any, scopes: list[dict], out: list[str]) -> None:
        from edgepack.chat.gohelpers import MAX_DEPTH, depth

        if node.name not in self.defines:
            raise GoTemplateError(f"no such template {node.name!r}")
        value = self._pipeline(node.tokens, dot, scopes)[0]
        if node.name in self.native:
            if not isinstance(value, str):
                raise GoTemplateError(f"{node.name} takes a string")
            if self._depth + depth(node.name, value) > MAX_DEPTH:
                raise GoTemplateError(f"exceeded maximum template depth ({MAX_DEPTH})")
            out.append(self.native[node.name](value))
            return
        if self._depth >= MAX_DEPTH:
            raise GoTemplateError(f"exceeded maximum template depth ({MAX_DEPTH})")
        self._depth += 1
        try:
            self._run(self.defines[node.name], value, [{"$": value}], out)
        except RecursionError:
            raise GoTemplateError(f"template {node.name!r} nests deeper than this model follows") from None
        finally:
            self._depth -= 1

    def _pipeline(self, tokens: list, dot: Any, scopes: list[dict]) -> tuple[Any, bool]:
        """Evaluate `$x := ...`, `$x = ...` or a plain command; returns (value, was_assignment)."""
        if len(tokens) >= 2 and tokens[0][0] == "var" and tokens[1][0] in ("decl", "assign"):
            value = self._command(tokens[2:], dot, scopes)
            name = tokens[0][1]
            if tokens[1][0] == "decl":
                scopes[-1][name] = value
            else:
                for scope in reversed(scopes):
                    if name in scope:
                        scope[name] = value
                        break
                else:
                    raise GoTemplateError(f"undefined variable {name}")
            return value, True
        return self._command(tokens, dot, scopes), False

    def _command(self, tokens: list, dot: Any, scopes: list[dict]) -> Any:
        args, pos = [], 0
        while pos < len(tokens):
            arg, pos = self._operand(tokens, pos, dot, scopes)
            args.append(arg)
        if not args:
            raise GoTemplateError("empty command")
        head = args[0]
        if isinstance(head, _Func):
            return head.call(self, args[1:], dot, scopes)
        if len(args) > 1:
            raise GoTemplateError("only functions take arguments")
        return head.value if isinstance(head, _Lazy) else head

    def _operand(self, tokens: list, pos: int, dot: Any, scopes: list[dict]) -> tuple[Any, int]:
        kind, text = tokens[pos]
        if kind == "ident":
            if text in ("and", "or"):
                return _Func(text), pos + 1
            if text in _GO_FUNCS:
                return _Func(text), pos + 1
            if text in ("true", "false"):
                return text == "true", pos + 1
            raise GoTemplateError(f"unknown function {text!r}")
        if kind == "lparen":
            depth, end = 1, pos + 1
            while depth:
                depth += {"lparen": 1, "rparen": -1}.get(tokens[end][0], 0)
                end += 1
            inner = tokens[pos + 1:end - 1]
            chain = tokens[end - 1][1].split(".")[1:]
            return _Lazy(lambda: _fields(self._command(inner, dot, scopes), chain)), end
        if kind == "str":
            return json.loads(text), pos + 1
        if kind == "num":
            return int(text), pos + 1
        if kind == "field":
            return _fields(dot, text.split(".")[1:] if text != "." else []), pos + 1
        if kind == "var":
            name, *path = text.split(".")
            for scope in reversed(scopes):
                if name in scope:
                    return _fields(scope[name], path), pos + 1
            raise GoTemplateError(f"undefined variable {name}")
        raise GoTemplateError(f"unexpected {text!r}")


class _Lazy:
    """A parenthesised pipeline, evaluated when used (so `and`/`or` can short-circuit)."""

    def __init__(self, thunk):
        self._thunk = thunk

    @property
    def value(self) -> Any:
        return self._thunk()


@dataclass
class _Func:
    name: str

    def call(self, tmpl: GoTemplate, args: list, dot: Any, scopes: list[dict]) -> Any:
        def value(a):
            if isinstance(a, _Func):  # a function name as an argument is called without arguments
                return a.call(tmpl, [], dot, scopes)
            return a.value if isinstance(a, _Lazy) else a

        if self.name in ("and", "or"):
            result = None
            for a in args:  # Go evaluates and/or lazily and returns the deciding argument
                result = value(a)
                if _go_truth(result) != (self.name == "and"):
                    return result
            return result
        return _GO_FUNCS[self.name](*[value(a) for a in args])


def _fields(value: Any, path: list[str]) -> Any:
    for name in path:
        if isinstance(value, OrderedMap) and name == "ToMap":  # api.ToolPropertiesMap's method: a Go map
            value = dict(value)
            continue
        if not isinstance(value, dict) or name not in value:
            raise GoTemplateError(f"no field {name!r}")
        value = value[name]
    return value
