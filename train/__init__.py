"""Training engine behind the ``train_<dataset>.py`` scripts: ``train.run.run(spec, argv)``.

Modules: ``cli`` (arguments), ``run`` (entry point, processes, fit), ``loop`` (one epoch / evaluation),
``optim`` (parameter groups, SGD), ``lr_scheduler``, ``metric``, ``callback`` (log lines), ``checkpoint``
(atomic saves, resolve_start, result CSVs), ``distributed`` (rank helpers), ``logs``. Nothing is imported
here, so ``import train.cli`` stays light.
"""
