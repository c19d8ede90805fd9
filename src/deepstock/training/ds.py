"""DS: policy learning through the differentiable simulator (spec §7.5).

Per epoch: one pass over the training trajectories in shuffled mini-batches (torch generator
seeded with the run seed, partial last batch kept), each batch rolled out through
:func:`deepstock.problem.dynamics.simulate` on torch tensors, objective = batch mean of
:func:`deepstock.problem.losses.trajectory_loss`, one Adam step per batch with grad-norm clip
(``grad_clip``, 5.0) and a skipped step on a non-finite loss; then the train loss and val loss of
the whole splits (no grad, one batched rollout each); ReduceLROnPlateau(min, ``plateau_patience``,
``scheduler_factor``) steps on the val loss; stop after ``patience_epochs`` epochs without strict
val improvement or at ``epochs``; restore the best-val state (``checkpoint: best``) or keep the last.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from deepstock.problem.data import Dataset
from deepstock.problem.dynamics import simulate
from deepstock.problem.losses import LossConfig, trajectory_loss
from deepstock.problem.settings import Setting
from deepstock.training import TrainResult
from deepstock.training.backends import (
    complete_config,
    resolve_device,
    selected_result,
)
from deepstock.training.common import seed_everything
from deepstock.training.policies import (
    DSNetwork,
    NumpyPolicy,
    TorchPolicy,
    build_ds_network,
    normalized_coeff,
)
from deepstock.training.regularizations import (
    Regularization,
    RegularizationParams,
    get_regularization,
)

#: ``population`` (:data:`deepstock.training.backends.POPULATION_MODES`): how
#: :func:`deepstock.training.ds_population.train_ds_population` runs K agents; a single run
#: accepts the option and ignores it.
OPTIONS = {"train_split": "train", "val_split": "val", "population": "auto"}


class _SplitTensors:
    """One split as float32 tensors on the training device, built once."""

    def __init__(self, dataset: Dataset, name: str, z_table: np.ndarray | None, dev: str):
        s = dataset.split(name)

        def f(a: np.ndarray | None) -> torch.Tensor | None:
            return None if a is None else torch.as_tensor(a, dtype=torch.float32, device=dev)

        self.n = len(s)
        self.demand, self.x = f(s.demand), f(s.x)
        coeff = z_table is not None
        self.phi = f(s.phi) if coeff else None
        self.z = f(z_table[s.index]) if coeff else None

    def rows(self, b: torch.Tensor | None = None) -> dict[str, torch.Tensor | None]:
        pick = (lambda a: a) if b is None else (lambda a: None if a is None else a[b])
        return {"demand": pick(self.demand), "x": pick(self.x), "phi": pick(self.phi),
                "z": pick(self.z)}


def ds_config(hparams: dict, options: dict) -> dict:
    """The complete hyper-parameters (resolved by ``deepstock.hparams``) plus the run options."""
    return complete_config("ds", hparams, options, OPTIONS)


@dataclass
class Problem:
    """What the DS runs on one dataset share: regularization, loss, split tensors, objective."""

    setting: Setting
    regz: Regularization
    reg_params: RegularizationParams
    loss: LossConfig
    z_table: np.ndarray | None
    train: _SplitTensors
    val: _SplitTensors

    @classmethod
    def build(cls, dataset: Dataset, regz: Regularization, cfg: dict, dev: str) -> Problem:
        reg_params = RegularizationParams(
            M=float(cfg["M"]), coeff_scale=float(cfg["coeff_scale"]),
            coeff_clip=tuple(float(c) for c in cfg["coeff_clip"]),
        )
        z_table = normalized_coeff(dataset.coeff) if regz.uses_coeff else None
        return cls(dataset.setting, regz, reg_params, dataset.setting.loss(cfg["loss_h"]), z_table,
                   _SplitTensors(dataset, cfg["train_split"], z_table, dev),
                   _SplitTensors(dataset, cfg["val_split"], z_table, dev))

    def network(self, cfg: dict, dev: str) -> DSNetwork:
        """A freshly initialized network (draws from torch's global generator)."""
        return build_ds_network(
            self.regz, self.setting.L, cfg["neurons_per_hidden_layer"],
            b0=float(cfg["initial_action_bias"]), M=self.reg_params.M,
        ).to(dev)

    def objective(self, policy: Callable, rows: dict) -> torch.Tensor:
        """Batch mean of :func:`trajectory_loss` of ``policy`` rolled through ``rows``."""
        ro = simulate(rows["demand"], policy, R=self.setting.R, L=self.setting.L, x=rows["x"],
                      phi=rows["phi"], z=rows["z"], lost_sales=self.setting.lost_sales,
                      warmup=self.setting.warmup)
        return trajectory_loss(ro, self.loss).mean()


class Agent:
    """The state of one DS run: network, Adam, ReduceLROnPlateau, the run's own shuffling
    generator, best-val checkpoint and the stopping rule. :func:`train_ds` drives one agent;
    :mod:`deepstock.training.ds_population` drives a vmapped group of them."""

    def __init__(self, problem: Problem, cfg: dict, seed: int, dev: str) -> None:
        seed_everything(seed, threads=1 if dev == "cpu" else None)
        self.cfg, self.seed = cfg, int(seed)
        self.net = problem.network(cfg, dev)
        self.named = dict(self.net.named_parameters())
        self.opt = torch.optim.Adam(self.net.parameters(), lr=float(cfg["learning_rate"]))
        self.sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.opt, mode="min", factor=float(cfg["scheduler_factor"]),
            patience=int(cfg["plateau_patience"]),
        )
        self.gen = torch.Generator().manual_seed(self.seed)
        self.best_val, self.best_state, self.bad, self.skipped = math.inf, None, 0, 0
        self.history: list[dict] = []
        self.batch_losses: list[float] = []
        self.active = int(cfg["epochs"]) > 0

    def batches(self, n: int) -> tuple[torch.Tensor, ...]:
        """This epoch's shuffled mini-batches of the ``n`` training rows (partial last kept)."""
        self.batch_losses = []
        return torch.randperm(n, generator=self.gen).split(int(self.cfg["batch_size"]))

    def step(self, loss: float) -> None:
        """Clip the gradient already in ``net`` and take the Adam step."""
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), float(self.cfg["grad_clip"]))
        self.opt.step()
        self.batch_losses.append(loss)

    def end_epoch(self, epoch: int, train_loss: float, val_loss: float) -> None:
        """Scheduler step, best-val checkpoint, history row and the stopping rule."""
        lr = self.opt.param_groups[0]["lr"]
        self.sched.step(val_loss)
        if val_loss < self.best_val:  # strict improvement; NaN never improves
            self.best_val, self.bad = val_loss, 0
            self.best_state = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
        else:
            self.bad += 1
        self.history.append({
            "epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "lr": lr,
            "batch_loss": float(np.mean(self.batch_losses)) if self.batch_losses else math.nan,
            "skipped_steps": self.skipped,
        })
        self.active = (self.bad < int(self.cfg["patience_epochs"])
                       and epoch < int(self.cfg["epochs"]))

    def result(self, dataset: Dataset, reg: str, problem: Problem, dev: str,
               t0: float) -> TrainResult:
        return _result(dataset, reg, self.seed, self.cfg, problem, self.net, self.best_state,
                       self.history, self.skipped, dev, t0)


