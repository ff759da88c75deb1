"""``hangar.chain``: compose packages, prompts, Python functions and parsers into one package."""

from hangar._logging import make_log_model
from hangar.models.flavors.chain import Model, Parser, Prompt, Python, load_model, save_model

__all__ = ["Model", "Parser", "Prompt", "Python", "load_model", "log_model", "save_model"]


log_model = make_log_model(save_model)
