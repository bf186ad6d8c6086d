"""The method as commands: LR range test, ablation, baseline statistics and the
verdict, the review report, and working with recorded runs.

========================  ===================================================
``orch lr-find SPEC``     :func:`lr_find`, :func:`resolve_placeholders`
``orch ablate SPEC``      :func:`run_ablation`, :func:`ablation_plan`
(end of every sweep)      :func:`verdict_for`, :func:`assess`, :func:`judge`
(after a sweep)           :func:`confirm`: the verdict on fresh seeds
``orch report SWEEP``     :func:`write_report`
``orch next SWEEP``       :func:`next_spec`, :func:`read_review`, :func:`plan_next`
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
from orchestrator.method._budget import Budget, RunView, matched_budget
from orchestrator.method._next import (
    NextSpec,
    RankedTrial,
    SweepReview,
    next_name,
    next_spec,
    plan_next,
    read_review,
)
from orchestrator.method._confirm import confirm, confirmation_seeds
from orchestrator.method._report import (
    ABLATION_SECTIONS,
    REPORT_SECTIONS,
    RangeSuggestion,
    Report,
    build_report,
    suggest_ranges,
    write_report,
)
from orchestrator.sweepspec import Rule, parse_rule
from orchestrator.method._runs import (
    Reproduction,
    RunComparison,
    add_note,
    compare_runs,
    find_run,
    reproduce,
)
from orchestrator.method._stats import (
    Comparison,
    compare_independent,
    compare_one_sample,
    compare_paired,
)
from orchestrator.method._verdict import (
    VERDICTS,
    Verdict,
    against_baseline,
    assess,
    judge,
    named_factors,
    verdict_for,
)

__all__ = [
    "ABLATION_SECTIONS",
    "REPORT_SECTIONS",
    "VERDICTS",
    "Ablation",
    "AblationPoint",
    "AblationRow",
    "Budget",
    "Comparison",
    "LRFind",
    "NextSpec",
    "RankedTrial",
    "RangeSuggestion",
    "Report",
    "Reproduction",
    "Rule",
    "RunComparison",
    "RunView",
    "SweepReview",
    "Verdict",
    "ablation_plan",
    "ablation_values",
    "add_note",
    "against_baseline",
    "assess",
    "build_report",
    "compare_independent",
    "compare_one_sample",
    "compare_paired",
    "compare_runs",
    "confirm",
    "confirmation_seeds",
    "find_lr_setup",
    "find_run",
    "judge",
    "lr_find",
    "matched_budget",
    "named_factors",
    "next_name",
    "next_spec",
    "parse_rule",
    "plan_next",
    "plot_lr_find",
    "read_review",
    "reproduce",
    "resolve_placeholders",
    "start_config",
    "suggest_ranges",
    "verdict_for",
    "write_report",
]
