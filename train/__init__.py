"""Training: ``engine`` (configuration, CLI, run, trainer, step), ``results`` (checkpoints, retention, lock,
preemption), ``monitor`` (metrics, progress, logs, gate monitor) and ``plots``. ``train.engine.run.run(spec, argv)``
is the entry point behind every ``train_<dataset>.py``. Nothing is imported here, so ``import train`` stays light.
"""
