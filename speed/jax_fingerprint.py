"""Fingerprint 11 short JAX trainings, to hold a refactor of the JAX backend to the same bits.

Writes, per training, the losses, iterations, a hash of the selected weights, of the curve (wall
times dropped), of the critic and replay logs, and the best step, evaluations and early stop:
DDPG plain, train_freq 3 with 2 gradient steps, with the critic log, never evaluated (fewer steps
than eval_freq), on lost sales, and a 2-agent population under sequential and vmap; PPO single,
on lost sales, and a 2-agent population under both modes. Run it before and after a change and
compare the two files (equal for a change that does not mean to move bits):

    python speed/jax_fingerprint.py before.json      # after the change: after.json; then diff
"""

from __future__ import annotations

import hashlib
import json
import sys

from deepstock import numerics

numerics.configure()  # before torch and XLA load, as the CLI does

from deepstock.training import jaxrt  # noqa: E402

jaxrt.configure()

D = {"total_steps": 3000, "eval_freq": 500, "learning_starts": 200, "patience_evals": 2}
P = {"total_steps": 6144, "eval_freq": 1024, "n_steps": 512, "batch_size": 100,
     "patience_evals": 2}


def digest(x) -> str:
    """16 hex digits of a dict of arrays (key order) or of a DataFrame's CSV."""
    import numpy as np

    m = hashlib.sha256()
    if isinstance(x, dict):
        for k in sorted(x):
            m.update(k.encode() + np.ascontiguousarray(np.asarray(x[k])).tobytes())
    else:
        m.update(x.to_csv().encode())
    return m.hexdigest()[:16]


def fingerprint(r) -> dict:
    out = {"test": r.test_loss, "val": r.val_loss, "train": r.train_loss, "best": r.best_val,
           "it": r.iterations, "w": digest(r.model_state),
           "curve": digest(r.curve.drop(columns=["wall_s"]))}
    out.update({k: digest(r.extras[k]) for k in ("critic_log", "replay_log") if k in r.extras})
    out.update({k: str(r.extras[k]) for k in ("best_step", "n_evals", "stopped_early")
                if k in r.extras})
    return out


def main(path: str) -> None:
    from deepstock.hparams import resolve_hparams
    from deepstock.problem.generators import generate_dataset
    from deepstock.training import jax_ddpg as jd
    from deepstock.training import jax_ppo as jp

    def hp(method, setting, **over):
        return {**resolve_hparams(method, setting, "base"), **over}

    s1, ls = generate_dataset("s1"), generate_dataset("ls_poisson_l2_p9")
    two_d = [hp("ddpg", "s1", **D),
             hp("ddpg", "s1", **{**D, "learning_rate": 0.01, "patience_evals": 1})]
    two_p = [hp("ppo", "s1", **P),
             hp("ppo", "s1", **{**P, "learning_rate": 0.01, "patience_evals": 1})]
    res = {
        "ddpg": fingerprint(jd.train_ddpg(s1, "base", hp("ddpg", "s1", **D), 42)),
        "ddpg_tf3": fingerprint(jd.train_ddpg(
            s1, "none", hp("ddpg", "s1", **D, train_freq=3, gradient_steps=2), 43)),
        "ddpg_log": fingerprint(jd.train_ddpg(s1, "base", hp("ddpg", "s1", **D), 42,
                                              log_critic=True, critic_log_steps=700)),
        "ddpg_never": fingerprint(jd.train_ddpg(s1, "base", hp(
            "ddpg", "s1", total_steps=300, eval_freq=1024, learning_starts=100), 42)),
        "ddpg_ls": fingerprint(jd.train_ddpg(ls, "base", hp("ddpg", "ls_poisson_l2_p9", **D),
                                             42)),
        "ppo": fingerprint(jp.train_ppo(s1, "base", hp("ppo", "s1", **P), 42)),
        "ppo_ls": fingerprint(jp.train_ppo(ls, "none", hp("ppo", "ls_poisson_l2_p9", **P), 42)),
    }
    for mode in ("sequential", "vmap"):
        res[f"ddpg_pop_{mode}"] = [fingerprint(r) for r in jd.train_ddpg_population(
            s1, "base", two_d, [42, 44], population=mode)]
        res[f"ppo_pop_{mode}"] = [fingerprint(r) for r in jp.train_ppo_population(
            s1, "base", two_p, [42, 44], population=mode)]
    with open(path, "w") as f:
        json.dump(res, f, indent=1, default=str)
    print(f"wrote {path} ({len(res)} entries)")


if __name__ == "__main__":
    main(sys.argv[1])
