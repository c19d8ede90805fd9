"""The registry is the one declaration of the experiment's axes; everything else derives from it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml

from deepstock import registry, workflow_axes
from deepstock.cli import build_parser, main
from deepstock.errors import ConfigError
from deepstock.hparams import SCALES, get_scale, resolve_hparams
from deepstock.problem.generators import generate_dataset
from deepstock.training.regularizations import Regularization, get_regularization

ROOT = Path(__file__).resolve().parents[1]


def _choices(command: str, option: str) -> list[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    return list(next(a for a in sub._actions if option in a.option_strings).choices)


def test_cli_choices_are_the_registry_axes():
    for command in ("train", "tune"):
        assert _choices(command, "--method") == list(registry.METHODS)
        assert _choices(command, "--reg") == list(registry.REGULARIZATIONS)
        assert _choices(command, "--backend") == registry.backend_names()
    assert _choices("tune", "--executor") == list(registry.EXECUTORS)
    assert set(registry.backend_names()) == {"sb3", "jax", "torch"}


def _workflow_config(**changes) -> dict:
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    return {**config, **changes}


def test_the_workflow_schema_lists_no_axis_value_so_nothing_is_kept_in_sync_with_the_registry():
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    props = schema["properties"]
    for key in ("scale", "settings", "methods", "regs", "s4_methods", "s4_regs", "backends"):
        assert not re.search(r"\b(enum|pattern|properties)\b", yaml.safe_dump(props[key])), key
    assert "enum" not in props["tuning"]["properties"]["executor"]
    assert "workflow_axes.check_workflow_axes(config)" in (ROOT / "Snakefile").read_text()


def test_the_workflow_config_accepts_every_axis_value_the_registry_declares():
    workflow_axes.check_workflow_axes(_workflow_config())
    backlogged = [s for s in workflow_axes.WORKFLOW_SETTINGS if not s.startswith("ls")]
    everything = _workflow_config(
        scale=SCALES[-1], settings=backlogged,
        methods=list(registry.METHODS), regs=list(registry.REGULARIZATIONS),
        s4_methods=list(registry.METHODS), s4_regs=list(registry.REGULARIZATIONS),
        backends={m: b for m, method in registry.METHODS.items() for b in method.backends},
        tuning={"executor": registry.EXECUTORS[-1]})
    workflow_axes.check_workflow_axes(everything)
    featureless = [r for r, g in registry.REGULARIZATIONS.items() if not g.uses_coeff]
    workflow_axes.check_workflow_axes({**everything, "settings": ["ls", "ls_poisson_l1_p4"],
                                       "regs": featureless})
    grid = [registry.iid_setting_id(n, t) for n in registry.IID_N for t in registry.IID_T]
    lost_sales = [f"ls_{d}_l{L}_p{p}" for d in ("poisson", "geometric") for p in (4, 9, 19, 39)
                  for L in (1, 2, 3, 4)]
    assert set(workflow_axes.WORKFLOW_SETTINGS) == {"s1", "s2", "s3", "s4", *grid, "ls",
                                                    *lost_sales}


@pytest.mark.parametrize(("changes", "message"), [
    ({"scale": "huge"}, "config scale: 'huge' is not one of ['paper', 'quick', 'tiny']"),
    ({"settings": ["s1", "s4_n05_t7"]}, "config settings: 's4_n05_t7' is not one of"),
    ({"settings": ["s4_n6_t7"]}, "config settings: 's4_n6_t7'"),
    ({"methods": ["dqn"]}, "config methods: 'dqn' is not one of ['ddpg', 'ppo', 'ds']"),
    ({"s4_regs": ["base", "offset"]}, "config s4_regs: 'offset' is not one of"),
    ({"backends": {"ds": "jax"}}, "config backends.ds: 'jax' is not one of ['torch']"),
    ({"backends": {"sac": "jax"}}, "config backends: 'sac' is not one of"),
    ({"tuning": {"executor": "slurm"}}, "config tuning.executor: 'slurm' is not one of"),
])
def test_a_workflow_axis_value_outside_the_registry_is_one_line_naming_its_key(changes, message):
    with pytest.raises(ConfigError) as err:
        workflow_axes.check_workflow_axes(_workflow_config(**changes))
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_a_regularization_registered_once_is_a_valid_workflow_value(offset_reg):
    workflow_axes.check_workflow_axes(_workflow_config(regs=["base", "offset"], s4_regs=["offset"]))


def test_the_workflow_config_refuses_a_method_regularization_pair_the_method_does_not_support(
    monkeypatch
):
    import dataclasses

    narrow = dataclasses.replace(registry.METHODS["ds"], regs=("base",), families=("iid",))
    monkeypatch.setitem(registry.METHODS, "ds", narrow)
    workflow_axes.check_workflow_axes(_workflow_config(lost_sales={}, settings=["s4"], s4_methods=["ds"],
                                                  s4_regs=["base"]))
    with pytest.raises(ConfigError, match="s4_methods x s4_regs: method 'ds' does not support "
                                          "regularization 'none'"):
        workflow_axes.check_workflow_axes(_workflow_config(lost_sales={}, settings=["s4"], s4_methods=["ds"],
                                                      s4_regs=["none"]))
    with pytest.raises(ConfigError, match="methods x regs: .* does not support 'ar1' settings"):
        workflow_axes.check_workflow_axes(_workflow_config(lost_sales={}, settings=["s2"], methods=["ds"],
                                                      regs=["base"]))


def test_snakefile_wildcards_come_from_the_registry():
    text = (ROOT / "Snakefile").read_text()
    assert 'method="|".join(registry.METHODS)' in text
    assert 'reg="|".join(registry.REGULARIZATIONS)' in text
    assert 'setting="|".join(families.setting_ids())' in text


def test_rl_runs_on_the_cpu_and_ds_where_asked_one_rule_for_all_callers():
    from deepstock.training.backends import resolve_device

    assert resolve_device("ddpg", "cuda") == "cpu"
    assert resolve_device("ppo", "auto") == "cpu"
    assert resolve_device("ds", "cpu") == "cpu"
    with pytest.raises(ConfigError, match="device"):
        resolve_device("ds", "tpu")


def test_every_method_takes_the_same_defaults_from_python_and_the_cli(tmp_path, swap_train):
    """`train(..., {})` is the resolved default set for every method, as `deepstock train`."""
    import deepstock.training as trainers

    path = tmp_path / "s2.npz"
    generate_dataset("s2").save(path)
    data = generate_dataset("s2")
    seen: dict[tuple[str, str], dict] = {}
    via = ["python"]

    def capturing(method, backend=None):
        def trainer(dataset, reg, hp, seed, **kw):
            seen[(method, via[0])] = hp
            raise ConfigError("captured")
        return trainer

    swap_train(capturing)
    for method in registry.METHODS:
        via[0] = "python"
        with pytest.raises(ConfigError, match="captured"):
            trainers.train(data, method, "base", {}, 1)
        via[0] = "cli"
        assert main(["train", "s2", "--method", method, "--reg", "base", "--data", str(path),
                     "--out", str(tmp_path / method)]) == 2
        assert seen[(method, "python")] == seen[(method, "cli")]
        assert seen[(method, "python")] == resolve_hparams(method, "s2", "base")
    assert seen[("ddpg", "python")]["net_arch"] == {"pi": [32, 32], "qf": [32, 32]}  # AR(1)


def test_a_trainer_refuses_an_incomplete_configuration_naming_the_missing_keys():
    from deepstock.training.ds import train_ds

    with pytest.raises(ConfigError, match="lack .*learning_rate"):
        train_ds(generate_dataset("s1"), "base", {"epochs": 1}, 1)


def test_a_trial_is_validated_once_from_its_job_to_its_trainer(monkeypatch):
    from deepstock.hparams import get_scale, resolve_hparams
    from deepstock.training.backends import make_job

    tiny = {**resolve_hparams("ds", "s1", "base"), **get_scale("tiny").budget("ds")}
    job = make_job(generate_dataset("s1").setting, "ds", "base", tiny, device="cpu")
    assert isinstance(job.hparams, registry.CheckedHParams)
    calls = []
    check = registry.check_complete
    monkeypatch.setattr(registry, "check_complete",
                        lambda method, config: calls.append(method) or check(method, config))
    configs = [{**tiny, "learning_rate": 0.01}, {**tiny, "learning_rate": 0.02}]
    results = job.train_population(generate_dataset("s1"), configs, [1, 2])
    assert calls == ["ds", "ds"]  # with_hparams, once per trial; the trainer checks no more
    assert [r.config["learning_rate"] for r in results] == [0.01, 0.02]
    with pytest.raises(TypeError, match="made by registry.checked_hparams"):
        registry.CheckedHParams("ds", tiny)  # cannot be made without the check


def test_resolution_order_user_file_and_overrides_win_over_the_scale_budget(tmp_path):
    user = tmp_path / "h.yaml"
    user.write_text("epochs: 7\ngrad_clip: 2.0\n")
    notes: list[str] = []
    hp = resolve_hparams("ds", "s1", "base", path=user, scale=get_scale("tiny"), notes=notes)
    assert hp["epochs"] == 7 and hp["patience_epochs"] == 2 and hp["grad_clip"] == 2.0
    assert notes == [f"{user} sets epochs=7 over the tiny scale's budget 4"]
    hp = resolve_hparams("ds", "s1", "base", {"epochs": 9}, path=user, scale=get_scale("tiny"))
    assert hp["epochs"] == 9
    assert resolve_hparams("ds", "s4_n5_t7", "base")["M"] == 500.0  # the setting's cap
    assert resolve_hparams("ppo", "s4_n5_t7", "base")["M"] == 500.0


def test_each_stopping_rule_has_its_own_key():
    keys = {name: m.stopping.key for name, m in registry.METHODS.items()}
    assert keys == {"ddpg": "patience_evals", "ppo": "patience_evals", "ds": "patience_epochs"}
    for name, m in registry.METHODS.items():
        assert m.stopping.key in m.schema and "patience" not in m.schema, name


@dataclass(frozen=True)
class BaseWithOffset(Regularization):
    """Base plus a constant safety stock: q = clip(μ - position + offset, 0, M)."""

    offset: float = 2.0

    def decode(self, out, obs, params):
        out = out[:, 0] if out.ndim == 2 else out
        return (out - obs.position + self.offset).clip(min=0.0, max=params.M)


@pytest.fixture
def offset_reg():
    reg = registry.register_regularization(
        BaseWithOffset("offset", subtract_position=True, uses_coeff=False, label="Offset",
                       color="#937860", marker="P"))
    yield reg
    del registry.REGULARIZATIONS["offset"]


def test_a_regularization_registered_in_a_test_reaches_the_summary_and_the_tables(
    offset_reg, tmp_path
):
    """One entry, no other file: CLI, tuner, DS trainer, summary.csv and Table 6 all see it."""
    data = tmp_path / "data" / "s1.npz"
    generate_dataset("s1").save(data)
    results = tmp_path / "results"
    assert get_regularization("offset") is offset_reg
    for reg in ("base", "offset"):
        rc = main(["tune", "s1", "--method", "ds", "--reg", reg, "--scale", "tiny", "--executor",
                   "local", "--quiet", "--data", str(data),
                   "--out", str(results / "s1" / "ds" / reg / "rep0")])
        assert rc == 0
    assert main(["report", "summary", "--results", str(results)]) == 0
    summary = pd.read_csv(results / "summary.csv")
    assert sorted(summary["reg"]) == ["base", "offset"]
    assert main(["report", "tables", "--summary", str(results / "summary.csv"),
                 "--out", str(results / "tables")]) == 0
    table6 = pd.read_csv(results / "tables" / "table6.csv")
    paper = ["DDPG-None", "DDPG-Base", "PPO-None", "PPO-Base", "DS-None", "DS-Base"]
    assert list(table6.columns) == ["row", *paper, "DS-Offset"]  # paper's columns first
    row = summary[summary["reg"] == "offset"].iloc[0]
    assert table6.set_index("row").loc["Testing Loss", "DS-Offset"] == pytest.approx(
        row["test_loss"])
    tex = (results / "tables" / "table6.tex").read_text()
    assert r"\multicolumn{3}{c}{DS}" in tex and "None & Base & Offset" in tex
    assert main(["report", "figures", "--results", str(results), "--out",
                 str(tmp_path / "figures")]) == 0
    surpass = pd.read_csv(results / "tables" / "surpass.csv")
    assert set(surpass["reg"]) == {"none", "base", "offset"}  # Figure 2 has an Offset panel


def test_a_method_refuses_a_regularization_or_family_it_does_not_declare(monkeypatch):
    import dataclasses

    narrow = dataclasses.replace(registry.METHODS["ds"], regs=("base",), families=("indep",))
    monkeypatch.setitem(registry.METHODS, "ds", narrow)
    assert resolve_hparams("ds", "s1", "base")["epochs"] == 3000
    with pytest.raises(ConfigError, match="does not support regularization 'none'"):
        resolve_hparams("ds", "s1", "none")
    with pytest.raises(ConfigError, match="does not support 'ar1' settings"):
        resolve_hparams("ds", "s2", "base")


# ----------------------------------------------------------------------------- unique names/labels
def test_registering_a_name_that_exists_is_refused_unless_replacement_is_asked_for(monkeypatch):
    builtin = registry.REGULARIZATIONS["base"]
    monkeypatch.setitem(registry.REGULARIZATIONS, "base", builtin)  # restored after the test
    impostor = Regularization("base", subtract_position=False, uses_coeff=False, label="Base")
    with pytest.raises(ConfigError) as err:
        registry.register_regularization(impostor)
    assert "'base' is already registered" in str(err.value) and "replace=True" in str(err.value)
    assert "\n" not in str(err.value)
    assert get_regularization("base") is builtin  # the built-in Base is still what 'base' means
    assert registry.register_regularization(impostor, replace=True) is impostor
    assert get_regularization("base") is impostor
    assert list(registry.REGULARIZATIONS).index("base") == 1  # it keeps Base's place


@pytest.mark.parametrize("label", ["Base", "BASE", "None"])
def test_a_label_another_regularization_carries_is_refused_at_registration(label):
    reg = Regularization("lookalike", subtract_position=True, uses_coeff=False, label=label)
    with pytest.raises(ConfigError, match=f"label {label!r} is already that of regularization"):
        registry.register_regularization(reg)
    assert "lookalike" not in registry.REGULARIZATIONS
    # the default label is the capitalized name: a name whose title clashes is refused too
    with pytest.raises(ConfigError, match="already that of regularization 'coeff'"):
        registry.register_regularization(
            Regularization("coeff2", subtract_position=False, uses_coeff=True, label="Coeff"))


def test_tables_key_on_names_so_two_cells_sharing_a_label_are_an_error_never_one_column(
        monkeypatch):
    """A regularization put into the registry by hand, past register_regularization, with
    Base's label: Table 6 refuses it instead of letting its numbers take over DS-Base."""
    from deepstock.reports.tables import cell_stats, table_6_8

    lookalike = Regularization("lookalike", subtract_position=True, uses_coeff=False,
                               label="Base")
    monkeypatch.setitem(registry.REGULARIZATIONS, "lookalike", lookalike)
    rows = [{"setting": "s1", "method": "ds", "reg": reg, "repetition": 0, "val_loss": v,
             "val_gap": 0.0, "test_loss": v, "test_gap": 0.0, "benchmark": 1.0}
            for reg, v in (("base", 1.0), ("lookalike", 9.0))]
    stats = cell_stats(pd.DataFrame(rows))
    with pytest.raises(ConfigError) as err:
        table_6_8(stats, "s1")
    assert "ds-base and ds-lookalike share the label 'DS-Base'" in str(err.value)
    monkeypatch.delitem(registry.REGULARIZATIONS, "lookalike")
    table = table_6_8(stats, "s1")
    assert table.loc["Testing Loss", "DS-Base"] == 1.0  # Base's own number


def test_coeff_and_both_are_refused_in_one_line_on_a_family_without_features():
    with pytest.raises(ConfigError) as err:
        workflow_axes.check_workflow_axes(_workflow_config(settings=["s1", "ls"],
                                                           regs=["none", "coeff"]))
    assert str(err.value) == (
        "config methods x regs: regularization 'coeff' reads the Coeff features, which "
        "'lost_sales' settings do not define; use one of ['none', 'base']")
    with pytest.raises(ConfigError, match="'both' reads the Coeff features"):
        resolve_hparams("ds", "ls_poisson_l2_p9", "both")
