"""What every flavor's save_model does alike: signature, input example, requirements, task."""

from __future__ import annotations

from typing import Any

from hangar.errors import InvalidArgumentError
from hangar.models.inputs import LLM_TASKS, is_payload_example
from hangar.models.package import PackageWriter
from hangar.models.signature import ModelSignature


def decide_payload_mode(task: str | None, input_example: Any, signature: ModelSignature | None) -> bool:
    """Chat/completion/embedding payloads and nested dict examples reach the model unchanged."""
    if task in LLM_TASKS:
        return True
    if input_example is not None:
        return is_payload_example(input_example)
    return False


def describe_package(writer: PackageWriter, *, task: str | None, signature: ModelSignature | None,
                     input_example: Any, requirements: list[str], pip_requirements=None,
                     extra_pip_requirements=None, metadata: dict | None = None) -> bool:
    """Fill in the parts of the manifest every flavor shares; returns the payload mode."""
    from hangar.models.environment import resolve_requirements
    from hangar.models.infer import infer_signature

    if task is not None and task not in LLM_TASKS:
        raise InvalidArgumentError(f"Unknown task {task!r}; use one of {', '.join(LLM_TASKS)}")
    if signature is not None and not isinstance(signature, ModelSignature):
        raise InvalidArgumentError("signature must be a hangar.models.ModelSignature (see infer_signature)")
    payload = decide_payload_mode(task, input_example, signature)
    if signature is None and input_example is not None:
        signature = infer_signature(input_example, payload=payload)
    if metadata:
        writer.manifest.metadata = dict(writer.manifest.metadata or {}, **metadata)
    writer.set_task(task)
    writer.manifest.signature = signature
    if input_example is not None:
        writer.save_input_example(input_example, payload=payload)
    writer.requirements = resolve_requirements(requirements, pip_requirements, extra_pip_requirements)
    return payload
