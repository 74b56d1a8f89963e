"""Ollama's tool data and Go's json in edgepack's Go model, and the "ep.pyjson" helper that writes
Go's JSON the way transformers' `tojson` does, each against Go's real text/template."""

from __future__ import annotations

import json
import random
import subprocess

import pytest

from edgepack.chat import gohelpers, gojson
from edgepack.chat.conversations import Message, ToolCall, ollama_template_data, template_tool_values
from edgepack.chat.gotemplate import GoTemplate
from edgepack.errors import GoTemplateError

PYJSON = ('{{ if .Messages }}{{ end }}{{ template "ep.pyjson" (json .Value) }}'
          + gojson.JSON_HELPERS["ep.pyjson"] + gojson.JSON_HELPERS["ep.pyjson.s"])
# Characters each side writes differently or escapes: quotes, backslashes, HTML characters, the
# line and paragraph separators, control characters (Go >= 1.22 writes \b and \f short, as Python).
CHARS = ["a", "é", "日", "🙂", '"', "\\", "<", ">", "&", "\u2028", "\u2029", "\n", "\r", "\t", "\x00", "\x08",
         "\x0c", "\x1b", "\x7f", "/", " ", ",", ":", "{", "}", "[", "]", "u", "0"]


def _values(n: int) -> list:
    rng = random.Random(20261125)

    def text() -> str:
        return "".join(rng.choice(CHARS) for _ in range(rng.randint(0, 24)))

    def value(depth: int = 0):
        kind = rng.randint(0, 6 if depth < 3 else 1)
        if kind == 0:
            return text()
        if kind == 1:
            return rng.choice([0, 1, -5, 123456, True, False, None, 0.5, -2.25])
        if kind in (2, 3):
            return {text(): value(depth + 1) for _ in range(rng.randint(0, 3))}
        return [value(depth + 1) for _ in range(rng.randint(0, 3))]

    return [value() for _ in range(n)] + [{"city": "Paris"}, [], {}, "", "x" * 50 + '"' + "y" * 20 + "\\u003c"]


