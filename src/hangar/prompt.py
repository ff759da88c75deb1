"""``hangar.prompt``: prompt templates as model packages."""

from hangar._logging import make_log_model
from hangar.models.flavors.prompt import load_model, save_model

__all__ = ["load_model", "log_model", "save_model"]


log_model = make_log_model(save_model)
