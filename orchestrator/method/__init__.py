"""The method as commands: LR range test, ablation, baseline statistics and the
verdict, the review report, and working with recorded runs.

========================  ===================================================
``orch lr-find SPEC``     :func:`lr_find`, :func:`resolve_placeholders`
``orch ablate SPEC``      :func:`run_ablation`, :func:`ablation_plan`
(end of every sweep)      :func:`verdict_for`, :func:`judge`
``orch report SWEEP``     :func:`write_report`
``orch compare A B``      :func:`compare_runs`
``orch reproduce RUN``    :func:`reproduce`
``orch note SWEEP TEXT``  :func:`add_note`
========================  ===================================================

Importing this package imports neither Ray, MLflow nor torch.
"""

from orchestrator.method._ablate import (
    Ablation,
    AblationPoint,
    AblationRow,
    ablation_plan,
    ablation_values,
    run_ablation,
)
from orchestrator.method._lr_find import (
    LRFind,
    find_lr_setup,
    lr_find,
    plot_lr_find,
    resolve_placeholders,
    start_config,
)
from orchestrator.method._report import REPORT_SECTIONS, Report, build_report, write_report
from orchestrator.sweepspec import Rule, parse_rule
from orchestrator.method._runs import (
    Reproduction,
    RunComparison,
    add_note,
    compare_runs,
    find_run,
    reproduce,
)
from orchestrator.method._stats import Comparison, compare_one_sample, compare_paired
from orchestrator.method._verdict import VERDICTS, Verdict, judge, verdict_for

__all__ = [
    "REPORT_SECTIONS",
    "VERDICTS",
    "Ablation",
    "AblationPoint",
    "AblationRow",
    "Comparison",
    "LRFind",
    "Report",
    "Reproduction",
    "Rule",
    "RunComparison",
    "Verdict",
    "ablation_plan",
    "ablation_values",
    "add_note",
    "build_report",
    "compare_one_sample",
    "compare_paired",
    "compare_runs",
    "find_lr_setup",
    "find_run",
    "judge",
    "lr_find",
    "parse_rule",
    "plot_lr_find",
    "reproduce",
    "resolve_placeholders",
    "start_config",
    "verdict_for",
    "write_report",
]
