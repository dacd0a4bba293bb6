"""The results folder of a run: checkpoint format and save/load, retention, claim and lock, preemption."""
