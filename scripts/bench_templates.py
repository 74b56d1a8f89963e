"""Coverage of every chat template in the pinned llama.cpp tree, through the three chat paths.

For each `models/templates/*.jinja` of the pinned toolchain, runs edgepack's chat stage
(edgepack.chat.report.analyze_chat) with the llama-server proof, and prints per template:
  1 llama.cpp Jinja (llama-server vs transformers; exact = the same bytes on every conversation the
    source template renders, what it fails on in transformers is a note, what it refuses on purpose
    and llama.cpp renders is a difference; with llama.cpp's defaults and as current Ollama sends the
    request: the Modelfile's SYSTEM, think, no earlier thinking, today's date), 2 Ollama Go TEMPLATE
    (vs transformers),
  3 Ollama RENDERER/PARSER (matched by name; never "exact", edgepack cannot run it),
which path current Ollama takes with edgepack's Modelfile, and whether that path is exact; then
totals against the targets of issue 11. With --ollama-repo (an ollama checkout or bare git
dir, read at run time), also what Ollama's own import does without edgepack's Modelfile
(edgepack.chat.ollama_import: the template/index.json entry it matches, that Go template run
against transformers, and the path current / older Ollama then takes). BOS/EOS are the
neutral "<s>"/"</s>" for every template (the proof compares two renderers fed the same tokens,
so their spelling does not matter).

    python scripts/bench_templates.py [--json] [--no-server] [--ollama-repo PATH] [NAME_SUBSTRING ...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from edgepack.chat import ollama_import
from edgepack.chat.proof import AS_OLLAMA, ReferenceRenders, template_capabilities
from edgepack.chat.proof_llama_cpp import FIXED_BY
from edgepack.chat.renderers import match_renderer
from edgepack.chat.report import GO_TEMPLATE, LLAMA_CPP, RENDERER, analyze_chat
from edgepack.chat.sandbox import SpecialTokens, TemplateBoundError
from edgepack.errors import ChatTemplateError
from edgepack.runtime.toolchain import find_toolchain

SHORT = {"exact": "exact", "differs": "differs", "not handled": "-", "not checked": "n/c", "matched": "matched",
         "exact without tools": "exact-nt"}


def current_exact(report, *, tools_as_ollama_encodes: bool = False) -> bool:
    """Current Ollama with edgepack's Modelfile renders every conversation as transformers does.

    tools_as_ollama_encodes: judge tool requests against transformers given the tool definitions
    as Ollama itself re-encodes them before any template sees them (key order of its structs)."""
    if report.renderer:
        return False  # a renderer is never proven by edgepack
    if report.current_ollama.startswith("the Go TEMPLATE"):  # with a PARSER too
        go = report.paths[GO_TEMPLATE]
        if not tools_as_ollama_encodes and go.tools_as_requested:
            return go.status == "exact" and go.tools_as_requested == "exact"
        return go.status == "exact"
    jinja = report.paths[LLAMA_CPP]
    if tools_as_ollama_encodes and jinja.as_ollama_tools_reencoded:
        return jinja.as_ollama_tools_reencoded == "exact"
    return (jinja.as_ollama_sends or jinja.status) == "exact"  # as current Ollama calls llama.cpp


def load_ollama_index(repo: Path) -> tuple[list[ollama_import.OllamaTemplate], str]:
    """ollama's template/index.json and templates, from a checkout or a bare git dir (its HEAD)."""
    folder = repo / "template"
    if (folder / "index.json").is_file():
        def read(name: str) -> str | None:
            return (folder / name).read_text(encoding="utf-8") if (folder / name).is_file() else None
        where = str(repo)
    else:
        git_dir = repo / ".git" if (repo / ".git").exists() else repo

        def read(name: str) -> str | None:
            proc = subprocess.run(["git", f"--git-dir={git_dir}", "show", f"HEAD:template/{name}"],
                                  capture_output=True)
            return proc.stdout.decode("utf-8") if proc.returncode == 0 else None
        head = subprocess.run(["git", f"--git-dir={git_dir}", "rev-parse", "HEAD"], capture_output=True, text=True)
        where = f"{repo} at {head.stdout.strip()[:12]}"
    index_json = read("index.json")
    if index_json is None:
        raise ChatTemplateError(f"{repo} has no template/index.json: give --ollama-repo an ollama checkout "
                                "or its git directory")
    return ollama_import.parse_index(index_json, read), where


