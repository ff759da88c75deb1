"""``hangar.prompt``: prompt templates as model packages."""

from hangar.models.flavors.prompt import load_model, save_model

__all__ = ["load_model", "save_model"]
