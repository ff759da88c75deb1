"""The ``prompt`` flavor: a template with named variables, plus the model it targets.

The target is another package (referenced by a pinned URI, or embedded with ``embed=True``)
or an OpenAI-compatible endpoint (stored as an embedded ``openai`` package). Without a target
the prompt renders: text or chat messages ready for any model.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hangar.errors import InvalidArgumentError, SchemaMismatchError
from hangar.models.adapt import params_for, to_model_input
from hangar.models.common import describe_package
from hangar.models.environment import merge_requirements, read_requirements
from hangar.models.infer import infer_params_schema
from hangar.models.inputs import LLM_TASKS
from hangar.models.llm_payloads import as_batch, messages_of, response_text
from hangar.models.package import PackageWriter
from hangar.models.references import load_reference, pin_reference
from hangar.models.signature import ColSpec, ModelSignature, Schema
from hangar.models.templates import render, template_variables, validate_template

FLAVOR_NAME = "prompt"
TARGET_DIR = "target"

CHAT_INPUT = Schema([ColSpec(type={"type": "array", "items": {"type": "object", "properties": {
    "role": {"type": "string", "required": True}, "content": {"type": "string", "required": True}}}},
    name="messages")])


def _var_type(name: str, defaults: dict) -> dict:
    from hangar.models.infer import infer_type

    return (infer_type(defaults[name]) if name in defaults else None) or {"type": "string"}


def default_signature(task: str | None, variables: list[str], defaults: dict,
                      generation_params: dict | None) -> ModelSignature:
    params = infer_params_schema(generation_params) if generation_params else None
    if task == "llm/v1/chat":
        inputs = CHAT_INPUT
    elif task == "llm/v1/completions":
        inputs = Schema([ColSpec(type=_var_type(v, defaults), name=v, required=v not in defaults)
                         for v in variables] or [ColSpec(type={"type": "string"}, name="prompt")])
    else:
        inputs = Schema([ColSpec(type=_var_type(v, defaults), name=v, required=v not in defaults)
                         for v in variables])
    return ModelSignature(inputs=inputs if inputs.columns else None, params=params)


def save_target(writer: PackageWriter, target: Any, embed: bool) -> tuple[dict | None, list[str]]:
    """Store a target (package reference, embedded copy, or endpoint) and return its requirements."""
    if target is None:
        return None, []
    if isinstance(target, dict):
        from hangar.models.flavors import openai as openai_flavor

        settings = dict(target)
        model = settings.pop("model", None)
        if not model:
            raise InvalidArgumentError("An endpoint target needs 'model' (and usually 'base_url', 'api_key_env')")
        openai_flavor.save_model(writer.dir / TARGET_DIR, model, **settings)
        return {"embedded": TARGET_DIR}, read_requirements(writer.dir / TARGET_DIR)
    if not isinstance(target, (str, os.PathLike)):
        raise InvalidArgumentError(
            f"target must be a package path or URI, or an endpoint dict; got {type(target).__name__}"
        )
    ref = pin_reference(target)
    from hangar.models.resolver import resolve_model_uri

    source = resolve_model_uri(target)
    if embed:
        writer.copy_in(source, TARGET_DIR)
        ref = {"embedded": TARGET_DIR, "manifest_sha256": ref["manifest_sha256"], "model_uuid": ref["model_uuid"]}
    return ref, read_requirements(source)


def save_model(path, template, *, defaults: dict | None = None, target=None, embed: bool = False,
               generation_params: dict | None = None, task: str | None = None, signature=None,
               input_example=None, pip_requirements=None, extra_pip_requirements=None, metadata=None):
    """Save a prompt template (``{{ name }}`` placeholders) and, optionally, the model it targets.

    ``task="llm/v1/chat"`` makes a chat model: the rendered template (a system message for a
    string template) goes before the caller's messages, and variables come from extra fields
    of the request or ``defaults``.
    """
    template = validate_template(template)
    defaults = dict(defaults or {})
    variables = template_variables(template)
    unknown = sorted(set(defaults) - set(variables))
    if unknown:
        raise InvalidArgumentError(f"defaults name variables the template does not use: {unknown}")
    if task is not None and task not in LLM_TASKS[:2]:
        raise InvalidArgumentError(f"A prompt's task is llm/v1/chat, llm/v1/completions or None, not {task!r}")
    with PackageWriter(path) as w:
        ref, target_reqs = save_target(w, target, embed)
        if signature is None and input_example is None:
            signature = default_signature(task, variables, defaults, generation_params)
        elif signature is None and generation_params:
            from hangar.models.infer import infer_signature

            sig = infer_signature(input_example, payload=task in LLM_TASKS or None)
            signature = ModelSignature(inputs=sig.inputs, params=infer_params_schema(generation_params))
        payload = describe_package(
            w, task=task, signature=signature, input_example=input_example,
            requirements=merge_requirements(target_reqs), pip_requirements=pip_requirements,
            extra_pip_requirements=extra_pip_requirements, metadata=metadata,
        )
        w.add_flavor(FLAVOR_NAME, template=template, variables=variables, defaults=defaults,
                     generation_params=generation_params or {}, target=ref)
        streamable = bool(ref) and _target_streams(w.dir, ref)
        w.add_pyfunc(__name__, streamable=streamable, input_mode="payload" if payload else "dataframe")
    return w.path


def _target_streams(package_dir: Path, ref: dict) -> bool:
    from hangar.models.manifest import Manifest
    from hangar.models.references import resolve_reference

    conf = Manifest.read(resolve_reference(ref, package_dir)).pyfunc_conf or {}
    return bool(conf.get("streamable"))


class PromptModel:
    """Renders the template per input and, with a target, asks the target model."""

    def __init__(self, conf: dict, task: str | None, target=None):
        self.template = conf["template"]
        self.defaults = conf.get("defaults") or {}
        self.generation_params = conf.get("generation_params") or {}
        self.task = task
        self.target = target
        if target is not None and target.streamable:
            self.predict_stream = self._predict_stream

    def unwrap(self):
        return self

    def _values(self, row: dict) -> dict:
        return {**self.defaults, **{k: v for k, v in row.items() if v is not None}}

    def render_chat(self, payload: dict) -> list[dict]:
        incoming = messages_of(payload)
        values = self._values({k: v for k, v in payload.items() if k != "messages"})
        rendered = render(self.template, values)
        head = [{"role": "system", "content": rendered}] if isinstance(rendered, str) else rendered
        return head + list(incoming)

    def render_rows(self, model_input) -> list:
        if isinstance(model_input, dict):
            return [render(self.template, self._values(model_input))]
        rows = model_input.to_dict(orient="records")
        return [render(self.template, self._values({str(k): v for k, v in r.items()})) for r in rows]

    def _target_params(self, params: dict | None) -> dict | None:
        merged = {**self.generation_params, **(params or {})}
        return params_for(self.target, merged)

    def predict(self, model_input, params=None):
        if self.task == "llm/v1/chat":
            payloads, single = as_batch(model_input)
            requests = [{"messages": self.render_chat(p)} for p in payloads]
            if self.target is None:
                return requests[0] if single else requests
            out = [self.target.predict(to_model_input(r["messages"], self.target), self._target_params(params))
                   for r in requests]
            return out[0] if single else out
        if self.task == "llm/v1/completions":
            payloads, single = as_batch(model_input)
            prompts = [self.render_rows(p)[0] for p in payloads]
            if self.target is None:
                out = [{"prompt": p} for p in prompts]
            else:
                out = [self.target.predict(to_model_input(p, self.target), self._target_params(params))
                       for p in prompts]
            return out[0] if single else out
        rendered = self.render_rows(model_input)
        if self.target is None:
            return rendered
        result = self.target.predict(to_model_input(rendered, self.target), self._target_params(params))
        if isinstance(result, list):
            return [response_text(r) if isinstance(r, dict) else r for r in result]
        return result

    def _predict_stream(self, model_input, params=None):
        if isinstance(model_input, list):
            raise SchemaMismatchError("Streaming takes one request at a time, not a list")
        if self.task == "llm/v1/chat":
            request = to_model_input(self.render_chat(model_input), self.target)
        else:
            request = to_model_input(self.render_rows(model_input)[0], self.target)
        yield from self.target.predict_stream(request, self._target_params(params))


def _load_pyfunc(path: Path, manifest) -> PromptModel:
    conf = manifest.flavors[FLAVOR_NAME]
    target = load_reference(conf["target"], path) if conf.get("target") else None
    return PromptModel(conf, manifest.task, target)


def load_model(path):
    from hangar.models.package import open_package

    return _load_pyfunc(Path(path), open_package(path))
