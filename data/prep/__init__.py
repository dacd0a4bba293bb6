"""Offline tools that build a data set: prepare (one command from a download), convert, check, index, the
synthetic set and the official annotation parsers. Each runs as ``python -m data.<tool>``."""
