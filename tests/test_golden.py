"""Golden results: tiny DS, DDPG and PPO trainings (jax and SB3) and a tiny two-stage tune give
exactly the committed numbers on the locked stack with the pinned numerics
(docs/reproducibility.md). Recorded by ``python -m tests.golden.make``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deepstock import numerics, provenance
from tests.golden.cases import CASES

GOLDENS = json.loads((Path(__file__).parent / "golden" / "goldens.json").read_text())


def test_the_goldens_were_recorded_on_the_locked_stack_with_pinned_numerics():
    recorded = GOLDENS["provenance"]
    assert recorded["lock"] == "matches" and recorded["numerics"]["mode"] == "pinned"
    assert set(GOLDENS["cases"]) == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_golden_case_reproduces_bit_for_bit(name):
    differ = provenance.lock_mismatch()
    assert not differ, f"not the locked stack ({', '.join(differ)}): install the lock first"
    assert numerics.mode() == "pinned"
    assert CASES[name]() == GOLDENS["cases"][name]