def architecture_by_markers(chat_template: str) -> str | None:
    """A template file has no GGUF architecture; one matching the markers of a renderer that
    `ollama create` sets by architecture is taken to come from that architecture (an inference)."""
    found = match_renderer(chat_template)
    name = found.renderer.renderer if found else None
    return next((arch for arch, r in ollama_import.ARCHITECTURE_RENDERERS.items() if r == name), None)


def own_import(chat_template: str, index: list[ollama_import.OllamaTemplate], row: dict) -> dict:
    """Ollama's own import of this template (no Modelfile TEMPLATE), for current and older Ollama."""
    match = ollama_import.named(chat_template, index)
    out = {"match": match.template.name if match.template else None, "nearest": match.nearest,
           "distance": match.distance, "go": None, "go_differences": [], "go_notes": [], "stops": []}
    if match.template is not None:
        tokens = SpecialTokens("<s>", "</s>")
        try:
            reference = ReferenceRenders(chat_template, tokens, template_capabilities(chat_template))
            rendered = ollama_import.render_matched(match.template.go_template, chat_template, reference, tokens)
            out.update(go=rendered.status, go_differences=rendered.differences, go_notes=rendered.notes)
        except (ChatTemplateError, TemplateBoundError) as exc:
            out.update(go="not checked", go_differences=[f"transformers could not render the template: {exc}"])
        out["stops"] = list(match.template.stops)
    architecture = architecture_by_markers(chat_template)
    path = ollama_import.current_ollama_path(chat_template, match, architecture)
    # path 1 as current Ollama sends requests (think=true for thinking models); the import has no SYSTEM
    jinja = row["llama_cpp_as_ollama"] or row["llama_cpp"]
    out["current_path"] = path
    out["current_status"] = {ollama_import.GO_TEMPLATE: out["go"]}.get(path, jinja)
    if architecture:  # Ollama's renderer is Go code edgepack cannot run
        out["current_status"] = "not checked"
    out["current_exact"] = out["current_status"] == "exact"
    out["older_exact"] = out["go"] == "exact"  # older Ollama: the matched TEMPLATE or `{{ .Prompt }}`
    return out


