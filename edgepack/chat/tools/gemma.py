"""Go text for Gemma 4's tools (the rows "gemma4" and "gemma4-interleaved" of chat.tools.layouts,
placed by modelfiles/chat/families/gemma4.gotmpl.j2), and the Go helpers that write values in
Gemma 4's own notation as the source's macros do.

Gemma 4 declares a tool as `<|tool>declaration:NAME{description:<|"|>...<|"|>,parameters:{...}}<tool|>`
and calls one as `<|tool_call>call:NAME{key:value,...}<tool_call|>`: strings between <|"|> quotes,
keys bare (a declaration's `enum` and `items` values: quoted), booleans true/false, objects and
lists as {...} and [...], anything else as Python's str() (numbers, None). Every mapping is
walked in dictsort's order (keys compared lower-cased): a Go map ranges by bytes, which is that
order unless a key has an upper-case letter, and then the helpers pick the keys pass by pass
(_sorted). Nested properties come as Ollama's ordered map, whose ToMap method (Ollama 0.14 and
later) gives them as a Go map. Type names are written upper-cased (`| upper`).

Hand-written because no library writes this notation in Go templates. Where it differs from the
source: lower and upper case are ASCII's (Python's also change other letters, É/é). Numbers are
Python's str() of what Ollama's JSON decodes (Go's JSON text, 1.23e-05 for 0.0000123). The helpers loop with
{{ range $i := len $ }} (Go 1.24): only in TEMPLATEs that read .Thinking, as these do. A tool with
an object-typed property needs Ollama 0.14 or later (ToolProperty.Properties, ToMap).
"""

from __future__ import annotations

import json
import string

Q = '<|"|>'  # Gemma 4's string quote
_STANDARD = '(eq $k "description" "type" "properties" "required" "nullable")'  # keys format_parameters skips


def _upper(var: str, expression: str) -> str:
    """Go actions setting `var` to `expression` (a string) with its ASCII letters upper-cased."""
    chain = "".join(f'{{{{ {"if" if i == 0 else "else if"} eq $ch "{c}" }}}}{{{{ $ch = "{c.upper()}" }}}}'
                    for i, c in enumerate(string.ascii_lowercase))
    return (f'{{{{ {var} := "" }}}}{{{{ $us := {expression} }}}}{{{{ range $ux := len $us }}}}'
            f'{{{{ $ch := slice (slice $us $ux) 0 1 }}}}{chain}{{{{ end }}}}{{{{ {var} = print {var} $ch }}}}{{{{ end }}}}')


def _type_text(source: str, kind: str) -> str:
    """`$ty` := what Jinja's `value['type'] | upper` reads before upper: the type name, a list of
    them as Python's str() of a list, "" when there is none; `kind` "struct" (Ollama's
    PropertyType) or "raw" (a JSON value)."""
    listed = (f'{{{{ $ty = "[" }}}}{{{{ range $j, $x := {source} }}}}{{{{ if $j }}}}{{{{ $ty = print $ty ", " }}}}{{{{ end }}}}'
              f"{{{{ $ty = print $ty \"'\" $x \"'\" }}}}{{{{ end }}}}{{{{ $ty = print $ty \"]\" }}}}")
    if kind == "struct":
        return (f'{{{{ $ty := "" }}}}{{{{ if eq (len {source}) 1 }}}}{{{{ $ty = index {source} 0 }}}}'
                f"{{{{ else if {source} }}}}{listed}{{{{ end }}}}")
    return (f'{{{{ $ty := "" }}}}{{{{ $tt := printf "%T" {source} }}}}{{{{ if eq $tt "string" }}}}{{{{ $ty = {source} }}}}'
            f'{{{{ else if eq $tt "[]interface {{}}" }}}}{listed}{{{{ end }}}}')


def _required(source: str) -> str:
    return f'required:[{{{{ range $j, $x := {source} }}}}{{{{ if $j }}}},{{{{ end }}}}{Q}{{{{ $x }}}}{Q}{{{{ end }}}}]'


_COMMA = '{{ $c }}{{ $c = "," }}'
_LOWER_TABLE = "." * 65 + string.ascii_lowercase  # an upper-case letter's byte, as an offset: its lower case