def train_ds(
    dataset: Dataset,
    reg: str,
    hparams: dict,
    seed: int,
    *,
    device: str = "auto",
    progress: bool = False,
    **options: Any,
) -> TrainResult:
    """Train a DS policy (spec §7.5); see the module docstring for the exact loop."""
    t0 = time.perf_counter()
    cfg = ds_config(hparams, options)
    dev = resolve_device("ds", device, "torch")
    problem = Problem.build(dataset, get_regularization(reg), cfg, dev)
    agent = Agent(problem, cfg, seed, dev)
    policy = TorchPolicy(agent.net, problem.regz, problem.reg_params)

    def full_loss(split: _SplitTensors) -> float:
        with torch.inference_mode():
            return float(problem.objective(policy, split.rows()))

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=int(cfg["epochs"]), desc=f"ds-{reg} {dataset.setting.id}", leave=False)
    epoch = 0
    while agent.active:
        epoch += 1
        agent.net.train()
        for b in agent.batches(problem.train.n):
            loss = problem.objective(policy, problem.train.rows(b.to(dev)))
            if not torch.isfinite(loss):
                agent.skipped += 1
                continue
            agent.opt.zero_grad(set_to_none=True)
            loss.backward()
            agent.step(float(loss.detach()))
        agent.net.eval()
        agent.end_epoch(epoch, full_loss(problem.train), full_loss(problem.val))
        if bar is not None:
            bar.update()
            bar.set_postfix(val=f"{agent.history[-1]['val_loss']:.4f}",
                            best=f"{agent.best_val:.4f}")
    if bar is not None:
        bar.close()
    return agent.result(dataset, reg, problem, dev, t0)


def _result(dataset: Dataset, reg: str, seed: int, cfg: dict, problem: Problem, net: DSNetwork,
            best_state: dict | None, history: list[dict], skipped: int, dev: str,
            t0: float) -> TrainResult:
    """Restore the selected state (``checkpoint``) and report its losses on the full splits
    through the shared simulator (float64 numpy evaluation)."""
    if cfg["checkpoint"] == "best" and best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    np_policy = NumpyPolicy(net, problem.regz, problem.reg_params, problem.z_table)
    curve = pd.DataFrame(history)
    return selected_result(
        dataset, "ds", reg, seed, cfg, np_policy, problem.loss,
        best_val=None if cfg["checkpoint"] == "best" else float(curve["val_loss"].min()),
        iterations=len(history), wall_s=time.perf_counter() - t0, device=dev, curve=curve,
        extras={"best_epoch": int(curve["val_loss"].idxmin()) + 1 if curve["val_loss"].notna().any() else 0,
                "skipped_steps": skipped},
        model_state={k: v.detach().cpu() for k, v in net.state_dict().items()},
        backend="torch",
    )
