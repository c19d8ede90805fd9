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
#: Cases compiled by XLA: bit for bit on a CPU with the recording's instruction-set flags; on
#: another, within CROSS_CPU_REL (docs/reproducibility.md, "JAX across CPUs": the pinned flags
#: were shown to match on one CPU class only). torch's cases match on every AVX2 CPU.
XLA_CASES = {"ddpg-jax", "ppo-jax"}
CROSS_CPU_REL = 0.05
LOSSES = ("train_loss", "val_loss", "test_loss", "best_val")


def test_the_goldens_were_recorded_on_the_locked_stack_with_pinned_numerics():
    recorded = GOLDENS["provenance"]
    assert recorded["lock"] == "matches" and recorded["numerics"]["mode"] == "pinned"
    assert recorded["numerics"]["env"]["XLA_FLAGS"] == numerics.settings()["XLA_FLAGS"]
    assert set(GOLDENS["cases"]) == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_golden_case_reproduces_bit_for_bit(name):
    differ = provenance.lock_mismatch()
    assert not differ, f"not the locked stack ({', '.join(differ)}): install the lock first"
    assert numerics.mode() == "pinned"
    got, want = CASES[name](), GOLDENS["cases"][name]
    if name in XLA_CASES and provenance.cpu()["isa"] != GOLDENS["provenance"]["cpu"]["isa"]:
        assert got["iterations"] == want["iterations"]
        assert {k: got[k] for k in LOSSES} == pytest.approx({k: want[k] for k in LOSSES},
                                                             rel=CROSS_CPU_REL)
    else:
        assert got == want
