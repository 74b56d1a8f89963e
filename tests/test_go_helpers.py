"""edgepack's Go template helpers (edgepack.chat.gohelpers) in Go's real text/template, against
Python's own str.strip/lstrip/rstrip, and edgepack's Go model running the same templates."""

from __future__ import annotations

import json
import random
import subprocess

import pytest

from edgepack.chat import godrop, gohelpers
from edgepack.chat.gotemplate import GoTemplate
from edgepack.errors import GoTemplateError

SPACES = [chr(c) for c in range(0x10000) if chr(c).isspace()]
# Characters that share leading UTF-8 bytes with some whitespace, or are whitespace in other
# languages' sense but not Python's (U+200B, U+FEFF), to catch a byte-level mistake.
NEAR = ["\u0086", "\u00a1", "\u1681", "\u2030", "\u200b", "\u2027", "\u205e", "\u3001", "\ufeff", "é", "x", "日", "🙂", "\x7f"]


def _strings() -> list[str]:
    rng = random.Random(20261125)
    fixed = ["", " ", "x", " x ", "\n", "\n\n \n", "\n x\n", " \nx\n ", "\n\n  hello  \t", "".join(SPACES), "".join(SPACES) + "a" + "".join(SPACES),
             "\u3000\u3001", "\u2030\u2000", "\x85\x86", "\u00a0é\u00a0", " 🙂 ", "a b\tc"]
    pool = SPACES + NEAR + ["\n"] * 8
    randoms = ["".join(rng.choice(pool) for _ in range(rng.randint(0, 12))) for _ in range(300)]
    return fixed + randoms


def _template(helpers: dict[str, str]) -> str:
    assert list(gohelpers.HELPERS) == ["ep.lstrip", "ep.rstrip", "ep.strip", "ep.lstrip_nl", "ep.rstrip_nl", "ep.strip_nl",
                                       "ep.lstrip_nl_rstrip"]
    calls = "\x00".join(f"{{{{ template {json.dumps(name)} .Content }}}}" for name in gohelpers.HELPERS)
    return "{{ range .Messages }}" + calls + "{{ end }}" + "".join(helpers.values())


def _python(s: str) -> list[str]:
    return [s.lstrip(), s.rstrip(), s.strip(), s.lstrip("\n"), s.rstrip("\n"), s.strip("\n"),
            s.rstrip().lstrip("\n")]  # HELPERS' order


def test_helpers_strip_what_python_strips_in_real_go(go_renderer):
    strings = _strings()
    template = _template(gohelpers.HELPERS)
    jobs = [{"template": template, "messages": [{"role": "user", "content": s}]} for s in strings]
    proc = subprocess.run([str(go_renderer)], input=json.dumps(jobs), capture_output=True, text=True, check=True)
    for s, got in zip(strings, json.loads(proc.stdout)):
        assert "error" not in got, (s, got)
        assert got["output"].split("\x00") == _python(s), repr(s)


def test_the_go_model_runs_named_templates_like_go(go_renderer):
    """The helpers renamed, so edgepack's model runs their Go text (define, template, slice, len,
    eq with several operands, short-circuit and) instead of the Python function: same as Go."""
    renamed = {k: v.replace('"ep.', '"my.') for k, v in gohelpers.HELPERS.items()}
    template = _template(renamed).replace('"ep.', '"my.')
    strings = _strings()[:60]  # the model's recursion is plain Python: short strings
    model = GoTemplate(template)
    assert model.native == {}
    jobs = [{"template": template, "messages": [{"role": "user", "content": s}]} for s in strings]
    proc = subprocess.run([str(go_renderer)], input=json.dumps(jobs), capture_output=True, text=True, check=True)
    for s, got in zip(strings, json.loads(proc.stdout)):
        ours = model.execute({"Messages": [{"Role": "user", "Content": s}]})
        # the model slices Python strings by characters, Go by bytes: equal for these helpers'
        # results, which is what is compared
        assert ours == got["output"], repr(s)


def test_go_depth_limit_is_modelled(go_renderer):
    """Go stops at 100,000 nested template calls; the model refuses the same text."""
    big = " " * (gohelpers.MAX_DEPTH + 5) + "x"
    template = _template(gohelpers.HELPERS)
    proc = subprocess.run([str(go_renderer)], input=json.dumps([{"template": template, "messages": [
        {"role": "user", "content": big}]}]), capture_output=True, text=True, check=True)
    [got] = json.loads(proc.stdout)
    assert "maximum template depth" in got.get("error", "")
    with pytest.raises(GoTemplateError, match="maximum template depth"):
        GoTemplate(template).execute({"Messages": [{"Role": "user", "Content": big}]})


AFTER = [gohelpers.after_name(marker, trim, only_if)
         for marker in ("</think>", "</mm:think>", "[BEGIN FINAL RESPONSE]")
         for trim in ("", "lstrip_nl", "strip") for only_if in (False, True)] + [
    gohelpers.after_name("</think>", "lstrip_nl_rstrip", True, "strip")] + [
    gohelpers.tail_name(marker) for marker in ("</think>", "</mm:think>", "[BEGIN FINAL RESPONSE]")]


