"""DS populations: configuration k trained with seed k, K results in input order (spec §7.5).

Every agent follows :func:`deepstock.training.ds.train_ds` step for step; option ``population``
says how the K agents run:

- ``sequential``: K calls of ``train_ds``; each result is its single run bit for bit.
- ``vmap``: one batched program per shape group (configurations equal in every key but
  :data:`VALUES`, grouped by :func:`deepstock.training.common.group_by_shape`). Agent k's
  network is built as ``train_ds`` builds it (``seed_everything(seed_k)``, then the network), so
  its initial θ_k is the single run's. Per epoch every active agent draws its permutation of the
  training trajectories from its own ``torch.Generator().manual_seed(seed_k)``, split into the
  group's ``batch_size``; mini-batch j gives agent k the rows B_kj. With the θ_k stacked on a
  leading axis, ``torch.func.vmap`` of the shared objective
  ℓ_k = mean_{i ∈ B_kj} trajectory_loss(simulate(D_i, π_{θ_k})) (one
  :func:`deepstock.problem.dynamics.simulate` rollout, the network run by
  ``torch.func.functional_call``) computes every ℓ_k at once, and one backward of Σ_k ℓ_k over
  the finite ℓ_k gives each agent its own gradient ∇_{θ_k} ℓ_k (agents share no parameter). Then,
  per agent as in ``train_ds``: a non-finite ℓ_k skips its step; otherwise grad-norm clip at its
  ``grad_clip`` and a step of its own ``torch.optim.Adam`` at its learning rate. At the end of an
  epoch the train and val losses of the full splits come from one no-grad vmapped rollout per
  split, and each agent steps its own ReduceLROnPlateau on its val loss, keeps its best-val state
  and stops after its ``patience_epochs`` epochs without strict improvement or at its
  ``epochs``; a stopped agent leaves the batch and no longer changes. The selected state of each
  agent is reported through :func:`deepstock.problem.evaluation.evaluate_policy`, as ``train_ds`` does;
  ``wall_s`` is the group's time until that agent's report. Batched kernels round differently
  from the single-agent ones, so a vmapped agent equals its single run to float32 rounding (the
  differences grow with the epochs), not bit for bit.
- ``auto``: ``vmap`` on CUDA, ``sequential`` on the CPU, where each agent is then its single run bit
  for bit (``vmap`` is faster on one CPU core as well: about 3x per agent-epoch for K = 8 on
  Settings 1 and 4, on par at K = 2).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.func import functional_call, vmap

from deepstock.errors import ConfigError
from deepstock.problem.data import Dataset
from deepstock.training import TrainResult
from deepstock.training.backends import Trainer, resolve_device
from deepstock.training.common import cuda_available, group_by_shape
from deepstock.training.ds import OPTIONS, Agent, Problem, ds_config, train_ds
from deepstock.training.policies import TorchPolicy
from deepstock.training.regularizations import get_regularization

#: The hyper-parameters that may differ within a vmapped group (per-agent values).
VALUES = ("learning_rate", "scheduler_factor", "plateau_patience", "patience_epochs", "epochs",
          "grad_clip", "initial_action_bias", "checkpoint")


def train_ds_population(
    dataset: Dataset,
    reg: str,
    hparams: Sequence[dict],
    seeds: Sequence[int],
    *,
    device: str = "auto",
    progress: bool = False,
    **options: Any,
) -> list[TrainResult]:
    """Train configuration k (complete hyper-parameters) with seed k; the K results in input
    order, each with the fields of a ``train_ds`` result (module docstring)."""
    if not hparams or len(hparams) != len(seeds):
        raise ConfigError(f"a DS population needs one seed per configuration, got "
                          f"{len(hparams)} configurations and {len(seeds)} seeds")
    configs = [ds_config(h, options) for h in hparams]
    get_regularization(reg)
    dev = resolve_device("ds", device, "torch")
    mode = configs[0]["population"]
    if mode == "sequential" or (mode == "auto" and dev == "cpu"):
        return [train_ds(dataset, reg, h, s, device=device, progress=progress, **options)
                for h, s in zip(hparams, seeds, strict=True)]

    results: list[TrainResult | None] = [None] * len(configs)
    for group in group_by_shape(configs, VALUES):
        trained = _train_group(dataset, reg, [configs[i] for i in group],
                               [int(seeds[i]) for i in group], dev, progress)
        for i, result in zip(group, trained, strict=True):
            results[i] = result
    return results  # type: ignore[return-value]


_ROWS = ("demand", "x", "phi", "z")


def _stacked(agents: Sequence[Agent]) -> dict[str, torch.Tensor]:
    """The agents' parameters stacked on a leading axis [K, ...] (differentiable)."""
    return {name: torch.stack([a.named[name] for a in agents]) for name in agents[0].named}


