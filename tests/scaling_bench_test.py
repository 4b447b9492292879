"""bench/scaling_bench.py's batch search against hand-computed answers (no model is compiled)."""
import importlib.util
import os
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_PATH = os.path.join(REPO, "bench", "scaling_bench.py")
_spec = importlib.util.spec_from_file_location("scaling_bench", _PATH)
scaling_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(scaling_bench)


@pytest.mark.parametrize("limit,start,expected,probes", [
    (100, 8, "96", [8, 16, 32, 64, 128, 96, 112, 104]),  # doubling to 128, bisection to within 96 // 8
    (37, 64, "36", [64, 32, 48, 40, 36]),  # halving below the start first; 36 is within 36 // 8 of 40
    (1, 4, "1", [4, 2, 1]),
    (0, 4, "0", [4, 2, 1]),
])
def test_doubling_then_bisection(limit, start, expected, probes):
    seen = []

    def probe(n):
        seen.append(n)
        return n <= limit

    assert scaling_bench.largest_fitting(probe, start, cap=1 << 20, deadline=time.time() + 60) == expected
    assert seen == probes


def test_cap_and_deadline_stop_the_doubling():
    assert scaling_bench.largest_fitting(lambda n: True, 8, cap=64, deadline=time.time() + 60) == ">=64"
    assert scaling_bench.largest_fitting(lambda n: True, 8, cap=64, deadline=time.time() - 1) == ">=8"


def test_every_registered_speech_encoder_has_a_reference_config():
    from vgs_jax.models import registry  # pylint: disable=import-outside-toplevel

    assert set(scaling_bench.RECIPES) | set(scaling_bench.NOT_BENCHED) == set(registry.SPEECH_ENCODERS)
    assert not set(scaling_bench.RECIPES) & set(scaling_bench.NOT_BENCHED)
    for shapes, full in scaling_bench.RECIPES.values():
        assert os.path.exists(os.path.join(REPO, shapes)) and os.path.exists(os.path.join(REPO, full))
