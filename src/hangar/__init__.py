"""Hangar: package, track, register, govern, deploy and monitor GenAI and ML models.

Names load on first use so that ``import hangar`` stays fast.
"""

from hangar.__about__ import __version__ as __version__

# public name -> "module:attribute" (or "module" for a submodule)
_EXPORTS = {
    "Client": "hangar.catalog.client:Client",
    "HangarError": "hangar.errors:HangarError",
    "active_run": "hangar.tracking.fluent:active_run",
    "chain": "hangar.chain",
    "end_run": "hangar.tracking.fluent:end_run",
    "get_tracking_uri": "hangar.tracking.fluent:get_tracking_uri",
    "infer_signature": "hangar.models.infer:infer_signature",
    "log_artifact": "hangar.tracking.fluent:log_artifact",
    "log_artifacts": "hangar.tracking.fluent:log_artifacts",
    "log_dict": "hangar.tracking.fluent:log_dict",
    "log_input": "hangar.tracking.fluent:log_input",
    "log_metric": "hangar.tracking.fluent:log_metric",
    "log_metrics": "hangar.tracking.fluent:log_metrics",
    "log_param": "hangar.tracking.fluent:log_param",
    "log_params": "hangar.tracking.fluent:log_params",
    "log_text": "hangar.tracking.fluent:log_text",
    "openai": "hangar.openai",
    "prompt": "hangar.prompt",
    "pyfunc": "hangar.pyfunc",
    "register_model": "hangar.catalog.fluent:register_model",
    "search_runs": "hangar.tracking.fluent:search_runs",
    "sentence_transformers": "hangar.sentence_transformers",
    "set_experiment": "hangar.tracking.fluent:set_experiment",
    "set_tag": "hangar.tracking.fluent:set_tag",
    "set_tags": "hangar.tracking.fluent:set_tags",
    "set_tracking_uri": "hangar.tracking.fluent:set_tracking_uri",
    "sklearn": "hangar.sklearn",
    "start_run": "hangar.tracking.fluent:start_run",
    "transformers": "hangar.transformers",
}
_SUBMODULES = {"models", "errors", "uri", "config", "tracking", "catalog", "artifacts", "store"}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name):
    import importlib

    target = _EXPORTS.get(name)
    if target is None:
        if name in _SUBMODULES:
            return importlib.import_module(f"hangar.{name}")
        raise AttributeError(f"module 'hangar' has no attribute {name!r}")
    module, _, attr = target.partition(":")
    value = importlib.import_module(module)
    return getattr(value, attr) if attr else value


def __dir__():
    return sorted(set(__all__) | _SUBMODULES)