def _sorted(mapping: str, body: str) -> str:
    """Go actions running `body` with $k and $v for each entry of the Go map `mapping` in the order
    of Jinja's dictsort: keys compared lower-cased, equal ones in the order given (a Go map's, by
    bytes). A Go map ranges by bytes, which is that order unless a key has an upper-case letter:
    then each pass picks the next key by its lower-cased text (n passes over n keys)."""
    lower = ('{{ $kl := "" }}{{ range $lx := len $kk }}{{ $lc := slice (slice $kk $lx) 0 1 }}'
             f'{{{{ if and (ge $lc "A") (le $lc "Z") }}}}{{{{ $lc = slice (slice "{_LOWER_TABLE}" (index $lc 0)) 0 1 }}}}'
             "{{ end }}{{ $kl = print $kl $lc }}{{ end }}")
    upper_case = ('{{ $sm := ' + mapping + ' }}{{ $ci := false }}{{ range $kk, $kv := $sm }}{{ range $lx := len $kk }}'
                  '{{ $lc := slice (slice $kk $lx) 0 1 }}{{ if and (ge $lc "A") (le $lc "Z") }}{{ $ci = true }}{{ end }}'
                  "{{ end }}{{ end }}")
    passes = ('{{ $lastL := "" }}{{ $lastK := "" }}{{ $any := false }}{{ range $pass := len $sm }}'
              '{{ $bestK := "" }}{{ $bestL := "" }}{{ $got := false }}{{ range $kk, $kv := $sm }}' + lower
              + '{{ if or (not $any) (lt $lastL $kl) (and (eq $lastL $kl) (lt $lastK $kk)) }}'
              '{{ if or (not $got) (lt $kl $bestL) (and (eq $kl $bestL) (lt $kk $bestK)) }}'
              '{{ $bestK = $kk }}{{ $bestL = $kl }}{{ $got = true }}{{ end }}{{ end }}{{ end }}'
              '{{ $any = true }}{{ $lastK = $bestK }}{{ $lastL = $bestL }}{{ $k := $bestK }}{{ $v := index $sm $bestK }}'
              + body + "{{ end }}")
    return upper_case + "{{ if $ci }}" + passes + "{{ else }}{{ range $k, $v := $sm }}" + body + "{{ end }}{{ end }}"


dictsort_range = _sorted  # for other families' helpers (chat.tools.kimi3)


# A number as Python's str() writes what Ollama's JSON decodes it to: Go's JSON text, but for
# 1e-6 <= |x| < 1e-4, which Go writes 0.0000123 and Python 1.23e-05, and for a one-digit negative
# exponent, which Go writes 1e-7 and Python 1e-07.
_NUMBER = ('{{ $j := json . }}{{ $sign := "" }}{{ if and $j (eq (slice $j 0 1) "-") }}{{ $sign = "-" }}{{ $j = slice $j 1 }}'
           '{{ end }}{{ $sign }}{{ if and (ge (len $j) 7) (eq (slice $j 0 6) "0.0000") }}{{ $d := slice $j 6 }}'
           '{{ $e := "e-05" }}{{ if eq (slice $d 0 1) "0" }}{{ $d = slice $d 1 }}{{ $e = "e-06" }}{{ end }}'
           '{{ slice $d 0 1 }}{{ if gt (len $d) 1 }}.{{ slice $d 1 }}{{ end }}{{ $e }}'
           '{{ else if and (ge (len $j) 3) (eq (slice (slice $j (len (slice $j 3))) 0 2) "e-") }}'
           '{{ slice $j 0 (len (slice $j 1)) }}0{{ slice $j (len (slice $j 1)) }}{{ else }}{{ $j }}{{ end }}')


def _value(name: str, quote_keys: bool) -> str:
    """format_argument(value, escape_keys=quote_keys)."""
    key = f"{Q}{{{{ $k }}}}{Q}" if quote_keys else "{{ $k }}"
    return (f'{{{{- define "{name}" }}}}{{{{ $t := printf "%T" . }}}}{{{{ if eq $t "string" }}}}{Q}{{{{ . }}}}{Q}'
            '{{ else if eq $t "bool" }}{{ if . }}true{{ else }}false{{ end }}'
            '{{ else if eq $t "map[string]interface {}" }}{{ "{" }}{{ $n := "" }}'
            + _sorted(".", f'{{{{ $n }}}}{{{{ $n = "," }}}}{key}:{{{{ template "{name}" $v }}}}') + '{{ "}" }}'
            + f'{{{{ else if eq $t "[]interface {{}}" }}}}[{{{{ range $j, $v := . }}}}{{{{ if $j }}}},{{{{ end }}}}'
            f'{{{{ template "{name}" $v }}}}{{{{ end }}}}]{{{{ else if eq $t "<nil>" }}}}None{{{{ else }}}}{_NUMBER}'
            "{{ end }}{{ end }}")


