"""What a run reports while it trains: metrics, the speed line, progress, logs, TensorBoard, health warnings and
the temporal-gate monitor."""
