"""Public video weights: the networks they fit (registered on import) and exact, strict converters."""
from network.pretrained import models  # noqa: F401  (registers tv_*, ig65m_*, kr_*, vmz_* and their srtg_*)
