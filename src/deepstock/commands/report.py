"""``deepstock report``: summary, Tables 6–9, Figures 1–4 and the replication report (spec §9).

Examples::

    deepstock report summary --results results --out results/summary.csv
    deepstock report tables --summary results/summary.csv --reported paper/reported.yaml \\
        --out results/tables
    deepstock report figures --results results --summary results/summary.csv \\
        --reported paper/reported.yaml --out figures
    deepstock report notebook --source paper/replication.py --out results/report
    deepstock report export --results results --out paper/reference-runs/my-run
"""

from __future__ import annotations

import argparse
from pathlib import Path

AR1_REFERENCES = ("ds_on_test", "paper", "dp")  # = reports.collect.AR1_REFERENCES (pandas: lazy)

DEFAULT_REPORTED = "paper/reported.yaml"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "report",
        help="summary.csv, Tables 6-9, Figures 1-4 and the replication report",
        description="Collect a results tree into tables, figures and the replication report.",
    )
    sub = p.add_subparsers(dest="report_command", metavar="STEP")

    s = sub.add_parser("summary", help="results tree -> summary.csv and benchmarks.csv",
                       description="One row per (setting, method, reg, repetition) with gaps "
                       "100 (L - L*)/L* against the benchmark's test loss (spec §3).")
    s.add_argument("--results", default="results", help="results root (default: results)")
    s.add_argument("--out", default=None, help="summary CSV (default: RESULTS/summary.csv)")
    s.add_argument("--benchmarks-out", default=None,
                   help="benchmarks CSV (default: beside --out, benchmarks.csv)")
    s.add_argument("--reported", default=DEFAULT_REPORTED,
                   help="paper values (adds the paper's L* rows; needed for --ar1-gap-reference "
                   "paper)")
    s.add_argument("--ar1-gap-reference", default="ds_on_test", choices=AR1_REFERENCES,
                   help="AR(1) L*: DS-Base tuned on test (default), the paper's 2.2838, or the "
                   "exact DP; ds_on_test falls back to dp with a note when missing")
    s.set_defaults(func=run_summary)

    t = sub.add_parser("tables", help="Tables 6-9 (CSV, Markdown, LaTeX) and comparison.csv")
    t.add_argument("--summary", default="results/summary.csv")
    t.add_argument("--benchmarks", default=None,
                   help="benchmarks CSV for Table 9's benchmark row (default: beside --summary)")
    t.add_argument("--reported", default=DEFAULT_REPORTED)
    t.add_argument("--out", default="results/tables")
    t.set_defaults(func=run_tables)

    f = sub.add_parser("figures", help="Figures 1-4 (PNG + PDF) and tables/surpass.csv")
    f.add_argument("--results", default="results")
    f.add_argument("--summary", default=None, help="default: RESULTS/summary.csv")
    f.add_argument("--reported", default=DEFAULT_REPORTED)
    f.add_argument("--out", default="figures")
    f.add_argument("--tables-out", default=None, help="folder of surpass.csv (RESULTS/tables)")
    f.set_defaults(func=run_figures)

    ls = sub.add_parser("lostsales", help="the lost-sales table, figure and takeaways",
                        description="Gap (%%) to the exact optimum of every tuned cell on a "
                        "lost-sales setting, beside the best base stock and Zipkin's (2008) "
                        "printed base-stock gaps (docs/lost-sales.md).")
    ls.add_argument("--results", default="results")
    ls.add_argument("--summary", default=None, help="default: RESULTS/summary.csv")
    ls.add_argument("--runs", default=None, metavar="DIR",
                    help="instead of a summary: single runs DIR/{setting}/{method}-{reg}/s{seed} "
                    "of deepstock train (the median-validation seed is reported)")
    ls.add_argument("--literature", default="paper/literature/zipkin2008.yaml")
    ls.add_argument("--tables-out", default=None, help="default: RESULTS/tables")
    ls.add_argument("--figures-out", default="figures")
    ls.set_defaults(func=run_lost_sales)

    n = sub.add_parser("notebook", help="execute paper/replication.py -> HTML and Markdown")
    n.add_argument("--source", default="paper/replication.py")
    n.add_argument("--out", default="results/report")
    n.add_argument("--results", default="results")
    n.add_argument("--figures", default="figures")
    n.add_argument("--tables", default=None, help="default: RESULTS/tables")
    n.add_argument("--logs", default="logs", help="Snakemake logs (timing/*/*.tsv)")
    n.add_argument("--reported", default=DEFAULT_REPORTED)
    n.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    n.set_defaults(func=run_notebook)

    e = sub.add_parser("export", help="a results tree's small files -> a reference-run folder",
                       description="Copy winner.json, stage tables and the reported run's curve "
                       "of every tuned cell, and the summary, without weights (the report shows "
                       "paper/reference-runs/*/ beside the paper and your run).")
    e.add_argument("--results", default="results")
    e.add_argument("--out", required=True, help="e.g. paper/reference-runs/NAME")
    e.add_argument("--reported", default=DEFAULT_REPORTED)
    e.add_argument("--ar1-gap-reference", default="ds_on_test", choices=AR1_REFERENCES)
    e.set_defaults(func=run_export)
    p.set_defaults(func=lambda args: _help(p))


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 1