def _texts_with_markers() -> list[str]:
    rng = random.Random(7)
    pieces = ["</think>", "</mm:think>", "[BEGIN FINAL RESPONSE]", "<think>", "</thin", "\n", " ", "\t", "a", "é",
              "日", "🙂", "\u3000", "> ", "</think"]
    return ["", "</think>", "x</think>", "</think>\n\n y \n", "a</think>b</think>\n c"] + [
        "".join(rng.choice(pieces) for _ in range(rng.randint(0, 10))) for _ in range(200)] + [
        "".join(rng.choice(pieces) for _ in range(rng.randint(20, 60))) for _ in range(40)]  # many 16-byte steps


def test_text_after_a_marker_is_pythons_split_in_real_go(go_renderer):
    """`text.split(marker)[-1]`, then a trim (always, or only when the marker occurred): Go's
    range over the text's offsets (Go 1.24+) and the loop-free recursion against Python, and the
    model's native and Go paths. One Go run for every helper and text."""
    texts = _texts_with_markers()
    templates = {}
    for name in AFTER:
        calls = f"{{{{ range .Messages }}}}{{{{ template {json.dumps(name, ensure_ascii=False)} .Content }}}}\x01{{{{ end }}}}"
        templates[name] = calls + gohelpers.defines([name[3:]])
    jobs = [{"template": templates[name], "messages": [{"role": "user", "content": t}]} for name in AFTER for t in texts]
    proc = subprocess.run([str(go_renderer)], input=json.dumps(jobs), capture_output=True, text=True, check=True)
    outputs = iter(json.loads(proc.stdout))
    for name in AFTER:
        otherwise = ""
        if name.startswith("ep.tail:"):
            marker, trim, only_if = name[len("ep.tail:"):], "", False
        else:
            marker, trim, when = name.split(":", 3)[3], name.split(":")[1], name.split(":")[2]
            only_if, otherwise = when != "always", when[len("else-"):] if when.startswith("else-") else ""
        native, renamed = GoTemplate(templates[name]), GoTemplate(templates[name].replace('"ep.', '"my.'))
        assert native.native and not renamed.native
        trims = {"": None, "-": None, "lstrip_nl": lambda s: s.lstrip("\n"), "strip": str.strip,
                 "lstrip_nl_rstrip": lambda s: s.rstrip().lstrip("\n")}
        for text in texts:
            got = next(outputs)
            assert "error" not in got, (name, text, got)
            kept = text.split(marker)[-1]
            strip = trims[trim] if marker in text or not only_if else trims[otherwise]
            want = strip(kept) if strip else kept
            assert got["output"] == want + "\x01", (name, text)
            data = {"Messages": [{"Role": "user", "Content": text}]}
            assert native.execute(data) == got["output"] == renamed.execute(data), (name, text)


DROPS = [godrop.drop_name("<|channel>", "<channel|>", trim) for trim in ("", "strip")] + [
    godrop.drop_name("<think>", "</think>", "lstrip_nl")]


def test_blocks_between_markers_are_dropped_as_pythons_split_does_in_real_go(go_renderer):
    """`"".join(p.split(open)[0] for p in text.split(close))` then a trim (Gemma 4's strip_thinking):
    Go's range over the text's offsets against Python, and the model's native and Go paths."""
    rng = random.Random(11)
    pieces = ["<|channel>", "<channel|>", "<think>", "</think>", "<|chan", "nel|>", "<", "|", "\n", " ", "\t", "a",
              "é", "日", "🙂", "\u3000", "thought\n"]
    texts = ["", "<|channel>", "<channel|>", "a<|channel>b", "a<channel|>b", "<|channel>x<channel|> y ",
             " x <|channel>t<channel|>\n\n<|channel>u", "a<|channel>b<|channel>c<channel|>d<channel|>e"] + [
        "".join(rng.choice(pieces) for _ in range(rng.randint(0, 14))) for _ in range(300)]
    templates = {name: f"{{{{ range .Messages }}}}{{{{ template {json.dumps(name, ensure_ascii=False)} .Content }}}}"
                       f"\x01{{{{ end }}}}" + gohelpers.defines([name[3:]]) for name in DROPS}
    jobs = [{"template": templates[name], "messages": [{"role": "user", "content": t}]} for name in DROPS for t in texts]
    proc = subprocess.run([str(go_renderer)], input=json.dumps(jobs), capture_output=True, text=True, check=True)
    outputs = iter(json.loads(proc.stdout))
    trims = {"-": lambda s: s, "strip": str.strip, "lstrip_nl": lambda s: s.lstrip("\n")}
    for name in DROPS:
        trim = name.split(":")[1]
        opening, closing = ("<|channel>", "<channel|>") if "channel" in name else ("<think>", "</think>")
        native, renamed = GoTemplate(templates[name]), GoTemplate(templates[name].replace('"ep.', '"my.'))
        assert native.native and not renamed.native
        for text in texts:
            got = next(outputs)
            assert "error" not in got, (name, text, got)
            want = trims[trim]("".join(part.split(opening)[0] for part in text.split(closing)))
            assert got["output"] == want + "\x01", (name, text)
            data = {"Messages": [{"Role": "user", "Content": text}]}
            assert native.execute(data) == got["output"] == renamed.execute(data), (name, text)


