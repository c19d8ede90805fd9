"""Execute the jupytext replication report and export it as .ipynb, HTML and Markdown.

The percent-format script (``paper/replication.py``) becomes a notebook with kernel ``python3``,
runs with nbclient in ``cwd`` (the repository root) and reads its inputs from environment
variables (``DEEPSTOCK_RESULTS``, ``DEEPSTOCK_FIGURES``, ``DEEPSTOCK_TABLES``, ``DEEPSTOCK_LOGS``,
``DEEPSTOCK_REPORTED``), all absolute paths. Every output file is written atomically.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from deepstock.errors import DataError, DeepstockError
from deepstock.io import write_bytes, write_text


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
            first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "cell failed"
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
