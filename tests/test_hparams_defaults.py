"""The default hyper-parameters are the authors' Setting 1 winners, at their full precision."""

from __future__ import annotations

import pytest

from deepstock.hparams import resolve_hparams

# The authors' config files (github.com/xieyaqi188/DRL_inventory_Alibaba, d70d908):
# config/ds/ds_{base,none}.yaml and config/rl/{ddpg,ppo}_{base,none}.yaml, every value they set
# that deepstock has a key for (their `patience` is our patience_epochs / patience_evals).
AUTHORS = {
    ("ds", "base"): dict(
        epochs=3000, batch_size=5, learning_rate=0.03107728177311676,
        initial_action_bias=0.5146298937515881, neurons_per_hidden_layer=[64, 64],
        patience_epochs=30, scheduler_factor=0.9362132230368285),
    ("ds", "none"): dict(
        epochs=3000, batch_size=5, learning_rate=0.004974414741194879,
        initial_action_bias=0.5160497835425987, neurons_per_hidden_layer=[128, 128],
        patience_epochs=30, scheduler_factor=0.6724566870599197),
    ("ddpg", "base"): dict(
        total_steps=200000, eval_freq=1024, learning_rate=0.003951175502941127,
        tau=0.001026514664075085, batch_size=128, gradient_steps=1, learning_starts=1000,
        buffer_size=20000, patience_evals=10, lr_min=0.00017421674247019648, lr_fraction=0.95,
        train_freq=1, gamma=0.9881374276312332, initial_action_bias=0.47504325849895146,
        net_arch={"pi": [64, 64], "qf": [64, 64]}),
    ("ddpg", "none"): dict(
        total_steps=200000, eval_freq=1024, learning_rate=0.0028095326860480495,
        tau=0.0010082105753620831, batch_size=256, gradient_steps=1, learning_starts=500,
        buffer_size=20000, patience_evals=10, lr_min=0.00014571290176012956, lr_fraction=0.95,
        train_freq=1, gamma=0.9852352143340127, initial_action_bias=0.3409250448637875,
        net_arch={"pi": [64, 64], "qf": [64, 64]}),
    ("ppo", "base"): dict(
        total_steps=200000, eval_freq=2048, learning_rate=0.004249335545960943, n_steps=1024,
        batch_size=256, clip_range=0.10445691984873462, vf_coef=0.4, max_grad_norm=0.5,
        patience_evals=10, lr_min=1.5346058004082032e-05, lr_fraction=0.9,
        ent_coef=0.1558150008182111, gamma=0.9947537003619308, gae_lambda=0.6940401326767468,
        initial_action_bias=0.20303168675876349, net_arch={"pi": [256, 256], "vf": [256, 256]}),
    ("ppo", "none"): dict(
        total_steps=200000, eval_freq=2048, learning_rate=0.0008779614463161283, n_steps=2048,
        batch_size=128, clip_range=0.16955957264915517, vf_coef=0.4, max_grad_norm=0.5,
        patience_evals=10, lr_min=1.673176233255543e-05, lr_fraction=0.9,
        ent_coef=0.38209114338807504, gamma=0.9942241152540874, gae_lambda=0.5762780406624142,
        initial_action_bias=0.2820790201859893, net_arch={"pi": [256, 256], "vf": [256, 256]}),
}
# The spec's transcription of the same winners (paper-model.md §8), rounded to 5 digits.
SPEC = {
    ("ds", "base"): dict(batch_size=5, learning_rate=0.031077, initial_action_bias=0.51463,
                         scheduler_factor=0.93621),
    ("ds", "none"): dict(batch_size=5, learning_rate=0.0049744, initial_action_bias=0.51605,
                         scheduler_factor=0.67246),
    ("ddpg", "base"): dict(learning_rate=0.0039512, lr_min=1.7422e-4, tau=0.0010265,
                           batch_size=128, learning_starts=1000, buffer_size=20000, train_freq=1,
                           eval_freq=1024, gamma=0.98814, initial_action_bias=0.47504),
    ("ddpg", "none"): dict(learning_rate=0.0028095, lr_min=1.4571e-4, tau=0.0010082,
                           batch_size=256, learning_starts=500, buffer_size=20000, train_freq=1,
                           eval_freq=1024, gamma=0.98524, initial_action_bias=0.34093),
    ("ppo", "base"): dict(learning_rate=0.0042493, lr_min=1.5346e-5, n_steps=1024,
                          batch_size=256, clip_range=0.10446, ent_coef=0.15582, gamma=0.99475,
                          gae_lambda=0.69404, eval_freq=2048, initial_action_bias=0.20303),
    ("ppo", "none"): dict(learning_rate=8.7796e-4, lr_min=1.6732e-5, n_steps=2048,
                          batch_size=128, clip_range=0.16956, ent_coef=0.38209, gamma=0.99422,
                          gae_lambda=0.57628, eval_freq=2048, initial_action_bias=0.28208),
}


@pytest.mark.parametrize("cell", sorted(AUTHORS))
def test_every_setting_1_default_is_the_authors_value_to_the_last_digit(cell):
    method, reg = cell
    resolved = resolve_hparams(method, "s1", reg)
    assert {k: resolved[k] for k in AUTHORS[cell]} == AUTHORS[cell]


@pytest.mark.parametrize("cell", sorted(SPEC))
def test_the_authors_values_rounded_to_five_digits_are_the_specs(cell):
    for key, spec_value in SPEC[cell].items():
        full = AUTHORS[cell][key]
        assert float(f"{full:.5g}") == spec_value, key
        if isinstance(spec_value, float) and spec_value != full:
            assert len(repr(full).replace(".", "").lstrip("0")) > 6, key  # not a rounded copy
