"""The package format: manifest, signature, environment, and the pyfunc view."""

from hangar.models.python_model import set_model

__all__ = ["ModelSignature", "infer_signature", "set_model"]


def __getattr__(name):
    if name == "ModelSignature":
        from hangar.models.signature import ModelSignature

        return ModelSignature
    if name == "infer_signature":
        from hangar.models.infer import infer_signature

        return infer_signature
    raise AttributeError(f"module 'hangar.models' has no attribute {name!r}")
