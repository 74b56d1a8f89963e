"""edgepack's Go template helpers (edgepack.chat.gohelpers) in Go's real text/template, against
Python's own str.strip/lstrip/rstrip, and edgepack's Go model running the same templates."""

from __future__ import annotations

import json
import random
import subprocess

import pytest

from edgepack.chat import gohelpers
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
    assert list(gohelpers.HELPERS) == ["ep.lstrip", "ep.rstrip", "ep.strip", "ep.lstrip_nl", "ep.rstrip_nl", "ep.strip_nl"]
    calls = "\x00".join(f"{{{{ template {json.dumps(name)} .Content }}}}" for name in gohelpers.HELPERS)
    return "{{ range .Messages }}" + calls + "{{ end }}" + "".join(helpers.values())


def _python(s: str) -> list[str]:
    return [s.lstrip(), s.rstrip(), s.strip(), s.lstrip("\n"), s.rstrip("\n"), s.strip("\n")]  # HELPERS' order


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
