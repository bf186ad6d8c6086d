"""Report from the training loops people already use, through orch.

* :mod:`orchestrator.integrations.lightning` — :class:`OrchCallback` for PyTorch Lightning:
  reports each validation epoch (rank 0), checkpoints through orch, resumes from it.
* :mod:`orchestrator.integrations.huggingface` — :class:`OrchTrainerCallback` for Hugging
  Face's ``Trainer``: reports each evaluation, checkpoints the saved model folder.

Each module imports its framework only when used; neither framework is required by orch.
"""
