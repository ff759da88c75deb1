"""The ``chain`` flavor: an ordered composition of steps, each step's output feeding the next.

Steps: another package (pinned reference, or embedded copy), a prompt template, a Python
callable saved as source code (never pickled), and simple output parsers. The chain is one
package whose requirements are the union of its steps'.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hangar.errors import InvalidArgumentError, SchemaMismatchError, StreamingNotSupportedError
from hangar.models.adapt import params_for, to_model_input
from hangar.models.common import describe_package
from hangar.models.environment import merge_requirements, modules_in_source, read_requirements, requirements_for_modules
from hangar.models.flavors.prompt import CHAT_INPUT
from hangar.models.inputs import LLM_TASKS
from hangar.models.llm_payloads import (
    as_batch,
    chat_response,
    chunk_text,
    completion_response,
    messages_of,
    response_text,
)
from hangar.models.package import PackageWriter
from hangar.models.references import load_reference, pin_reference
from hangar.models.signature import ModelSignature
from hangar.models.templates import render, template_variables, validate_template

FLAVOR_NAME = "chain"
PARSERS = ("text", "json", "strip", "regex")


# -- the steps a user composes ---------------------------------------------------------
@dataclass
class Model:
    """Another package, by path or ``models:/name/N``; ``embed=True`` copies it in."""

    uri: str | os.PathLike
    embed: bool = False
    params: dict = field(default_factory=dict)


@dataclass
class Prompt:
    """A template. On chat input it adds a message (``role``, default system) before the
    caller's; on other input it renders the variables (to a string, or to a chat message
    when ``role`` is given)."""

    template: Any
    defaults: dict = field(default_factory=dict)
    role: str | None = None


@dataclass
class Python:
    """A function saved as source: ``Python(fn)`` for a module-level function, or
    ``Python("steps.py", "clean")``. It is called as ``fn(value)`` or ``fn(value, params)``."""

    function: Callable | str | os.PathLike
    name: str | None = None


@dataclass
class Parser:
    """``text`` (the generated text of a response), ``json`` (the first JSON object or array
    in the text), ``strip``, or ``regex`` (the first group, or whole match, of ``pattern``)."""

    kind: str = "text"
    pattern: str | None = None


# -- saving ----------------------------------------------------------------------------
def _save_step(w: PackageWriter, i: int, step: Any) -> tuple[dict, list[str]]:
    if isinstance(step, (str, os.PathLike)):
        step = Model(step)
    if isinstance(step, Model):
        ref = pin_reference(step.uri)
        from hangar.models.resolver import resolve_model_uri

        source = resolve_model_uri(step.uri)
        if step.embed:
            rel = f"steps/{i}"
            w.copy_in(source, rel)
            ref = {"embedded": rel, "manifest_sha256": ref["manifest_sha256"], "model_uuid": ref["model_uuid"]}
        return {"kind": "model", "ref": ref, "params": dict(step.params)}, read_requirements(source)
    if isinstance(step, Prompt):
        template = validate_template(step.template)
        unknown = sorted(set(step.defaults) - set(template_variables(template)))
        if unknown:
            raise InvalidArgumentError(f"Step {i}: defaults name variables the template does not use: {unknown}")
        return {"kind": "prompt", "template": template, "defaults": dict(step.defaults), "role": step.role}, []
    if isinstance(step, Python):
        return _save_python_step(w, i, step)
    if isinstance(step, Parser):
        if step.kind not in PARSERS:
            raise InvalidArgumentError(f"Step {i}: unknown parser {step.kind!r}; use one of {', '.join(PARSERS)}")
        if step.kind == "regex":
            try:
                re.compile(step.pattern or "")
            except re.error as exc:
                raise InvalidArgumentError(f"Step {i}: bad regex {step.pattern!r}: {exc}") from None
            if not step.pattern:
                raise InvalidArgumentError(f"Step {i}: a regex parser needs a pattern")
        return {"kind": "parser", "parser": step.kind, "pattern": step.pattern}, []
    if callable(step):
        return _save_python_step(w, i, Python(step))
    raise InvalidArgumentError(
        f"Step {i} is a {type(step).__name__}; use chain.Model(uri), chain.Prompt(template), "
        "chain.Python(fn) or chain.Parser(kind)"
    )


def _save_python_step(w: PackageWriter, i: int, step: Python) -> tuple[dict, list[str]]:
    if callable(step.function):
        fn = step.function
        name = fn.__name__
        source = inspect.getsourcefile(fn)
        if name == "<lambda>" or "<locals>" in getattr(fn, "__qualname__", "") or not source:
            raise InvalidArgumentError(
                f"Step {i}: a Python step must be a module-level function defined in a .py file (it is "
                "saved as source, not pickled); lambdas and nested functions cannot be saved"
            )
    else:
        source, name = step.function, step.name
        if not name:
            raise InvalidArgumentError(f"Step {i}: Python(path, name) needs the function's name")
    source = Path(source)
    if not source.is_file() or source.suffix != ".py":
        raise InvalidArgumentError(f"Step {i}: {source} is not a Python source file")
    rel = f"code/step_{i}_{source.name}"
    w.copy_in(source, rel)
    reqs = requirements_for_modules(modules_in_source(source) - {"hangar"})
    return {"kind": "python", "file": rel, "function": name}, reqs


def save_model(path, steps: list, *, task: str | None = None, signature=None, input_example=None,
               pip_requirements=None, extra_pip_requirements=None, metadata=None):
    """Save ``steps`` as one chain package. ``task="llm/v1/chat"`` takes chat messages."""
    if not isinstance(steps, (list, tuple)) or not steps:
        raise InvalidArgumentError("A chain needs a non-empty list of steps")
    with PackageWriter(path) as w:
        saved, reqs = [], []
        for i, step in enumerate(steps):
            conf, step_reqs = _save_step(w, i, step)
            saved.append(conf)
            reqs.append(step_reqs)
        if signature is None and input_example is None and task == "llm/v1/chat":
            signature = ModelSignature(inputs=CHAT_INPUT, params=_union_params(w.dir, saved))
        payload = describe_package(
            w, task=task, signature=signature, input_example=input_example,
            requirements=merge_requirements(*reqs), pip_requirements=pip_requirements,
            extra_pip_requirements=extra_pip_requirements, metadata=metadata,
        )
        w.add_flavor(FLAVOR_NAME, steps=saved)
        streamable = _streamable(w.dir, saved)
        w.add_pyfunc(__name__, streamable=streamable, input_mode="payload" if payload else "dataframe")
    return w.path


def _union_params(package_dir: Path, steps: list[dict]):
    """A chat chain accepts the params of its model steps."""
    from hangar.models.manifest import Manifest
    from hangar.models.references import resolve_reference
    from hangar.models.signature import ParamSchema

    seen = {}
    for s in steps:
        if s["kind"] == "model":
            sig = Manifest.read(resolve_reference(s["ref"], package_dir)).signature
            for p in (sig.params.params if sig and sig.params else ()):
                seen.setdefault(p.name, p)
    return ParamSchema(seen.values()) if seen else None


def _last_model_index(steps: list[dict]) -> int | None:
    idx = [i for i, s in enumerate(steps) if s["kind"] == "model"]
    return idx[-1] if idx else None


def _streamable(package_dir: Path, steps: list[dict]) -> bool:
    """Streams when the last model step streams and only ``text`` parsers follow it."""
    from hangar.models.manifest import Manifest
    from hangar.models.references import resolve_reference

    last = _last_model_index(steps)
    if last is None:
        return False
    if any(not (s["kind"] == "parser" and s["parser"] == "text") for s in steps[last + 1:]):
        return False
    conf = Manifest.read(resolve_reference(steps[last]["ref"], package_dir)).pyfunc_conf or {}
    return bool(conf.get("streamable"))


# -- running ---------------------------------------------------------------------------
def _parse(kind: str, pattern: str | None, value: Any) -> Any:
    if isinstance(value, list) and not (value and isinstance(value[0], dict) and "role" in value[0]):
        return [_parse(kind, pattern, v) for v in value]
    text = response_text(value)
    if kind == "text":
        return text
    if kind == "strip":
        return text.strip()
    if kind == "regex":
        m = re.search(pattern, text)
        if m is None:
            raise SchemaMismatchError(f"The regex parser found no match for {pattern!r} in {text[:80]!r}")
        return m.group(1) if m.groups() else m.group(0)
    match = re.search(r"(\{.*\}|\[.*\])", text, re.S)
    if match is None:
        raise SchemaMismatchError(f"The json parser found no JSON object or array in {text[:80]!r}")
    try:
        return json.loads(match.group(1))
    except json.JSONDecodeError as exc:
        raise SchemaMismatchError(f"The json parser could not parse the model's output: {exc}") from None


def _load_function(path: Path, name: str) -> Callable:
    spec = importlib.util.spec_from_file_location(f"_hangar_step_{abs(hash(str(path)))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fn = getattr(module, name, None)
    if not callable(fn):
        raise InvalidArgumentError(f"{path.name} has no function {name!r}")
    return fn


class _Step:
    def __init__(self, conf: dict, package_dir: Path):
        self.conf = conf
        self.kind = conf["kind"]
        if self.kind == "model":
            self.model = load_reference(conf["ref"], package_dir)
        elif self.kind == "python":
            self.fn = _load_function(package_dir / conf["file"], conf["function"])
            self.fn_takes_params = len(inspect.signature(self.fn).parameters) >= 2

    def _prompt(self, value: Any) -> Any:
        c = self.conf
        is_chat = isinstance(value, dict) and "messages" in value
        if is_chat:
            values = {**c["defaults"], **{k: v for k, v in value.items() if k != "messages"}}
            rendered = render(c["template"], values)
            head = [{"role": c.get("role") or "system", "content": rendered}] if isinstance(rendered, str) else rendered
            return {**value, "messages": head + list(messages_of(value))}
        rows = [value] if isinstance(value, dict) else value.to_dict(orient="records") if hasattr(value, "to_dict") else None
        if rows is None:
            rows = [{"input": v} for v in (value if isinstance(value, list) else [value])]
        out = []
        for r in rows:
            text = render(c["template"], {**c["defaults"], **{str(k): v for k, v in r.items()}})
            out.append([{"role": c["role"], "content": text}] if c.get("role") and isinstance(text, str) else text)
        return out[0] if isinstance(value, dict) else out

    def model_request(self, value: Any, params: dict | None) -> tuple[Any, dict | None]:
        merged = {**self.conf.get("params", {}), **(params or {})}
        return to_model_input(value, self.model), params_for(self.model, merged)

    def __call__(self, value: Any, params: dict | None) -> Any:
        if self.kind == "model":
            request, p = self.model_request(value, params)
            return self.model.predict(request, p)
        if self.kind == "prompt":
            return self._prompt(value)
        if self.kind == "parser":
            return _parse(self.conf["parser"], self.conf.get("pattern"), value)
        return self.fn(value, params) if self.fn_takes_params else self.fn(value)


class ChainModel:
    def __init__(self, steps: list[_Step], task: str | None):
        self.steps = steps
        self.task = task
        self._last_model = _last_model_index([s.conf for s in steps])

    def unwrap(self):
        return self

    def _finish(self, value: Any) -> Any:
        """Plain text at the end of a chat / completion chain becomes an OpenAI-shaped response."""
        if isinstance(value, str) and self.task == "llm/v1/chat":
            return chat_response(value)
        if isinstance(value, str) and self.task == "llm/v1/completions":
            return completion_response(value)
        return value

    def _run(self, value: Any, params: dict | None) -> Any:
        for step in self.steps:
            value = step(value, params)
        return self._finish(value)

    def predict(self, model_input, params=None):
        if self.task in LLM_TASKS:
            payloads, single = as_batch(model_input)
            out = [self._run(p, params) for p in payloads]
            return out[0] if single else out
        return self._run(model_input, params)

    def predict_stream(self, model_input, params=None):
        if self._last_model is None:
            raise StreamingNotSupportedError("This chain has no model step to stream from")
        if isinstance(model_input, list):
            raise SchemaMismatchError("Streaming takes one request at a time, not a list")
        value = model_input
        for step in self.steps[: self._last_model]:
            value = step(value, params)
        last = self.steps[self._last_model]
        request, p = last.model_request(value, params)
        for chunk in last.model.predict_stream(request, p):
            yield chunk if isinstance(chunk, dict) else {"delta": chunk_text(chunk)}


def _load_pyfunc(path: Path, manifest) -> ChainModel:
    conf = manifest.flavors[FLAVOR_NAME]
    return ChainModel([_Step(s, path) for s in conf["steps"]], manifest.task)


def load_model(path):
    from hangar.models.package import open_package

    return _load_pyfunc(Path(path), open_package(path))
