"""Execute the jupytext replication report and export it as .ipynb, HTML and Markdown.

The percent-format script (``paper/replication.py``) becomes a notebook with kernel ``python3``,
runs with nbclient in ``cwd`` (the repository root) and reads its inputs from environment
variables (``DEEPSTOCK_RESULTS``, ``DEEPSTOCK_FIGURES``, ``DEEPSTOCK_TABLES``, ``DEEPSTOCK_LOGS``,
``DEEPSTOCK_REPORTED``), all absolute paths. Every output file is written atomically.

:func:`scale_banner` writes the report's statement of the run's scale from ``summary.csv``: the
scales, the stage-1 trials and the repetitions are counted per cell, never assumed from the scale
name. :func:`backend_statement` names the training backend behind each method's numbers, from the
same file's ``backend`` column.
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from deepstock import registry
from deepstock.errors import DataError, DeepstockError
from deepstock.io import write_bytes, write_text

PAPER_REPETITIONS = 3  # the paper averages 3 tuning repetitions per cell (Section 5)
CELL = ["setting", "method", "reg"]
#: ANSI escape sequences (CSI colours and cursor codes, OSC titles, lone ESC codes): IPython
#: colours its tracebacks, and an error message is one plain line.
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")


def strip_ansi(text: str) -> str:
    """``text`` without terminal escape sequences (colours of an IPython traceback)."""
    return _ANSI.sub("", text)


def _span(values: pd.Series, noun: str) -> str:
    """'3 repetitions' or '1–3 repetitions' for the per-cell counts in ``values``."""
    lo, hi = int(values.min()), int(values.max())
    count = str(lo) if lo == hi else f"{lo}–{hi}"
    return f"{count} {noun}{'' if hi == 1 else 's'}"


def repetition_counts(summary: pd.DataFrame) -> pd.Series:
    """Distinct repetitions per (setting, method, reg) cell of ``summary``."""
    if summary.empty:
        return pd.Series(dtype="int64")
    return summary.groupby(CELL)["repetition"].nunique()


def scale_banner(summary: pd.DataFrame) -> str:
    """The report's banner: the scales found and the counted trials and repetitions per cell."""
    if summary.empty:
        return "**No tuned cells found** — this report shows the paper's numbers only."
    scales = sorted(set(summary["scale"].dropna().astype(str)))
    reps = repetition_counts(summary)
    counts = f"{_span(reps, 'repetition')} per cell"
    if scales == ["quick"]:
        return (
            f"> **Scale quick: the paper's training, NOT its search.** Each cell trains its default "
            f"hyper-parameters (the authors' Setting 1 winners) at the paper's full budgets, "
            f"at 2 seeds, without tuning ({counts}). Setting 1's losses are those of the authors' "
            "winners; claims about tuning (Figure 2, Base vs None after a search, the spread "
            "over repetitions) are not tested here — only a `paper`-scale run can confirm or "
            "refute them (docs/scales.md)."
        )
    if scales != ["paper"]:
        return (
            f"> **WARNING — scale {', '.join(scales)}: this is NOT the paper's protocol.** "
            f"Budgets (trials, seeds, epochs, environment steps, repetitions) are reduced "
            f"({counts}), so the numbers below test the pipeline, not the paper's claims. Only "
            "a `paper`-scale run can confirm or refute them."
        )
    trials = (summary.groupby(CELL)["num_samples"].max().dropna() if "num_samples" in summary
              else pd.Series(dtype="float64"))
    stage1 = f" (stage 1: {_span(trials, 'configuration')} per cell)" if len(trials) else ""
    text = f"All {len(reps)} cells ran at the **paper** scale{stage1}, {counts}."
    short = int((reps < PAPER_REPETITIONS).sum())
    if short:
        text += (f" **{short} of {len(reps)} cells have fewer than the paper's "
                 f"{PAPER_REPETITIONS} repetitions**: their means are over fewer tuning runs "
                 "than the paper's.")
    return text


