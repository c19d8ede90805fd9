"""What turning off XLA's YNNPACK dot fusion costs (docs/reproducibility.md, section 7).

One DDPG-Base (20 000 env steps) and one PPO-Base (40 960 env steps) training on Setting 1, each
after a warm-up call that compiles; prints wall seconds, agent steps/s and the test loss. Run it
once per mode and compare (on an AVX2 CPU the ISA cap changes nothing, so the difference is the
YNNPACK fusion):

    DEEPSTOCK_NUMERICS=native python speed/bench_ynn.py   # YNNPACK fusion on, no ISA cap
    python speed/bench_ynn.py                             # the pinned flags: fusion off
"""

from __future__ import annotations

import time

from deepstock import numerics

numerics.configure()  # before torch and XLA load, as the CLI does

from deepstock.training import jaxrt  # noqa: E402

jaxrt.configure()

RUNS = (("ddpg", {"total_steps": 20000, "eval_freq": 5000, "patience_evals": 100}),
        ("ppo", {"total_steps": 40960, "eval_freq": 10240, "patience_evals": 100}))


def main() -> None:
    from deepstock.hparams import resolve_hparams
    from deepstock.problem.generators import generate_dataset
    from deepstock.training import jax_ddpg, jax_ppo

    s1 = generate_dataset("s1")
    trainers = {"ddpg": jax_ddpg.train_ddpg, "ppo": jax_ppo.train_ppo}
    for method, over in RUNS:
        hp = {**resolve_hparams(method, "s1", "base"), **over}
        trainers[method](s1, "base", {**hp, "total_steps": over["eval_freq"]}, 1)  # compile
        t = time.perf_counter()
        r = trainers[method](s1, "base", hp, 42)
        print(f"{method}: {time.perf_counter() - t:.1f} s, "
              f"{r.extras['steps_per_s']:.0f} steps/s, test {r.test_loss:.6f}", flush=True)


if __name__ == "__main__":
    main()
