"""The training engine: typed configuration and its CLI, ``run`` (processes, set-up), the ``Trainer`` (epochs),
the step (precision, scaler, optimiser, schedule) and the distributed helpers."""