def own_import_cell(o: dict | None) -> str:
    if o is None:
        return "n/a (give --ollama-repo)"
    found = f"{o['match']} d={o['distance']}" if o["match"] else f"no match (nearest {o['nearest']} d={o['distance']})"
    go = f", Go {o['go']}" if o["go"] else ""
    now = {ollama_import.GO_TEMPLATE: "Go"}.get(o["current_path"], "Jinja")
    if o["current_path"].startswith("RENDERER"):
        now = "RENDERER " + o["current_path"].split()[1]
    return f"{found}{go}; current: {now} {SHORT.get(o['current_status'], o['current_status'])}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-server", action="store_true", help="skip the llama-server proof of path 1")
    parser.add_argument("--ollama-repo", type=Path, metavar="PATH",
                        help="an ollama checkout (or its git dir): add what Ollama's own import does")
    args = parser.parse_args()
    index, index_source = None, ""
    if args.ollama_repo is not None:
        try:
            index, index_source = load_ollama_index(args.ollama_repo)
        except ChatTemplateError as exc:
            print(exc, file=sys.stderr)
            return 1
    toolchain = find_toolchain()
    folder = toolchain.root / "models" / "templates" if toolchain else None
    if folder is None or not folder.is_dir():
        print("the pinned llama.cpp tree with models/templates/ is not in the cache; run: edgepack native build "
              "(after removing an old toolchain unpacked without models/templates)", file=sys.stderr)
        return 1
    paths = sorted(p for p in folder.glob("*.jinja") if not args.names or any(n in p.name for n in args.names))
    rows, start = [], time.perf_counter()
    for path in paths:
        t0 = time.perf_counter()
        try:
            report = analyze_chat(path.read_text(encoding="utf-8"), SpecialTokens("<s>", "</s>"),
                                  prove_llama_cpp_path=not args.no_server)
        except Exception as exc:  # the target is zero crashes: count one, never hide it
            rows.append({"template": path.stem, "crash": f"{type(exc).__name__}: {exc}"})
            continue
        rows.append({
            "template": path.stem, "seconds": round(time.perf_counter() - t0, 2),
            "llama_cpp": report.paths[LLAMA_CPP].status, "llama_cpp_as_ollama": report.paths[LLAMA_CPP].as_ollama_sends,
            "go": report.paths[GO_TEMPLATE].status,
            "go_modes": report.paths[GO_TEMPLATE].modes, "go_written": report.go_template is not None,
            "renderer": report.renderer or (report.paths[RENDERER].status == "matched" and "(match)") or "",
            "current_ollama": report.current_ollama, "current_exact": current_exact(report),
            "current_exact_tools_as_ollama_encodes": current_exact(report, tools_as_ollama_encodes=True),
            "family": f"{report.family}/{report.variant}" if report.family else "",
            "llama_cpp_fixed_by_setting": report.paths[LLAMA_CPP].status == "differs" and all(
                FIXED_BY in d for d in report.paths[LLAMA_CPP].differences if AS_OLLAMA + ":" not in d),
            "llama_cpp_source_refuses": len(report.paths[LLAMA_CPP].notes),
            "first_difference": next((d for k in (LLAMA_CPP, GO_TEMPLATE) for d in report.paths[k].differences), ""),
            "needs": report.needs_variables,
            "tool_calls_read_by_ollama": (None if not report.go_template or ".Tools" not in report.go_template else
                                          bool(report.parser) or any(n.startswith("tool calls in replies")
                                                                     for n in report.paths[GO_TEMPLATE].notes)),
        })
        rows[-1]["ollama_own_import"] = own_import(path.read_text(encoding="utf-8"), index, rows[-1]) if index else None
    n = len(rows)
    ok = [r for r in rows if "crash" not in r]
    totals = {
        "templates": n,
        "crashes": n - len(ok),
        "path1_llama_cpp_exact": sum(r["llama_cpp"] == "exact" for r in ok),
        "path1_equal_with_named_setting": sum(r["llama_cpp_fixed_by_setting"] for r in ok),
        "path1_exact_with_notes": sum(r["llama_cpp"] == "exact" and r["llama_cpp_source_refuses"] > 0 for r in ok),
        "path1_not_checked": sum(r["llama_cpp"] == "not checked" for r in ok),
        "path2_go_exact": sum(r["go"] == "exact" for r in ok),
        "path2_go_exact_without_tools": sum(r["go"] == "exact without tools" for r in ok),
        "path2_go_written": sum(r["go_written"] for r in ok),
        "path3_renderer_matched": sum(bool(r["renderer"]) for r in ok),
        "go_tools": sum(r["tool_calls_read_by_ollama"] is not None for r in ok),
        "go_tool_calls_read_by_ollama": sum(bool(r["tool_calls_read_by_ollama"]) for r in ok),
        "current_ollama_exact": sum(r["current_exact"] for r in ok),
        "current_ollama_exact_tools_as_ollama_encodes": sum(r["current_exact_tools_as_ollama_encodes"] for r in ok),
        "exact_through_some_proven_path": sum(r["llama_cpp"] == "exact" or r["go"] == "exact" or r["current_exact"]
                                              for r in ok),
        "seconds": round(time.perf_counter() - start, 1),
    }
    if index is None:
        totals["ollama_own_import"] = "n/a (give --ollama-repo)"
    else:
        own = [r["ollama_own_import"] for r in ok]
        totals.update(ollama_own_import_source=index_source, ollama_own_import_matched=sum(bool(o["match"]) for o in own),
                      ollama_own_import_current_exact=sum(o["current_exact"] for o in own),
                      ollama_own_import_older_exact=sum(o["older_exact"] for o in own))
    if args.json:
        print(json.dumps({"rows": rows, "totals": totals}, indent=2, ensure_ascii=False))
        return 0
    print("x/y: llama.cpp defaults / as current Ollama sends it (the Modelfile's SYSTEM, think=true where ollama sees")
    print(" thinking, earlier thinking left out, today's date on both sides), shown where they differ;")
    print(" *: every difference on llama.cpp's defaults has a named setting;")
    print(" exact-nt: exact without tools; n/c: not checked (or the source renders no probe); -: not handled;")
    print(" (match): renderer matched by markers, not written")
    print(f"{'template':44} {'1 llama.cpp':>15} {'2 Go':>8} {'3 renderer':>16}  current Ollama")
    for r in rows:
        if "crash" in r:
            print(f"{r['template'][:44]:44} CRASH {r['crash'][:80]}")
            continue
        cur = ("exact" if r["current_exact"] else "not exact") + f" ({r['current_ollama'][:40]})"
        one = SHORT[r["llama_cpp"]] + ("*" if r["llama_cpp_fixed_by_setting"] else "")
        if r["llama_cpp_as_ollama"]:
            one += "/" + SHORT[r["llama_cpp_as_ollama"]]
        print(f"{r['template'][:44]:44} {one:>15} {SHORT[r['go']]:>8} {r['renderer'][:16]:>16}  {cur}"
              f"  | own import: {own_import_cell(r['ollama_own_import'])}")
    pct = lambda k: f"{totals[k]:3d}/{n} = {100 * totals[k] / max(n, 1):5.1f} %"
    print()
    print(f"current Ollama exact with edgepack's Modelfile:   {pct('current_ollama_exact')}  (target >= 95 %)")
    print(f"  the same, tool requests judged against the tool {pct('current_ollama_exact_tools_as_ollama_encodes')}")
    print("  definitions as Ollama re-encodes them before any template runs (required before properties)")
    print(f"exact through some path edgepack proved (1 or 2, {pct('exact_through_some_proven_path')}")
    print("  any runtime: llama-server with its defaults too)")
    print(f"path 1 llama.cpp Jinja exact:                     {pct('path1_llama_cpp_exact')}")
    print(f"path 1 differs, every difference has a setting    {pct('path1_equal_with_named_setting')}")
    print("  that makes it equal (enable_thinking, preserve_reasoning, date_string)")
    print(f"path 1 exact, the source refusing some probes:    {pct('path1_exact_with_notes')}")
    print(f"path 1 not checked (source renders no probe, or   {pct('path1_not_checked')}")
    print("  llama-server not built)")
    print(f"path 2 Go TEMPLATE exact (older Ollama):          {pct('path2_go_exact')}  (target >= 60 %)")
    print(f"path 2 Go TEMPLATE exact without tools (Ollama    {pct('path2_go_exact_without_tools')}")
    print("  refuses tool requests on it; other modes exact)")
    print(f"path 2 Go TEMPLATE written (exact or named diff): {pct('path2_go_written')}")
    print(f"path 3 RENDERER/PARSER matched (not proven):      {pct('path3_renderer_matched')}")
    print(f"TEMPLATEs with tools whose calls in replies Ollama reads (JSON after the tag it finds, or a PARSER): "
          f"{totals['go_tool_calls_read_by_ollama']}/{totals['go_tools']}")
    if index is None:
        print("Ollama's own import: n/a (give --ollama-repo)")
    else:
        print(f"Ollama's own import: current exact {totals['ollama_own_import_current_exact']}/{n}, older exact "
              f"{totals['ollama_own_import_older_exact']}/{n}  ({totals['ollama_own_import_matched']}/{n} match a "
              f"template of {index_source}; the rest get llama.cpp's Jinja / no chat format)")
        for r in ok:
            o = r["ollama_own_import"]
            if o["match"]:
                first = (o["go_differences"] or o["go_notes"] or [""])[0]
                print(f"  {r['template'][:40]}: {o['match']} d={o['distance']}, Go {o['go']}{': ' + first if first else ''}")
    print(f"crashes: {totals['crashes']}   time: {totals['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