def test_markers_that_overlap_each_other_are_refused():
    with pytest.raises(ValueError):
        godrop.drop_name("<a", "a>")
    with pytest.raises(ValueError):
        godrop.drop_name("<x>", "<x>>")


def test_the_tail_helper_at_gos_depth_limit_is_an_error_not_a_crash(go_renderer):
    """The loop-free cut makes one call per 16 bytes after the last marker: on 1.6 MB without a
    marker Go stops with its template-depth error (an else-if chain per call overflowed Go's
    stack first, a fatal error that would take Ollama down), and the model refuses it too."""
    name = gohelpers.tail_name("</think>")
    template = f"{{{{ range .Messages }}}}{{{{ template {json.dumps(name)} .Content }}}}{{{{ end }}}}" + gohelpers.defines([name[3:]])
    over = "ab" * 800_010
    proc = subprocess.run([str(go_renderer)], input=json.dumps([{"template": template, "messages": [
        {"role": "user", "content": over}]}]), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-500:]
    [got] = json.loads(proc.stdout)
    assert "maximum template depth" in got.get("error", "")
    with pytest.raises(GoTemplateError, match="maximum template depth"):
        GoTemplate(template).execute({"Messages": [{"Role": "user", "Content": over}]})
    # by hand: 40 bytes -> the call on 40 recurses on 24, that one on 8, which is written: 3 calls
    assert gohelpers.depth(name, "x" * 40) == 3 and gohelpers.depth(name, "x" * 40 + "</think>") == 1


def test_a_marker_that_overlaps_itself_is_refused():
    with pytest.raises(ValueError):
        gohelpers.after_name("aa")


def test_pystr_writes_pythons_str_of_a_json_value_in_real_go(go_renderer):
    """"ep.pystr" (Jinja's `value | string` of a decoded JSON value) in Go's real text/template
    equals Python's str(), repr() for strings: quotes chosen as Python chooses them, escapes,
    non-printable characters; and edgepack's model, running its Go text, writes the same."""
    from edgepack.chat.gopystr import NONPRINTABLE

    rng = random.Random(20261126)
    pool = [*NONPRINTABLE, "'", '"', "\\", "\n", "\r", "\t", "é", "日", "🙂", "x", " ", "\u00a1", "\u2030", "\u2027"]
    strings = ["", "it's", 'say "hi"', "it's \"both\"", "\\", *("".join(rng.choice(pool) for _ in range(rng.randint(1, 10)))
                                                               for _ in range(120))]
    values = [*strings, {"a": 1.5, "z": True, "n": None, "k": -3}, [], {}, ["x", [1, {"q": "it's"}], False],
              {"o": {"b": [2.25, "\u2028"], "a": ""}}, *({"k": s, s: [s]} for s in strings[:30])]
    template = "{{ range .Messages }}{{ end }}{{ template \"ep.pystr\" .Value }}" + gohelpers.defines(["pystr"])
    jobs = [{"template": template, "messages": [], "value": v} for v in values]
    proc = subprocess.run([str(go_renderer)], input=json.dumps(jobs), capture_output=True, text=True, check=True)
    model = GoTemplate(template)
    for v, got in zip(values, json.loads(proc.stdout)):
        assert "error" not in got, (v, got)
        want = repr(v) if isinstance(v, str) else str(_sorted(v))
        assert got["output"] == want, v
        assert model.execute({"Messages": [], "Value": v}) == want, v


def _sorted(value):
    """The value with its objects' keys sorted, as Go's maps range."""
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    return [_sorted(v) for v in value] if isinstance(value, list) else value


def test_strip_line_writes_the_stripped_text_and_a_newline_only_when_text_is_left_in_real_go(go_renderer):
    """ep.strip_line is Jinja's `{% if s.strip() %}{{ s.strip() ~ "\\n" }}{% endif %}`: real Go and
    edgepack's model (natively and as Go text) against Python."""
    strings = _strings()
    template = ('{{ range .Messages }}{{ template "ep.strip_line" .Content }}{{ end }}'
                + gohelpers.defines(["strip_line"]))
    jobs = [{"template": template, "messages": [{"role": "user", "content": s}]} for s in strings]
    proc = subprocess.run([str(go_renderer)], input=json.dumps(jobs), capture_output=True, text=True, check=True)
    renamed = GoTemplate(template.replace('"ep.', '"my.'))
    assert renamed.native == {}
    for s, got in zip(strings, json.loads(proc.stdout)):
        want = s.strip() + "\n" if s.strip() else ""
        assert got.get("output") == want, repr(s)
        data = {"Messages": [{"Role": "user", "Content": s}]}
        assert GoTemplate(template).execute(data) == want
        if len(s) < 40:
            assert renamed.execute(data) == want, repr(s)