def _go(go_renderer, jobs: list[dict]) -> list[dict]:
    proc = subprocess.run([str(go_renderer)], input=json.dumps(jobs), capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


def _jobs(template: str, values) -> list[dict]:
    """One Go render of `template` per value, as .Value beside a one-message conversation."""
    return [{"template": template, "messages": [{"role": "user", "content": "x"}], "value": v} for v in values]


def _data(value) -> dict:
    """The same data for edgepack's Go model."""
    return {"Messages": [{"Role": "user", "Content": "x"}], "Value": value}


def _writes_json_dumps(go_renderer, template: str, native: str, values: list, *, ensure_ascii: bool) -> None:
    """`template` writes each value as json.dumps(ensure_ascii=…, sort_keys=True) does (Go maps are
    sorted), in real Go and in edgepack's model, which runs the helper `native` natively."""
    model = GoTemplate(template)
    assert list(model.native) == [native]
    for value, got in zip(values, _go(go_renderer, _jobs(template, values))):
        want = json.dumps(value, ensure_ascii=ensure_ascii, sort_keys=True)
        assert got == {"output": want}, repr(value)
        assert model.execute(_data(value)) == want


def test_pyjson_writes_what_python_json_dumps_writes_in_real_go(go_renderer):
    """Go's json then "ep.pyjson", in Go's real text/template, equals Python's json.dumps with
    ensure_ascii=False (keys sorted: Go maps are); edgepack's model runs it natively, the same."""
    _writes_json_dumps(go_renderer, PYJSON, "ep.pyjson", _values(400), ensure_ascii=False)


def test_escaped_pyjson_writes_what_markupsafe_escapes_in_real_go(go_renderer):
    """"ep.pyjson.html" in Go's real text/template equals markupsafe's escape of json.dumps (what
    transformers' jinja2 writes for `"text"|safe + value|tojson`); the model's native and its Go
    text (renamed, so not native) agree with Go."""
    from markupsafe import escape

    template = ('{{ if .Messages }}{{ end }}{{ template "ep.pyjson.html" (json .Value) }}'
                + gojson.JSON_HELPERS["ep.pyjson.html"] + gojson.JSON_HELPERS["ep.pyjson.html.s"])
    renamed = template.replace('"ep.', '"my.')
    assert list(GoTemplate(template).native) == ["ep.pyjson.html"] and GoTemplate(renamed).native == {}
    values = _values(300) + ["it's", {"o'k": ["'", "<'&'>"]}]
    jobs = _jobs(template, values)
    for i, (value, got) in enumerate(zip(values, _go(go_renderer, jobs))):
        want = str(escape(json.dumps(value, ensure_ascii=False, sort_keys=True)))
        assert got == {"output": want}, repr(value)
        data = _data(value)
        assert GoTemplate(template).execute(data) == want
        if i < 40 and len(want) < 120:  # the model's recursion is plain Python
            assert GoTemplate(renamed).execute(data) == want


def test_go_html_function_in_the_model_is_go_s(go_renderer):
    """text/template's `html` builtin as the model runs it, against Go, on every character it escapes."""
    template = '{{ if .Messages }}{{ end }}{{ html .Value }}|{{ html 1 "<" }}'
    values = ["a<b>&'\"c", "\x00", "日本 🙂", "", "&amp;"]
    jobs = _jobs(template, values)
    for value, got in zip(values, _go(go_renderer, jobs)):
        assert GoTemplate(template).execute(_data(value)) == got["output"]
    assert _go(go_renderer, jobs[:1])[0]["output"] == "a&lt;b&gt;&amp;&#39;&#34;c|1&lt;"


def test_pyjson_go_text_runs_in_the_model_like_go(go_renderer):
    """Renamed, the helper's Go text runs in the model (not natively): the same as Go."""
    template = PYJSON.replace('"ep.', '"my.')
    model = GoTemplate(template)
    assert model.native == {}
    values = [v for v in _values(200) if len(json.dumps(v)) < 80][:60]  # the model's recursion is plain Python
    assert len(values) == 60
    jobs = _jobs(template, values)
    for value, got in zip(values, _go(go_renderer, jobs)):
        assert model.execute(_data(value)) == got["output"]


def test_pyjson_depth_limit_is_a_template_error_in_go_and_the_model(go_renderer):
    """Past Go's 100,000 nested calls: a template error in Go (not a crash), refused by the model too;
    a long plain string goes 8 bytes a call, so 200 KB of it is still written."""
    structural = [[0] * 60_000]  # "0,0,0...": two bytes, two calls each
    long_text = "x" * 200_000
    jobs = _jobs(PYJSON, (structural, long_text))
    deep, long = _go(go_renderer, jobs)
    assert "maximum template depth" in deep.get("error", ""), deep
    assert long == {"output": json.dumps(long_text)}
    model = GoTemplate(PYJSON)
    with pytest.raises(GoTemplateError, match="maximum template depth"):
        model.execute(_data(structural))
    assert model.execute(_data(long_text)) == json.dumps(long_text)


TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Weather <now> & later",
        "parameters": {"type": "object", "properties": {
            "unit": {"type": "string", "enum": ["c", "f"], "description": "unit"},
            "city": {"type": ["string", "null"], "description": "City"},
            "where": {"type": "object", "properties": {"lon": {"type": "number"}, "lat": {"type": "number"}},
                      "required": ["lon"]},
            "tags": {"type": "array", "items": {"type": "string", "zz": 1, "aa": 2}},
            "either": {"anyOf": [{"type": "integer"}, {"type": "string"}]}},
            "required": ["city"], "additionalProperties": False}}},
    {"type": "function", "function": {"name": "no_args", "parameters": {"type": "object", "properties": {}}}},
    {"type": "function", "function": {"name": "bare", "parameters": {"type": "object"}}, "extra": 1},
]
TOOL_TEMPLATE = ("{{ json .Tools }}|{{ .Tools }}|{{ range .Tools }}{{ . }}/{{ .Function.Name }}/{{ .Function.Description }}/"
                 "{{ range $k, $v := .Function.Parameters.Properties }}{{ $k }}:{{ $v.Type }}:{{ $v.Enum }}:{{ $v.Description }}:{{ json $v }};{{ end }}"
                 "{{ json .Function.Parameters }}|{{ end }}"
                 "{{ range .Messages }}{{ range .ToolCalls }}{{ json . }}/{{ .Function.Arguments }}/{{ .ID }}|{{ end }}{{ end }}")