def _property(p: str, kind: str, interleaved: bool) -> str:
    """One property's {...} as format_parameters writes it (helpers named `p`.*): `kind` "struct"
    (Ollama's ToolProperty: top-level and nested properties) or "raw" (a JSON value: under items).
    `interleaved`: that template's order (nullable before the rest; the nested properties and
    items led by a comma of their own, which sets nothing for the comma before type)."""
    if kind == "struct":
        get = {"description": ".Description", "enum": ".Enum", "items": ".Items", "required": ".Required"}
        head, is_map = '{{ "{" }}{{ $c := "" }}', "true"
        nullable = ""  # Ollama's ToolProperty has no nullable
        nested = (f'{{{{ if .Properties }}}}{{{{ template "{p}.props" .Properties.ToMap }}}}{{{{ else }}}}'
                  # `value is mapping`: the property's own keys, of which anyOf, enum and items are not standard
                  f'{{{{ $m := "" }}}}{{{{ if .AnyOf }}}}anyOf:{{{{ "{{" }}}}type:{Q}{Q}}}{{{{ $m = "," }}}}{{{{ end }}}}'
                  f'{{{{ if .Enum }}}}{{{{ $m }}}}enum:{{{{ "{{" }}}}type:{Q}{Q}}}{{{{ $m = "," }}}}{{{{ end }}}}'
                  f'{{{{ if ne (printf "%T" .Items) "<nil>" }}}}{{{{ $m }}}}items:{{{{ template "{p}.prop" .Items }}}}{{{{ end }}}}'
                  "{{ end }}")
        kind_text = _type_text(".Type", "struct")
    else:
        get = {k: f'(index . "{k}")' for k in ("description", "enum", "items", "required")}
        head, is_map = '{{ "{" }}{{ $c := "" }}{{ $map := eq (printf "%T" .) "map[string]interface {}" }}', "$map"
        nullable = f'{{{{ if $map }}}}{{{{ if index . "nullable" }}}}{_COMMA}nullable:true{{{{ end }}}}{{{{ end }}}}'
        nested = (f'{{{{ $pp := index . "properties" }}}}{{{{ if eq (printf "%T" $pp) "map[string]interface {{}}" }}}}'
                  f'{{{{ template "{p}.raw" $pp }}}}{{{{ else }}}}{{{{ template "{p}.raw" . }}}}{{{{ end }}}}')
        kind_text = ('{{ $tv := "" }}{{ if $map }}{{ $tv = index . "type" }}{{ end }}' + _type_text("$tv", "raw"))
    lead = "," if interleaved else _COMMA  # before nested properties, required and items
    description = (f'{{{{ if {is_map} }}}}{{{{ if {get["description"]} }}}}description:{Q}{{{{ {get["description"]} }}}}{Q}'
                   '{{ $c = "," }}{{ end }}{{ end }}')
    enum = f'{{{{ if {get["enum"]} }}}}{_COMMA}enum:{{{{ template "{p}.vk" {get["enum"]} }}}}{{{{ end }}}}'
    items = (f'{{{{ $it := {get["items"]} }}}}{{{{ if and (eq (printf "%T" $it) "map[string]interface {{}}") $it }}}}'
             f'{lead}items:{{{{ "{{" }}}}{{{{ template "{p}.items" $it }}}}}}{{{{ end }}}}')
    obj = (f'{lead}properties:{{{{ "{{" }}}}{nested}}}'
           f'{{{{ if {get["required"]} }}}}{lead}{_required(get["required"])}{{{{ end }}}}')
    if interleaved:
        body = (nullable + f'{{{{ if eq $up "STRING" }}}}{enum}{{{{ else if eq $up "OBJECT" }}}}{obj}'
                f'{{{{ else if eq $up "ARRAY" }}}}{items}{{{{ end }}}}')
    else:
        body = (f'{{{{ if eq $up "STRING" }}}}{enum}{{{{ else if eq $up "ARRAY" }}}}{items}{{{{ end }}}}' + nullable
                + f'{{{{ if eq $up "OBJECT" }}}}{obj}{{{{ end }}}}')
    return (f'{{{{- define "{p}.{"tp" if kind == "struct" else "prop"}" }}}}{head}{description}'
            + kind_text + _upper("$up", "$ty") + body + f'{{{{ $c }}}}type:{Q}{{{{ $up }}}}{Q}}}{{{{ end }}}}')


def _properties(name: str, each: str) -> str:
    """format_parameters over a Go map: each key but the standard ones, `key:{...}`, comma-separated."""
    return (f'{{{{- define "{name}" }}}}{{{{ $n := "" }}}}'
            + _sorted(".", f'{{{{ if not {_STANDARD} }}}}{{{{ $n }}}}{{{{ $n = "," }}}}{{{{ $k }}}}:{{{{ template "{each}" $v }}}}'
                           "{{ end }}") + "{{ end }}")


