"""``hangar serve``: serve a model package over HTTP (MLflow scoring protocol + OpenAI API)."""

from __future__ import annotations

import click


@click.command()
@click.argument("model_uri")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Worker processes; each loads the model once.")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]))
def serve(model_uri, host, port, workers, log_level):
    """Serve MODEL_URI (a path, models:/name/N, models:/name@alias, runs:/...).

    Routes: POST /invocations; POST /v1/chat/completions, /v1/completions, /v1/embeddings and
    GET /v1/models for chat, completion and embedding models; GET /health, /ready, /metrics,
    /version, /openapi.json. Stops gracefully on SIGTERM.
    """
    from hangar.serving.server import serve as run

    run(model_uri, host=host, port=port, workers=workers, log_level=log_level)
