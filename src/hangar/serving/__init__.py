"""Real-time serving: a pure scoring core, protocol adapters (MLflow ``/invocations``, OpenAI
``/v1/*``) and a small ASGI app around them.

Import the pieces you need (``hangar.serving.app.build_app``, ``hangar.serving.server.serve``);
this package imports nothing heavy on its own.
"""