def _items(p: str) -> str:
    body = ('{{ if ne (printf "%T" $v) "<nil>" }}{{ $n }}{{ $n = "," }}{{ if eq $k "properties" }}properties:{{ "{" }}'
            f'{{{{ if eq (printf "%T" $v) "map[string]interface {{}}" }}}}{{{{ template "{p}.raw" $v }}}}{{{{ end }}}}}}'
            f'{{{{ else if eq $k "required" }}}}{_required("$v")}'
            f'{{{{ else if eq $k "type" }}}}type:{{{{ if eq (printf "%T" $v) "string" }}}}{_upper("$u", "$v")}{Q}{{{{ $u }}}}{Q}'
            f'{{{{ else }}}}[{{{{ range $j, $x := $v }}}}{{{{ if $j }}}},{{{{ end }}}}{_upper("$u", "$x")}{Q}{{{{ $u }}}}{Q}'
            f'{{{{ end }}}}]{{{{ end }}}}{{{{ else }}}}{{{{ $k }}}}:{{{{ template "{p}.vk" $v }}}}{{{{ end }}}}{{{{ end }}}}')
    return f'{{{{- define "{p}.items" }}}}{{{{ $n := "" }}}}' + _sorted(".", body) + "{{ end }}"


def _helpers(p: str, interleaved: bool) -> dict[str, str]:
    return {f"{p}.v": _value(f"{p}.v", False), f"{p}.vk": _value(f"{p}.vk", True),
            f"{p}.props": _properties(f"{p}.props", f"{p}.tp"), f"{p}.tp": _property(p, "struct", interleaved),
            f"{p}.raw": _properties(f"{p}.raw", f"{p}.prop"), f"{p}.prop": _property(p, "raw", interleaved),
            f"{p}.items": _items(p)}


# 31B-it's helpers and the interleaved template's (its format_parameters orders a property's fields otherwise)
_SETS = {"ep.gemma": _helpers("ep.gemma", False), "ep.gemma-il": _helpers("ep.gemma-il", True)}
GEMMA_HELPERS: dict[str, str] = {name: text for helpers in _SETS.values() for name, text in helpers.items()}
GEMMA_NEEDS = {name: tuple(n for n in helpers if n != name) for helpers in _SETS.values() for name in helpers}

# The pieces of the layouts
def _defs(p: str) -> str:
    return ('{{ range $t := $.Tools }}<|tool>declaration:{{ $t.Function.Name }}{{ "{" }}description:'
            f'{Q}{{{{ $t.Function.Description }}}}{Q},parameters:{{{{ "{{" }}}}'
            '{{ if $t.Function.Parameters.Properties }}properties:{{ "{" }}'
            f'{{{{ template "{p}.props" $t.Function.Parameters.Properties }}}}}},{{{{ end }}}}'
            f'{{{{ if $t.Function.Parameters.Required }}}}{_required("$t.Function.Parameters.Required")},{{{{ end }}}}'
            f'{{{{ if $t.Function.Parameters.Type }}}}{_upper("$pt", "$t.Function.Parameters.Type")}type:{Q}{{{{ $pt }}}}{Q}}}'
            "{{ end }}}<tool|>{{ end }}")


DEFS, DEFS_INTERLEAVED = _defs("ep.gemma"), _defs("ep.gemma-il")
_CALLS = ('{{ range $c := .ToolCalls }}<|tool_call>call:{{ $c.Function.Name }}{{ "{" }}{{ $n := "" }}'
          + _sorted("$c.Function.Arguments", '{{ $n }}{{ $n = "," }}{{ $k }}:{{ template "P.v" $v }}')
          + "}<tool_call|>{{ end }}")
# 31B-it: thinking (after the last user turn) before the calls, closed after a newline
CALLS = '{{ if and .Thinking (gt $i $lastUser) }}<|channel>thought\n{{ .Thinking }}\n<channel|>{{ end }}' + _CALLS.replace("P.v", "ep.gemma.v")
# the interleaved template: the same without the newline before <channel|>
CALLS_INTERLEAVED = ('{{ if and .Thinking (gt $i $lastUser) }}<|channel>thought\n{{ .Thinking }}<channel|>{{ end }}'
                     + _CALLS.replace("P.v", "ep.gemma-il.v"))
# 31B-it: one tool message ($m) answering the assistant message $_ whose calls it follows, named
# after the last of its calls with the message's call id, else the message's own tool name
RESULT = ('{{ $name := $m.ToolName }}{{ range $c := $_.ToolCalls }}{{ if eq $c.ID $m.ToolCallID }}'
          '{{ $name = $c.Function.Name }}{{ end }}{{ end }}<|tool_response>response:{{ $name }}{value:'
          f'{Q}{{{{ $m.Content }}}}{Q}}}<tool_response|>')
# the interleaved template: a tool turn of its own, its text trimmed
RESULT_INTERLEAVED = '<|turn>tool\n{{ template "ep.strip" .Content }}<turn|>{{ "\\n" }}'
HELPERS = ("strip", *(name[3:] for name in _SETS["ep.gemma"]))
HELPERS_INTERLEAVED = ("strip", *(name[3:] for name in _SETS["ep.gemma-il"]))
