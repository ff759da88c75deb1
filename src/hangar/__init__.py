"""Hangar: package, track, register, govern, deploy and monitor GenAI and ML models.

Submodules load on first use so that ``import hangar`` stays fast.
"""

from hangar.__about__ import __version__

__all__ = [
    "HangarError",
    "__version__",
    "chain",
    "infer_signature",
    "openai",
    "prompt",
    "pyfunc",
    "sentence_transformers",
    "sklearn",
    "transformers",
]

_SUBMODULES = {"chain", "openai", "prompt", "pyfunc", "sentence_transformers", "sklearn", "transformers",
               "models", "errors", "uri", "config"}


def __getattr__(name):
    import importlib

    if name in _SUBMODULES:
        return importlib.import_module(f"hangar.{name}")
    if name == "HangarError":
        from hangar.errors import HangarError

        return HangarError
    if name == "infer_signature":
        from hangar.models.infer import infer_signature

        return infer_signature
    raise AttributeError(f"module 'hangar' has no attribute {name!r}")


def __dir__():
    return sorted(set(__all__) | _SUBMODULES)
