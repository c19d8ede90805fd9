# deepstock: replication workflow of "DeepStock: RL with policy regularizations for inventory
# management". Every rule is a thin call of the `deepstock` CLI; the logic lives in src/deepstock.
#
#   snakemake                                   # quick scale, every table, figure and the report
#   snakemake --config scale=paper              # the paper's full protocol (see README for cost)
#   snakemake --config settings=[s2]            # rerun Setting 2 only
#   snakemake results/s1/ppo/base/rep0/winner.json   # one cell by path

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")
# the axes' values come from the registries (methods and regularizations: deepstock.registry;
# settings: deepstock.problem.families)
from deepstock.problem import families
from deepstock import registry, workflow_axes
from deepstock.errors import ConfigError

try:
    workflow_axes.check_workflow_axes(config)
except ConfigError as err:
    raise WorkflowError(str(err)) from None  # the message alone, as a schema error


report: "workflow/report/workflow.rst"


# Canonical spellings only (no leading zeros): one path per cell, so no table counts a cell twice.


wildcard_constraints:
    setting="|".join(families.setting_ids()),
    method="|".join(registry.METHODS),
    reg="|".join(registry.REGULARIZATIONS),
    rep=r"0|[1-9]\d*",


include: "workflow/rules/common.smk"
include: "workflow/rules/datasets.smk"
include: "workflow/rules/benchmarks.smk"
include: "workflow/rules/tuning.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/lost_sales.smk"


rule all:
    input:
        "results/summary.csv",
        TABLE_FILES,
        FIGURE_FILES,
        REPORT_FILES,
    default_target: True
