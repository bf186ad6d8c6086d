"""Hostile specs: refused quickly and cheaply, or normalised, before MLflow or the file
system sees them. (tests/spec/test_spec.py already covers !!python/object/apply,
!!python/name, a 9-level alias bomb, a 2 MB file, and names with '/' or an inner
newline; these are the rest.)"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from orchestrator.errors import SpecError
from orchestrator.sweepspec import load_spec

ROOT = Path(__file__).resolve().parents[2]
BASE = {"trainable": "digits_mlp", "method": "random", "metric": {"name": "val_loss"},
        "parameters": {"lr": {"min": 1e-4, "max": 1e-1}}}


# ----------------------------------------------------------------------------- YAML itself

YAML_CASES = [
    pytest.param("a: !!python/object/new:subprocess.Popen [[ls]]\n", "not allowed", id="new"),
    pytest.param("a: !!python/module:os\n", "not allowed", id="module"),
    pytest.param("? !!python/name:os.system\n: 1\n", "not allowed", id="tagged-key"),
    pytest.param("a: !Ref x\n", "not allowed", id="custom-tag"),
    pytest.param("a: !!binary aGVsbG8=\n", "not allowed", id="binary"),
    pytest.param("a: !!set {x}\n", "not allowed", id="set"),
    # a wide bomb: few levels, each alias used many times
    pytest.param("a: &a [" + ",".join(["x"] * 400) + "]\nb: [" + ",".join(["*a"] * 400) + "]\n",
                 "alias bomb", id="wide-alias-bomb"),
    # a bomb through merge keys
    pytest.param("a: &a {" + ", ".join(f"k{i}: [{','.join(['v'] * 50)}]" for i in range(50))
                 + "}\n" + "".join(f"b{j}: &b{j}\n  <<: *{'a' if j == 0 else f'b{j - 1}'}\n"
                                   f"  z{j}: 1\n" for j in range(60)),
                 "alias bomb", id="merge-key-bomb"),
    pytest.param("a: " + "[" * 3000 + "]" * 3000 + "\n", "nest", id="deep-lists",
                 ),
    pytest.param("a: " + "{b: " * 3000 + "1" + "}" * 3000 + "\n", "nest", id="deep-maps",
                 ),
]


@pytest.mark.parametrize("text,fragment", YAML_CASES)
def test_hostile_yaml_is_refused_quickly(text, fragment):
    started = time.perf_counter()
    with pytest.raises(SpecError, match=fragment):
        load_spec(text)
    # Unguarded, these take minutes and gigabytes; guarded, well under a second on a quiet
    # machine (deep-lists ~0.7 s: PyYAML's scanner is quadratic in flow depth), so the
    # bound leaves room for a loaded CI machine without letting a blow-up through.
    assert time.perf_counter() - started < 5


# ----------------------------------------------------------------------------- names and text

# (field, value): each must be refused with an issue at that field
REFUSED = [
    ("name", "x" * 201), ("name", "a\x00b"), ("name", "a\rb"), ("name", "\u202eevil"),
    ("name", "abc\n"), ("name", "   "),
    ("experiment", "e" * 201), ("experiment", "a\nb"), ("experiment", "abc\n"),
    ("hypothesis", "h" * 5001), ("expected", "e" * 5001), ("description", "d" * 5001),
    ("parameters", {"../x": {"value": 1}}), ("parameters", {"a/b": {"value": 1}}),
    ("parameters", {"λ": {"value": 1}}), ("parameters", {"a..b": {"value": 1}}),
    ("parameters", {"": {"value": 1}}), ("parameters", {"p" * 101: {"value": 1}}),
    ("parameters", {"g": {"parameters": {"..": {"value": 1}}}}),
    pytest.param("parameters", {"lr\n": {"value": 1}}),
    pytest.param("metric", {"name": "../../etc/passwd"}),
    pytest.param("metric", {"name": "loss\nx"}),
    pytest.param("metric", {"name": "m" * 300}),
]


@pytest.mark.parametrize("field,value", REFUSED)
def test_unusable_names_and_text_are_refused_at_their_field(field, value):
    with pytest.raises(SpecError) as info:
        load_spec({**BASE, field: value})
    assert any(i.path.startswith(field) for i in info.value.issues), info.value.issues


# Names are titles: kept as written (shown, tagged), never used as paths. Folders and the
# default experiment use a safe name derived from them.
PATH_LIKE_NAMES = ["..", "../etc", "a/../b", "a\\b", "x" * 150, "expérience", "名前", "-rf",
                   "ResNet-50: lr sweep (v2)", "/etc/passwd", "...."]


@pytest.mark.parametrize("name", PATH_LIKE_NAMES)
def test_path_like_names_are_kept_as_text_with_a_safe_folder_name(name):
    spec = load_spec({**BASE, "name": name})
    assert spec.name == name
    slug = spec.slug
    assert slug and "/" not in slug and "\\" not in slug and ".." not in slug
    assert not slug.startswith(("-", ".")) and len(slug) <= 80
    assert spec.experiment == slug  # the default experiment: the safe form


# Valid, however odd: free text is stored as text (MLflow tags), never used as a path.
# Control characters (here a right-to-left override) are stripped before it is stored.
ODD_BUT_VALID_TEXT = "../../../../tmp/evil\n$(touch pwned) `id` ; rm -rf / \u202e Ωmega ✓ 名前\t"
STORED_TEXT = ODD_BUT_VALID_TEXT.replace("\u202e", "").strip()


def test_free_text_may_hold_anything_within_its_length_limit():
    spec = load_spec({**BASE, "hypothesis": ODD_BUT_VALID_TEXT, "expected": ODD_BUT_VALID_TEXT,
                      "description": "x" * 5000,
                      "parameters": {"path": {"values": ["../../etc/passwd", "/etc/shadow"]}}})
    assert spec.hypothesis == STORED_TEXT
    assert list(spec.parameter("path").values) == ["../../etc/passwd", "/etc/shadow"]


# ----------------------------------------------------------------------------- size

MEASURE = textwrap.dedent("""
    import json, sys, time
    from orchestrator.sweepspec import load_spec
    from orchestrator.errors import SpecError

    def rss_kib():
        with open("/proc/self/status") as fh:
            return next(int(l.split()[1]) for l in fh if l.startswith("VmHWM:"))

    spec = sys.argv[1] if sys.argv[2] == "path" else open(sys.argv[1]).read()
    before = rss_kib()
    started = time.perf_counter()
    try:
        load_spec(spec)
        outcome = "accepted"
    except SpecError as exc:
        outcome = str(exc)
    print(json.dumps({"seconds": time.perf_counter() - started,
                      "peak_growth_mib": (rss_kib() - before) / 1024, "outcome": outcome}))
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("how", ["path", "text"])
def test_a_50_mb_spec_is_refused_fast_with_bounded_memory(tmp_path, how):
    big = tmp_path / "big.yaml"
    with big.open("w") as fh:  # 50 MB of plausible YAML: a huge list of values
        fh.write("method: random\nparameters:\n  x:\n    values: [")
        fh.write("1234567, " * (50 * 1024 * 1024 // 9))
        fh.write("1]\n")
    assert big.stat().st_size > 50 * 1024 * 1024
    out = subprocess.run([sys.executable, "-c", MEASURE, str(big), how], cwd=ROOT,
                         capture_output=True, text=True, timeout=60, check=True)
    got = json.loads(out.stdout)
    assert "larger than" in got["outcome"] or "over the limit" in got["outcome"], got
    assert got["seconds"] < 2, got
    # from a path the file is never read; as text, at most one copy of it is made
    limit = 5 if how == "path" else 100
    assert got["peak_growth_mib"] < limit, got


# ----------------------------------------------------------------------------- a real sweep


@pytest.mark.e2e
def test_odd_text_reaches_mlflow_as_text_and_nothing_lands_outside_the_roots(ray_session,
                                                                            store, tmp_path):
    import orchestrator
    from _trainables import quadratic
    from mlflow import MlflowClient

    before = set(Path("/tmp").iterdir())
    spec = {"name": "odd-text", "method": "random", "metric": {"name": "loss"}, "run_cap": 2,
            "hypothesis": ODD_BUT_VALID_TEXT, "expected": ODD_BUT_VALID_TEXT,
            "parameters": {"x": {"min": 0.0, "max": 1.0}, "epochs": {"value": 2},
                           "path": {"values": ["../../escape", "/tmp/evil"]}}}
    result = orchestrator.sweep(spec, trainable=quadratic, tracking_uri=store)
    assert result.ok
    assert {p.name for p in tmp_path.iterdir()} <= {"mlflow.db", "mlflow.db.lock", "mlruns",
                                                    "orch_results", "optuna.journal"}
    assert not list(tmp_path.rglob("pwned")) and not Path("/tmp/evil").exists()
    assert not [p for p in set(Path("/tmp").iterdir()) - before
                if p.name in ("evil", "escape", "pwned")]
    parent = MlflowClient(store).get_run(result.parent_run_id)
    assert parent.data.tags["orch.hypothesis"] == STORED_TEXT