def _reported(path: str, required: bool):
    from deepstock.reports.reported import load_reported

    if not required and not Path(path).is_file():
        return None
    return load_reported(path)


def run_summary(args: argparse.Namespace) -> int:
    from deepstock.io import write_csv
    from deepstock.reports.collect import build_summary

    out = Path(args.out or Path(args.results) / "summary.csv")
    bench_out = Path(args.benchmarks_out or out.with_name("benchmarks.csv"))
    reported = _reported(args.reported, required=args.ar1_gap_reference == "paper")
    summary, bench = build_summary(args.results, reported, args.ar1_gap_reference)
    write_csv(out, summary)
    write_csv(bench_out, bench)
    notes = sorted({n for n in summary["note"].dropna() if n})
    print(f"summary: {len(summary)} rows ({summary['setting'].nunique()} settings) -> {out}; "
          f"{len(bench)} benchmark rows -> {bench_out}")
    for note in notes:
        print(f"  note: {note}")
    return 0


def run_tables(args: argparse.Namespace) -> int:
    import pandas as pd

    from deepstock.reports.tables import read_summary, write_tables

    summary = read_summary(args.summary)
    bpath = Path(args.benchmarks or Path(args.summary).with_name("benchmarks.csv"))
    bench = pd.read_csv(bpath) if bpath.is_file() else None
    paths = write_tables(summary, _reported(args.reported, required=True), args.out, bench)
    print(f"tables: {len(paths)} files -> {args.out}")
    return 0


def run_figures(args: argparse.Namespace) -> int:
    from deepstock.reports.figures import write_figures
    from deepstock.reports.tables import read_summary

    summary = read_summary(args.summary or Path(args.results) / "summary.csv")
    tables_out = args.tables_out or Path(args.results) / "tables"
    paths = write_figures(args.results, summary, _reported(args.reported, required=False),
                          args.out, tables_out)
    print(f"figures: {len(paths)} files -> {args.out} (surpass.csv -> {tables_out})")
    return 0


def run_lost_sales(args: argparse.Namespace) -> int:
    from deepstock.io import write_csv, write_text
    from deepstock.reports import lost_sales as ls
    from deepstock.reports.tables import read_summary

    if args.runs:
        summary = ls.rows_from_runs(args.runs)
    else:
        summary = read_summary(args.summary or Path(args.results) / "summary.csv")
    settings = sorted({s for s in summary["setting"] if ls.is_lost_sales(s)})
    table = ls.lost_sales_table(summary, ls.read_benchmarks(args.results, settings),
                                ls.zipkin_gaps(args.literature))
    out = Path(args.tables_out or Path(args.results) / "tables")
    paths = [write_csv(out / "lost_sales.csv", table),
             write_text(out / "lost_sales.md", ls.to_markdown(table)),
             write_text(out / "lost_sales_takeaways.md", ls.takeaways(summary)),
             *ls.figure(table, Path(args.figures_out) / "lost_sales")]
    print(f"lost sales: {len(table)} cells on {len(settings)} settings; {len(paths)} files")
    return 0


def run_notebook(args: argparse.Namespace) -> int:
    from deepstock.reports.notebook import execute_report

    paths = execute_report(
        args.source, args.out, results=args.results, figures=args.figures, tables=args.tables,
        logs=args.logs, reported=args.reported, timeout=args.timeout,
    )
    print(f"report: {len(paths)} files -> {args.out}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from deepstock.reports.reference import export_reference

    reported = _reported(args.reported, required=args.ar1_gap_reference == "paper")
    paths = export_reference(args.results, args.out, reported, args.ar1_gap_reference)
    print(f"reference run: {len(paths)} files -> {args.out}")
    return 0
