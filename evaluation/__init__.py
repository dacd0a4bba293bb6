"""Evaluation and inference: a model rebuilt from its checkpoint, test views, multi-view scoring (``evaluate.py``,
``predict.py`` and ``tools/`` use it)."""
