"""Reports: summary.csv, Tables 6–9, Figures 1–4 and the replication notebook (spec §3, §9).

- :mod:`~deepstock.reports.collect`   results tree -> summary.csv, benchmarks.csv, compute per rule
- :mod:`~deepstock.reports.reported`  the paper's numbers (paper/reported.yaml)
- :mod:`~deepstock.reports.tables`    Tables 6–9 (CSV, Markdown, LaTeX) and comparison.csv
- :mod:`~deepstock.reports.intervals` 95 % stratified-bootstrap intervals over stage-2 seeds
- :mod:`~deepstock.reports.figures`   Figures 1–4 (PNG, PDF) and surpass.csv
- :mod:`~deepstock.reports.takeaways` the paper's claims checked on the reproduced numbers
- :mod:`~deepstock.reports.notebook`  executes paper/replication.py to HTML/Markdown
"""

from deepstock.reports.collect import build_summary, collect_benchmarks, collect_compute, loss_gap
from deepstock.reports.reported import load_reported, paper_cells, paper_lstar, paper_surpass

__all__ = [
    "build_summary",
    "collect_benchmarks",
    "collect_compute",
    "load_reported",
    "loss_gap",
    "paper_cells",
    "paper_lstar",
    "paper_surpass",
]
