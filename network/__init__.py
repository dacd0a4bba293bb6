"""SRTG and MTNet model zoo: import the model modules so they register, re-export the factory."""
from network.registry import create_model, get_symbol, list_models, register_model

__all__ = ["create_model", "get_symbol", "list_models", "register_model"]