def backend_statement(summary: pd.DataFrame) -> str:
    """'Training backends: DDPG sb3; PPO jax; DS torch.' from ``summary``'s rows; a method whose
    cells mix backends, or whose ``winner.json`` did not record one, is flagged."""
    if summary.empty:
        return ""
    backend = (summary["backend"] if "backend" in summary else pd.Series("", index=summary.index))
    backend = backend.map(lambda b: b if isinstance(b, str) and b else "not recorded")
    present = list(dict.fromkeys(summary["method"]))
    order = [m for m in registry.METHODS if m in present] + [
        m for m in present if m not in registry.METHODS]
    parts = []
    for method in order:
        counts = (backend[summary["method"] == method].value_counts().sort_index()
                  .sort_values(ascending=False, kind="stable"))
        if len(counts) == 1:
            text = counts.index[0]
        else:
            mixed = ", ".join(f"{b} ({n} tuned cell{'' if n == 1 else 's'})"
                              for b, n in counts.items())
            text = f"**mixed: {mixed}**, averaged together in the tables"
        label = registry.METHODS[method].label if method in registry.METHODS else method
        parts.append(f"{label} {text}")
    return f"Training backends: {'; '.join(parts)}."


@contextmanager
def _env(values: dict[str, str]):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def report_env(results: Path, figures: Path, tables: Path, logs: Path, reported: Path) -> dict:
    """The environment variables the report script reads (absolute paths)."""
    return {
        "DEEPSTOCK_RESULTS": str(results.resolve()),
        "DEEPSTOCK_FIGURES": str(figures.resolve()),
        "DEEPSTOCK_TABLES": str(tables.resolve()),
        "DEEPSTOCK_LOGS": str(logs.resolve()),
        "DEEPSTOCK_REPORTED": str(reported.resolve()),
    }


def execute_report(source: str | Path, out: str | Path, *, results: str | Path = "results",
                   figures: str | Path = "figures", tables: str | Path | None = None,
                   logs: str | Path = "logs", reported: str | Path = "paper/reported.yaml",
                   cwd: str | Path | None = None, timeout: int = 600) -> list[Path]:
    """Run ``source`` top to bottom and write ``replication.{ipynb,html,md}`` into ``out``."""
    import jupytext
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    from nbconvert import HTMLExporter, MarkdownExporter

    source, out = Path(source), Path(out)
    if not source.is_file():
        raise DataError(f"report source not found: {source}")
    cwd = Path(cwd) if cwd is not None else Path.cwd()
    results = Path(results)
    tables = Path(tables) if tables is not None else results / "tables"
    nb = jupytext.read(source, fmt="py:percent")
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.metadata.pop("jupytext", None)
    env = report_env(results, Path(figures), tables, Path(logs), Path(reported))
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(cwd.resolve())}})
    with _env({**env, "MPLBACKEND": "Agg"}):
        try:
            client.execute()
        except CellExecutionError as exc:
            write_text(out / "replication.failed.ipynb", nbformat.writes(nb))
            text = strip_ansi(str(exc)).strip()
            first = text.splitlines()[-1].strip() if text else "cell failed"
            raise DeepstockError(
                f"report notebook failed ({first}); partial notebook: "
                f"{out / 'replication.failed.ipynb'}"
            ) from None
    paths = [write_text(out / "replication.ipynb", nbformat.writes(nb))]
    html, _ = HTMLExporter(template_name="lab", exclude_input=True).from_notebook_node(nb)
    paths.append(write_text(out / "replication.html", html))
    md, res = MarkdownExporter(exclude_input=True).from_notebook_node(
        nb, resources={"output_files_dir": "replication_files"})
    for name, data in (res.get("outputs") or {}).items():
        paths.append(_write_output(out / name, data))
    paths.append(write_text(out / "replication.md", md))
    stale = out / "replication.failed.ipynb"
    stale.unlink(missing_ok=True)
    return paths


def _write_output(path: Path, data: bytes | str) -> Path:
    write_bytes(path, data if isinstance(data, bytes) else data.encode())
    return path
