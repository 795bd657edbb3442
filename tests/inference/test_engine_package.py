"""Promises of the engine package's shape: plain Python without Django, and one typed shape for
sampling parameters (`SamplingParams`)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from inference.engine import GenerationRequest, InvalidGenerationRequest, SamplingParams

ROOT = Path(__file__).resolve().parents[2]
ENGINE = ROOT / "inference" / "engine"


def _imported_names(source: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(source.read_text(), filename=str(source))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_it_imports_nothing_of_django_in_any_module():
    modules = sorted(ENGINE.glob("*.py"))
    assert len(modules) > 5
    offending = {path.name: sorted(n for n in _imported_names(path) if n.split(".")[0] in ("django", "celery", "rest_framework"))
                 for path in modules}
    assert {name: found for name, found in offending.items() if found} == {}


def test_it_imports_in_a_fresh_interpreter_without_django_settings():
    environment = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    environment["PYTHONPATH"] = str(ROOT)
    code = ("import sys, inference.engine as e; e.Engine; e.SamplingParams();"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('django', 'celery')))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(("field", "value"), [("max_new_tokens", 0), ("max_new_tokens", SamplingParams.MAX_NEW_TOKENS + 1),
                                              ("temperature", -0.1), ("top_k", -1), ("top_p", 0.0), ("n", 0),
                                              ("n", SamplingParams.MAX_SAMPLES + 1), ("seed", -1)])
def test_it_refuses_sampling_parameters_outside_their_limits_naming_the_parameter(field, value):
    with pytest.raises(InvalidGenerationRequest) as refused:
        SamplingParams(**{field: value})
    assert refused.value.param == field


def test_it_carries_sampling_parameters_through_plain_json_and_ignores_other_keys():
    sampling = SamplingParams(max_new_tokens=9, temperature=0.5, top_k=3, top_p=0.9, n=2, seed=4, stop_at_eos=False)
    assert SamplingParams.from_dict({**sampling.to_dict(), "prompt": "x", "precision": "int8"}) == sampling
    assert SamplingParams.from_dict({}) == SamplingParams()


def test_a_request_takes_its_sampling_whole_or_flat_but_not_both():
    flat = GenerationRequest(model_digest="d", model_dir=None, prompt="p", max_new_tokens=5, n=2)
    whole = GenerationRequest(model_digest="d", model_dir=None, prompt="p", sampling=SamplingParams(max_new_tokens=5, n=2))
    assert flat.sampling == whole.sampling
    with pytest.raises(TypeError):
        GenerationRequest(model_digest="d", model_dir=None, prompt="p", sampling=SamplingParams(), n=2)
