"""The paper's reported numbers (``paper/reported.yaml``, spec §9) as plain Python objects.

:func:`load_reported` reads and checks the file; :func:`paper_cells` flattens Tables 6–9 into one
row per reported number (the keys the comparison joins on).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from deepstock import registry
from deepstock.errors import DataError
from deepstock.io import read_yaml

METRICS = ("val_loss", "val_gap", "test_loss", "test_gap")
TABLE_SETTINGS = registry.TABLE_SETTINGS
DEFAULT_PATH = "paper/reported.yaml"


def load_reported(path: str | Path = DEFAULT_PATH) -> dict:
    """Parse ``reported.yaml``; a missing file or a missing section is a one-line DataError."""
    data = read_yaml(path, kind="reported values", error=DataError)
    for key in ("tables_6_8", "table9", "figure2"):
        if not isinstance(data, dict) or key not in data:
            raise DataError(f"{path}: missing section {key!r}")
    return data


def paper_lstar(reported: dict, setting: str) -> float | None:
    """The paper's implied L* for a setting: Tables 6–8, or Table 9's benchmark row (spec §9)."""
    for table in reported["tables_6_8"].values():
        if table["setting"] == setting:
            return float(table["L_star"])
    t9 = reported["table9"]
    for n, rows in t9["N"].items():
        for j, t in enumerate(t9["T"]):
            if setting == registry.iid_setting_id(int(n), int(t)):
                return float(rows["benchmark"][j])
    return None


def paper_cells(reported: dict) -> pd.DataFrame:
    """One row per reported number: table, setting, method, reg, N, T, H, metric, paper."""
    rows = []
    for name, table in reported["tables_6_8"].items():
        for method, regs in table["cells"].items():
            for reg, values in regs.items():
                for metric in METRICS:
                    rows.append(dict(table=name, setting=table["setting"], method=method, reg=reg,
                                     N=None, T=None, H=None, metric=metric,
                                     paper=float(values[metric])))
    t9 = reported["table9"]
    method, reg = registry.TABLE9_CELL
    for n, values in t9["N"].items():
        for j, (t, h) in enumerate(zip(t9["T"], t9["H"], strict=True)):
            for metric in ("benchmark",) + METRICS:
                rows.append(dict(table="table9", setting=registry.iid_setting_id(int(n), int(t)),
                                 method=method, reg=reg, N=int(n), T=int(t), H=int(h), metric=metric,
                                 paper=float(values[metric][j])))
    return pd.DataFrame(rows)


def paper_surpass(reported: dict) -> dict[tuple[str, str], int]:
    """{(method, reg): configs to surpass DS} from Figure 2 (spec §9.3)."""
    out = {}
    for method, regs in reported["figure2"]["configs_to_surpass_ds"].items():
        for reg, n in regs.items():
            out[(method, reg)] = int(n)
    return out
