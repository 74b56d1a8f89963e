"""The manifest as a typed record: schema 2, the migration from 0.1, validation on load, the card's metadata."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from huggingface_hub import ModelCard

from edgepack.bundle import load_manifest, render_model_card, verify_bundle
from edgepack.errors import EdgepackError, ManifestError
from edgepack.machine.plan import measured_quality

DATA = Path(__file__).parent / "data"
V01 = DATA / "manifest-0.1.json"  # written by edgepack 0.1 (build --target, bench --tune, eval), paths made relative


def bundle_copy(tiny_bundle, tmp_path, name="b") -> Path:
    out = tmp_path / name
    shutil.copytree(tiny_bundle, out)
    return out


def edit_manifest(bundle: Path, change) -> None:
    data = json.loads((bundle / "manifest.json").read_text())
    change(data)
    (bundle / "manifest.json").write_text(json.dumps(data))


def as_schema_1(data: dict) -> None:
    """Put a schema 2 manifest's sections back into 0.1's untyped `extra` dict, as 0.1 wrote them."""
    extra = {"chat_template": data.pop("chat_template")}
    plans = data.pop("plans")
    if plans:
        extra["plans"] = plans
    for name in ("evaluation", "tuning"):
        if data.get(name) is not None:
            extra[name] = data[name]
        data.pop(name)
    data["schema"] = 1
    data["extra"] = extra


# ------------------------------------------------------------------ schema 2 and the 0.1 migration

def test_build_writes_schema_2_with_typed_sections(tiny_bundle):
    raw = json.loads((tiny_bundle / "manifest.json").read_text())
    assert raw["schema"] == 2 and "extra" not in raw
    assert raw["chat_template"]["family"] == "chatml"
    m = load_manifest(tiny_bundle)
    assert m.chat_template.family == "chatml" and m.evaluation is None and m.tuning is None and m.plans == {}


def test_a_manifest_written_by_0_1_is_migrated(tmp_path):
    bundle = tmp_path / "old"
    bundle.mkdir()
    shutil.copyfile(V01, bundle / "manifest.json")
    m = load_manifest(bundle)
    assert m.schema == 2
    assert m.chat_template.family == "chatml" and m.chat_template.variant == "plain"
    plan = m.plans["Q4_K_M"]
    assert (plan.target, plan.fits, plan.n_ctx, plan.n_gpu_layers, plan.n_threads) == ("jetson-orin-nano-8gb", True,
                                                                                       256, 3, 6)
    assert m.tuning.quant == "Q4_K_M" and m.tuning.settings.n_threads == 1 and m.tuning.settings.n_batch == 512
    assert len(m.tuning.candidates) == 2 and m.tuning.sha256 is None
    ev = m.evaluation
    assert [r.quant for r in ev.results] == ["F16", "Q8_0", "Q4_K_M"]
    assert [r.is_reference for r in ev.results] == [True, False, False]
    assert ev.results[1].kld == 1.4246476702610973e-05 and ev.settings["n_chunks"] == 2
    assert ev.recommendation == ["Pareto front (size vs KLD): Q8_0, Q4_K_M."]
    # plan reads the typed section: the reference row is not a choice
    assert measured_quality(ev, m.files) == {"Q8_0": ("mean_kld", 1.4246476702610973e-05),
                                             "Q4_K_M": ("mean_kld", 0.0013829949651488452)}


def test_a_0_1_bundle_still_verifies_plans_and_renders(tiny_bundle, tmp_path):
    from edgepack.machine.plan import plan_bundle

    bundle = bundle_copy(tiny_bundle, tmp_path)
    old = json.loads(V01.read_text())

    def downgrade(data):
        as_schema_1(data)
        data["extra"]["evaluation"] = old["extra"]["evaluation"]  # 0.1's shape: results without sha256
    edit_manifest(bundle, downgrade)
    assert verify_bundle(bundle, load=False).ok
    m = load_manifest(bundle)
    assert m.evaluation.result("Q4_K_M").kld == 0.0013829949651488452
    plan = plan_bundle(bundle, "laptop-16gb-cpu", ctx=256)
    assert plan.recommended == "Q8_0" and "mean_kld" in plan.reason  # lowest measured KLD
    card = render_model_card(m, evaluation_table="| quant |\n|---|\n| Q8_0 |")
    assert "What each quant costs" in card and "2 chunks of 128 tokens" in card


def test_plan_ignores_an_evaluation_of_other_bytes(tiny_bundle, tmp_path):
    """A result measured on a GGUF the bundle no longer holds (sha256 differs) is not used."""
    from edgepack.bundle import Evaluation, EvaluationResult

    m = load_manifest(tiny_bundle)
    ev = Evaluation(text="t", settings={}, machine={}, results=[
        EvaluationResult(quant="Q8_0", sha256=m.file("Q8_0").sha256, kld=0.5),
        EvaluationResult(quant="Q4_K_M", sha256="0" * 64, kld=0.01)])
    assert measured_quality(ev, m.files) == {"Q8_0": ("mean_kld", 0.5)}


# ------------------------------------------------------------------ validation on load

@pytest.mark.parametrize("change, fragments", [
    (lambda d: d["files"][0].update(sha256=5), ["files.0.sha256", "string"]),
    (lambda d: d["files"][0].pop("size_bytes"), ["files.0.size_bytes", "required"]),
    (lambda d: d["files"][1].update(bits_per_weight="4.8"), ["files.1.bits_per_weight"]),
    (lambda d: d.update(files={"a": 1}), ["field files"]),
    (lambda d: d.update(schema=3), ["schema 3"]),
    (lambda d: d.update(schema="2"), ["schema '2'"]),
    (lambda d: d.update(chat_template={"family": ["chatml"]}), ["chat_template.family"]),
    (lambda d: d.update(plans={"Q8_0": {"target": "x", "fits": "yes"}}), ["plans.Q8_0"]),
    (lambda d: d.update(evaluation={"text": "t", "settings": {}, "machine": {}, "results": [{"kld": 1}]}),
     ["evaluation.results.0.quant", "required"]),
    (lambda d: d.update(surprise=1), ["field surprise"]),
    (lambda d: d["files"][0].update(file="../x.gguf"), ["files.0.file", "'../x.gguf'"]),
    (lambda d: d["files"][0].update(file="/etc/passwd"), ["files.0.file", "is a path"]),
    (lambda d: d["files"][0].update(modelfile="../victim"), ["files.0.modelfile", "is a path"]),
    (lambda d: d["files"][0].update(file="m.gguf\nFROM /etc/shadow"), ["files.0.file", "newline"]),
    (lambda d: d["files"][0].update(file="m\x1b[2J.gguf"), ["files.0.file", "control character"]),
    (lambda d: d.update(default_modelfile=".."), ["default_modelfile", "not a file name"]),
    (lambda d: d["files"][1].update(file=d["files"][0]["file"]), ["listed twice"]),
])
def test_bad_manifests_are_refused_in_one_line(tiny_bundle, tmp_path, change, fragments):
    bundle = bundle_copy(tiny_bundle, tmp_path)
    edit_manifest(bundle, change)
    with pytest.raises(ManifestError) as err:
        load_manifest(bundle)
    message = str(err.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


def test_a_manifest_that_is_not_an_object(tiny_bundle, tmp_path):
    bundle = bundle_copy(tiny_bundle, tmp_path)
    (bundle / "manifest.json").write_text("[1, 2]")
    with pytest.raises(ManifestError, match="not a JSON object"):
        load_manifest(bundle)


def test_a_listed_file_that_links_out_of_the_bundle_is_refused(tiny_bundle, tmp_path):
    bundle = bundle_copy(tiny_bundle, tmp_path)
    outside = tmp_path / "victim"
    outside.write_text("the user's file\n")
    (bundle / "Modelfile.Q8_0").unlink()
    (bundle / "Modelfile.Q8_0").symlink_to(outside)
    with pytest.raises(ManifestError, match="Modelfile.Q8_0.*link that leaves the bundle"):
        load_manifest(bundle)
    (bundle / "Modelfile.Q8_0").unlink()
    (bundle / "Modelfile.Q8_0").mkdir()
    with pytest.raises(ManifestError, match="not a regular file"):
        load_manifest(bundle)


def test_tune_never_writes_outside_the_bundle(tiny_bundle, tmp_path):
    """0.1: bench --tune with "modelfile": "../victim" overwrote a file beside the bundle."""
    from edgepack.measure.bench import tune_bundle

    bundle = bundle_copy(tiny_bundle, tmp_path)
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    edit_manifest(bundle, lambda d: d["files"][1].update(modelfile="../victim"))
    with pytest.raises(EdgepackError, match="files.1.modelfile"):
        tune_bundle(bundle, threads=[1], n_prompt=8, n_gen=2, repetitions=1)
    assert victim.read_text() == "keep me\n"


def test_cli_commands_refuse_a_bad_manifest_in_one_line(tiny_bundle, tmp_path):
    from typer.testing import CliRunner

    from edgepack.cli import app

    bundle = bundle_copy(tiny_bundle, tmp_path)
    edit_manifest(bundle, lambda d: d["files"][0].update(file="../../etc/passwd"))
    for args in (["verify", bundle], ["plan", bundle], ["eval", bundle], ["bench", bundle, "--tune"]):
        result = CliRunner().invoke(app, [str(a) for a in args])
        lines = [ln for ln in result.stderr.strip().splitlines() if ln.strip()]
        assert result.exit_code != 0 and len(lines) == 1, (args, result.stderr)
        assert "files.0.file" in lines[0], lines[0]


# ------------------------------------------------------------------ the model card's metadata

def test_card_metadata_is_yaml_the_hub_reads(tiny_bundle):
    m = load_manifest(tiny_bundle)
    card = ModelCard((tiny_bundle / "README.md").read_text())
    assert card.data.tags == ["gguf", "llama.cpp", "ollama", "edgepack"] and card.data.license is None
    tricky = "other: see LICENSE # not a comment"
    m.source = m.source | {"license": tricky, "kind": "hub", "spec": "org/tiny-llama"}
    card = ModelCard(render_model_card(m))
    assert card.data.license == tricky and card.data.base_model == "org/tiny-llama"
    assert card.text.lstrip().startswith("# tiny-llama")


# ------------------------------------------------------------------ random damage: one line, never a traceback

JUNK = [None, True, 0, -1, 2.5, "", "x", "../x", "a\nb", [], [1], {}, {"a": 1}, 10**30]


def _damage(value, rng):
    """A copy of a JSON value with one node replaced, dropped or added somewhere inside it."""
    if isinstance(value, dict) and value and rng.random() < 0.8:
        key = rng.choice(sorted(value))
        out = dict(value)
        roll = rng.random()
        if roll < 0.15:
            out.pop(key)
        elif roll < 0.25:
            out[rng.choice(["zz", "schema", "extra"])] = rng.choice(JUNK)
        else:
            out[key] = _damage(value[key], rng)
        return out
    if isinstance(value, list) and value and rng.random() < 0.8:
        i = rng.randrange(len(value))
        return value[:i] + [_damage(value[i], rng)] + value[i + 1:]
    return rng.choice(JUNK)


@pytest.mark.parametrize("source", ["schema 2", "schema 1"])
def test_randomly_damaged_manifests_load_or_fail_in_one_line(tiny_bundle, tmp_path, source):
    import random

    rng = random.Random(20261125)
    bundle = bundle_copy(tiny_bundle, tmp_path)
    good = json.loads((bundle / "manifest.json").read_text()) if source == "schema 2" else json.loads(V01.read_text())
    refused = 0
    for _ in range(400):
        (bundle / "manifest.json").write_text(json.dumps(_damage(good, rng)))
        try:
            load_manifest(bundle)
        except ManifestError as err:
            assert "\n" not in str(err)
            refused += 1
    assert refused > 200  # most damage is caught; the rest is damage of free-form values (notes, options, ...)


# Property-based: any JSON value put anywhere in a good manifest loads or fails in one line.
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8)


def _replace_at(value, path: list[int], new):
    """`value` with the node reached by following `path` (indices into sorted keys / items) replaced."""
    if not path or not isinstance(value, (dict, list)) or not value:
        return new
    i, rest = path[0], path[1:]
    if isinstance(value, dict):
        key = sorted(value)[i % len(value)]
        return {**value, key: _replace_at(value[key], rest, new)}
    i %= len(value)
    return value[:i] + [_replace_at(value[i], rest, new)] + value[i + 1:]


@pytest.fixture(scope="module")
def fuzz_bundle(tiny_bundle, tmp_path_factory) -> tuple[Path, dict]:
    bundle = bundle_copy(tiny_bundle, tmp_path_factory.mktemp("fuzz"))
    return bundle, json.loads((bundle / "manifest.json").read_text())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.lists(st.integers(min_value=0, max_value=50), max_size=4), new=_json)
def test_any_json_anywhere_in_a_manifest_loads_or_fails_in_one_line(fuzz_bundle, path, new):
    bundle, good = fuzz_bundle
    (bundle / "manifest.json").write_text(json.dumps(_replace_at(good, path, new)))
    try:
        load_manifest(bundle)
    except ManifestError as err:
        assert "\n" not in str(err) and str(err)
