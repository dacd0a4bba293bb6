"""SRTG and MTNet model zoo: import the model modules so they register, re-export the factory."""
from network import (
    mtnet,  # noqa: F401  (registers mtnet_*)
    pretrained,  # noqa: F401  (registers the networks of public weights: tv_*, ig65m_*, kr_*, vmz_*)
    srtg_resnet,  # noqa: F401  (registers r3d_*, r2plus1d_*, *_csn_*, srtg_*)
)
from network.pretrained import from_pretrained
from network.registry import build_model, create_model, get_symbol, list_models, register_model

__all__ = ["build_model", "create_model", "from_pretrained", "get_symbol", "list_models", "register_model"]
