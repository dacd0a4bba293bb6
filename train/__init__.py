"""Training engine behind the ``train_<dataset>.py`` scripts: ``train.run.run(spec, argv)``.

From the top: ``run`` (entry point: processes, set-up) → ``fit`` (the epochs) → ``loop`` (``TrainStep``, one
epoch, evaluation) → ``lr_scheduler``, ``optim``, ``metric``, ``progress``/``callback`` (what is logged),
``health`` (warnings), ``gate_monitor``/``gate_report`` (the SRTG gate), ``checkpoint``/``retention``/``folder``/
``lock``/``preempt`` (where a run starts, what it keeps, signals), ``distributed`` (devices, ranks), ``logs``.
``config`` (the typed run configuration) and ``cli`` (its parser) sit beside them; ``inference``/``evaluation``
serve evaluate.py, predict.py and tools/. Nothing is imported here, so ``import train.config`` stays light.
"""