def test_tool_data_and_json_as_ollama_gives_them_to_a_template(go_renderer):
    """.Tools and .ToolCalls in the model, printed, marshalled, read field by field and ranged over,
    are what Go writes for Ollama's templateTool/templateToolCall types (tests/go mirrors them)."""
    calls = (ToolCall("get_weather", {"zeta": 1.5, "city": "Paris <3", "n": 18, "deep": {"b": [1, 2.0], "a": None}}),)
    messages = (Message("user", "Weather?"), Message("assistant", "", tool_calls=calls))
    payload = [{"role": m.role, "content": m.content, "tool_calls": [
        {"id": c.id, "function": {"name": c.name, "arguments": c.arguments}} for c in m.tool_calls]} for m in messages]
    [got] = _go(go_renderer, [{"template": TOOL_TEMPLATE, "messages": payload, "tools": TOOLS}])
    assert "error" not in got, got
    ours = GoTemplate(TOOL_TEMPLATE).execute(ollama_template_data(messages, tools=TOOLS))
    assert ours == got["output"]
    # by hand, from template/template.go and api/types.go: struct order, required before
    # properties, top-level properties sorted, nested ones kept, unknown keys dropped, the
    # description always written, HTML characters escaped, 2.0 written as 2
    assert got["output"].startswith(
        '[{"type":"function","function":{"name":"get_weather","description":"Weather \\u003cnow\\u003e \\u0026 later",'
        '"parameters":{"type":"object","required":["city"],"properties":{"city":{"type":["string","null"],'
        '"description":"City"},"either":{"anyOf":[{"type":"integer"},{"type":"string"}]},"tags":{"type":"array",'
        '"items":{"aa":2,"type":"string","zz":1}},"unit":{"type":"string","description":"unit","enum":["c","f"]},"where":{"type":"object",'
        '"properties":{"lon":{"type":"number"},"lat":{"type":"number"}},"required":["lon"]}}}}},')
    assert '{"type":"function","function":{"name":"bare","description":"","parameters":{"type":"object","properties":null}}}' in got["output"]
    assert '{"ID":"call12345","Function":{"Index":0,"Name":"get_weather","Arguments":{"city":"Paris \\u003c3",' \
           '"deep":{"a":null,"b":[1,2]},"n":18,"zeta":1.5}}}' in got["output"]
    assert "/city:[string null]:" in got["output"]


def test_template_tool_values_are_what_a_go_template_writes():
    """What transformers is given to compare with a Go TEMPLATE's tools: the same JSON, as Python values."""
    values = template_tool_values(TOOLS)
    assert [list(v["function"]["parameters"]) for v in values] == [["type", "required", "properties"],
                                                                   ["type", "properties"], ["type", "properties"]]
    assert list(values[0]["function"]["parameters"]["properties"]) == ["city", "either", "tags", "unit", "where"]
    assert values[2] == {"type": "function", "function": {"name": "bare", "description": "",
                                                          "parameters": {"type": "object", "properties": None}}}


