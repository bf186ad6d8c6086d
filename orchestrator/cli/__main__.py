"""`python -m orchestrator.cli` runs the `orch` command."""

from orchestrator.cli import main

main()
