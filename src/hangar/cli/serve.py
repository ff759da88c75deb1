"""``hangar serve``: serve a model package over HTTP (MLflow scoring protocol + OpenAI API)."""

from __future__ import annotations

import click

from hangar.serving.settings import ServingSettings

_D = ServingSettings()


@click.command()
@click.argument("model_uri")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Worker processes; each loads the model once.")
@click.option("--max-batch-size", default=_D.max_batch_size, show_default=True, type=click.IntRange(1, 100_000),
              help="Most input rows gathered into one predict call.")
@click.option("--max-wait-ms", default=_D.max_wait_ms, show_default=True, type=click.FloatRange(0, 10_000),
              help="Longest an idle model waits for requests still being read before it starts a batch.")
@click.option("--no-batching", is_flag=True, help="Run every request in its own predict call.")
@click.option("--max-queue", default=_D.max_queue, show_default=True, type=click.IntRange(1, 1_000_000),
              help="Requests queued or running per worker; more are refused with 503 and Retry-After.")
@click.option("--request-timeout", default=_D.request_timeout, show_default=True, type=click.FloatRange(0, min_open=True),
              help="Seconds a request may wait and run; after that it is answered 504.")
@click.option("--model-threads", default=0, show_default=True, type=click.IntRange(0, 256),
              help="Predict calls at once per worker (0: 1 for batched models, 40 otherwise).")
@click.option("--inline-max-ms", default=_D.inline_max_ms, show_default=True, type=click.FloatRange(0, 1_000),
              help="At low load, run a model whose recent calls all took less than this on the event loop, "
              "saving the hop to a model thread (0: never).")
@click.option("--inference-table", metavar="DEST",
              help="Record every request and response: a folder (Parquet files) or a SQLAlchemy URL#table.")
@click.option("--env-manager", type=click.Choice(["local", "uv"]), default="local", show_default=True,
              help="local: this Python; uv: the package's own cached virtualenv (built on first use).")
@click.option("--auth", is_flag=True, help="Require a bearer token whose principal holds EXECUTE on the registered "
              "model (needed to listen beyond loopback, unless --insecure).")
@click.option("--insecure", is_flag=True, help="Serve without --auth on an address other machines can reach.")
@click.option("--access-log", is_flag=True, help="Log one line per request (costs throughput).")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]))
def serve(model_uri, host, port, workers, max_batch_size, max_wait_ms, no_batching, max_queue, request_timeout,
          model_threads, inline_max_ms, inference_table, env_manager, auth, insecure, access_log, log_level):
    """Serve MODEL_URI (a path, models:/name/N, models:/name@alias, runs:/...).

    Routes: POST /invocations; POST /v1/chat/completions, /v1/completions, /v1/embeddings and
    GET /v1/models for chat, completion and embedding models; GET /health, /ready, /metrics,
    /version, /openapi.json. Concurrent /invocations requests to a row-wise model share predict
    calls (adaptive batching) unless --no-batching. models:/name@alias follows the alias: a
    moved alias is loaded in the background and takes over with no request dropped. Stops
    gracefully on SIGTERM (in-flight requests and the inference table are drained).
    """
    from hangar.governance.authn import check_auth_choice

    check_auth_choice(host, not auth, insecure, consequence="call this model with no token (or serve it with --auth)")
    if env_manager == "uv":
        from hangar.models.env_manager import EnvManager

        argv = ["serve", model_uri, "--host", host, "--port", str(port), "--workers", str(workers),
                "--max-batch-size", str(max_batch_size), "--max-wait-ms", str(max_wait_ms), "--max-queue", str(max_queue),
                "--request-timeout", str(request_timeout), "--model-threads", str(model_threads), "--log-level", log_level,
                "--inline-max-ms", str(inline_max_ms)]
        argv += (["--no-batching"] if no_batching else []) + (["--access-log"] if access_log else [])
        argv += ["--inference-table", inference_table] if inference_table else []
        argv += (["--auth"] if auth else []) + (["--insecure"] if insecure else [])
        import os

        env = EnvManager(stream_output=True, hangar_extras=("serving",)).ensure(model_uri)
        # exec, not a child: SIGTERM from a supervisor reaches the server itself, which drains and exits
        os.execve(str(env.python), [str(env.python), "-m", "hangar.cli.main", *argv], env.environ())
    from hangar.serving.server import serve as run

    settings = ServingSettings(batching=not no_batching, max_batch_size=max_batch_size, max_wait_ms=max_wait_ms,
                               max_queue=max_queue, request_timeout=request_timeout, model_threads=model_threads,
                               inline_max_ms=inline_max_ms)
    run(model_uri, host=host, port=port, workers=workers, log_level=log_level, settings=settings,
        access_log=access_log, inference_table=inference_table, auth=auth)