@pytest.mark.parametrize("width", [2, 4])
def test_indented_pyjson_writes_json_dumps_indent_in_real_go(go_renderer, width):
    """"ep.pyjson:N" (Jinja's tojson(indent=N)) in Go's real text/template equals json.dumps(indent=N);
    past its 15 levels Go stops with a template error, and so does the model (never wrong text)."""
    name = gojson.indent_name(width)
    template = ('{{ if .Messages }}{{ end }}{{ template "' + name + '" (print "a" (json .Value)) }}'
                + gohelpers.defines([name.removeprefix("ep.")]))
    too_deep = [[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]
    values = _values(200) + [{"a": [[], {}, [1, {}]]}, [[[[[[[[[[[[[[["fifteen"]]]]]]]]]]]]]]], too_deep]
    jobs = _jobs(template, values)
    model = GoTemplate(template)
    assert list(model.native) == [name]
    for value, got in zip(values, _go(go_renderer, jobs)):
        data = _data(value)
        if value is too_deep:
            assert "index out of range" in got["error"]
            with pytest.raises(GoTemplateError):
                model.execute(data)
            continue
        want = json.dumps(value, ensure_ascii=False, sort_keys=True, indent=width)
        assert got == {"output": want}, repr(value)
        assert model.execute(data) == want


def test_numbers_are_written_as_go_writes_them(go_renderer):
    """Go's json and fmt's %v of float64 (JSON numbers decode to float64): the model agrees with
    real Go, which is not Python's way (18 for 18.0; json 1e-7 and 0.00001 where %v writes 1e-07, 1e-05)."""
    numbers = [18.0, 1.5, -2.25, 0.0, 1e20, 1e21, 1.5e300, 1e-5, 1e-7, 2.5e-6, 0.0001, 123456789.125, 3]
    template = "{{ if .Messages }}{{ end }}{{ json .Value }}|{{ .Value }}|{{ range .Value }}{{ . }};{{ end }}"
    jobs = _jobs(template, [numbers])
    [got] = _go(go_renderer, jobs)
    data = _data([float(n) for n in numbers])
    assert GoTemplate(template).execute(data) == got["output"]
    assert got["output"].startswith("[18,1.5,-2.25,0,100000000000000000000,1e+21,1.5e+300,0.00001,1e-7,0.0000025,")


def test_compact_pyjson_writes_json_dumps_with_compact_separators_in_real_go(go_renderer):
    """"ep.pyjson.compact" in Go's real text/template equals json.dumps(separators=(",", ":"),
    ensure_ascii=False); the model runs it natively and, renamed, as its Go text: the same."""
    template = ('{{ if .Messages }}{{ end }}{{ template "ep.pyjson.compact" (json .Value) }}'
                + gohelpers.defines(["pyjson.compact"]))
    renamed = template.replace('"ep.', '"my.')
    values = _values(300)
    jobs = _jobs(template, values)
    model, as_go = GoTemplate(template), GoTemplate(renamed)
    assert list(model.native) == ["ep.pyjson.compact"] and as_go.native == {}
    for k, (value, got) in enumerate(zip(values, _go(go_renderer, jobs))):
        want = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        assert got == {"output": want}, repr(value)
        data = _data(value)
        assert model.execute(data) == want
        if k < 60 and len(want) < 80:  # the model's recursion is plain Python: short ones
            assert as_go.execute(data) == want


def test_attribute_escape_replaces_ampersand_and_quote_only_in_real_go(go_renderer):
    """"ep.attr" (Jinja's `| replace('&', '&amp;') | replace('"', '&quot;')`) in real Go, natively in the
    model and as its Go text; <, > and ' stay (Go's html would escape them)."""
    texts = ["", "a", 'a&b"c', "<'>", "&&\"\"", "日本 & 🙂 \"q\"", "&amp;", "x" * 50]
    template = '{{ range .Messages }}{{ template "ep.attr" .Content }}{{ end }}' + gohelpers.defines(["attr"])
    jobs = [{"template": template, "messages": [{"role": "user", "content": t}]} for t in texts]
    model, as_go = GoTemplate(template), GoTemplate(template.replace('"ep.', '"my.'))
    assert list(model.native) == ["ep.attr"] and as_go.native == {}
    for text, got in zip(texts, _go(go_renderer, jobs)):
        want = text.replace("&", "&amp;").replace('"', "&quot;")
        assert got == {"output": want}, text
        data = {"Messages": [{"Role": "user", "Content": text}]}
        assert model.execute(data) == want and as_go.execute(data) == want
    assert _go(go_renderer, jobs[2:3]) == [{"output": "a&amp;b&quot;c"}]  # by hand


def test_pyjson_ascii_writes_what_python_json_dumps_writes_with_ensure_ascii_in_real_go(go_renderer):
    """"ep.pyjson_a" (tojson(ensure_ascii=True)): every character beyond ASCII as \\uXXXX, surrogate
    pairs above U+FFFF; real Go against Python's json.dumps, and edgepack's model (natively) the same."""
    template = ('{{ if .Messages }}{{ end }}{{ template "ep.pyjson_a" (json .Value) }}'
                + gohelpers.defines(["pyjson_a"]))
    values = _values(300) + ["\u00e9\u07ff\u0800\uffff\U00010000\U0010ffff\U0001f642\u2028\u2029\x85\u00a0<&>",
                             {"é": ["日本", {"🙂": "\U0001d11e"}]}, "a" * 9 + "é" + "b" * 7 + "\U00020000"]
    _writes_json_dumps(go_renderer, template, "ep.pyjson_a", values, ensure_ascii=True)
