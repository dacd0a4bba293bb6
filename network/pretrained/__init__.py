"""Public video weights: the networks they fit (registered on import) and exact, strict converters.

One module per source (``torchvision``, ``ig65m``, ``resnets3d`` for 3D-ResNets-PyTorch, ``vmz``), each naming
the publisher's architectures it imports (``ARCHS``), recognising its files and mapping their names to ours;
``common`` reads files and loads strictly; ``api`` holds :func:`from_pretrained` and the training hook.
"""
from network.pretrained import models  # noqa: F401  (registers tv_*, ig65m_*, kr_*, vmz_* and their srtg_*)
from network.pretrained.api import SOURCE_NAMES, detect, from_pretrained, import_public, network_for

__all__ = ["SOURCE_NAMES", "detect", "from_pretrained", "import_public", "network_for"]