def _objectives(problem: Problem, template: torch.nn.Module) -> tuple[Callable, Callable]:
    """Per-agent objectives [K] of stacked parameters: on per-agent rows [K, b, ...] (training
    batches) and on rows shared by every agent (a full split)."""

    def one(params: dict, rows: dict) -> torch.Tensor:
        net = lambda inp: functional_call(template, params, (inp,))  # noqa: E731
        policy = TorchPolicy(net, problem.regz, problem.reg_params)
        return problem.objective(policy, {**dict.fromkeys(_ROWS), **rows})

    def lift(in_rows: int | None) -> Callable:
        batched = vmap(one, in_dims=(0, in_rows))
        return lambda params, rows: batched(params, {k: v for k, v in rows.items()
                                                     if v is not None})

    return lift(0), lift(None)


def _train_epoch(problem: Problem, agents: list[Agent], objective: Callable, dev: str) -> None:
    """One pass of every agent over its own shuffled mini-batches (one shared backward each)."""
    batches = [a.batches(problem.train.n) for a in agents]
    for picks in zip(*batches, strict=True):
        losses = objective(_stacked(agents), problem.train.rows(torch.stack(picks).to(dev)))
        finite = torch.isfinite(losses)
        for a in agents:
            a.opt.zero_grad(set_to_none=True)
        if bool(finite.any()):
            torch.where(finite, losses, torch.zeros_like(losses)).sum().backward()
        for a, value, ok in zip(agents, losses.detach().tolist(), finite.tolist(), strict=True):
            if ok:
                a.step(value)
            else:
                a.skipped += 1


def _train_group(dataset: Dataset, reg: str, configs: list[dict], seeds: list[int], dev: str,
                 progress: bool) -> list[TrainResult]:
    """Train one shape group in one batched program (module docstring)."""
    t0 = time.perf_counter()
    problem = Problem.build(dataset, get_regularization(reg), configs[0], dev)
    agents = [Agent(problem, cfg, seed, dev) for cfg, seed in zip(configs, seeds, strict=True)]
    on_batches, on_split = _objectives(problem, agents[0].net)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(desc=f"ds-{reg} {dataset.setting.id} (vmap, {len(agents)} agents)",
                   total=max(int(c["epochs"]) for c in configs), leave=False)
    epoch = 0
    while any(a.active for a in agents):
        epoch += 1
        active = [a for a in agents if a.active]
        _train_epoch(problem, active, on_batches, dev)
        with torch.inference_mode():
            params = _stacked(active)
            train = on_split(params, problem.train.rows()).tolist()
            val = on_split(params, problem.val.rows()).tolist()
        for a, train_loss, val_loss in zip(active, train, val, strict=True):
            a.end_epoch(epoch, train_loss, val_loss)
        if bar is not None:
            bar.update()
            bar.set_postfix(active=sum(a.active for a in agents))
    if bar is not None:
        bar.close()
    return [a.result(dataset, reg, problem, dev, t0) for a in agents]


#: The torch backend (:class:`deepstock.registry.Backend` ``torch``): DS, one run or a population.
TRAINERS = {"ds": Trainer(train_ds, train_ds_population, OPTIONS, gpu_available=cuda_available)}
