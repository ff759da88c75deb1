#!/usr/bin/env python3
"""The serving benchmark's reference: a bare Starlette app on uvicorn, no model library.

It does what any server of the trivial model must do per request, and nothing more: read the
body, ``json.loads`` it, take the ``dataframe_split`` rows and answer
``{"predictions": [len(row[0]) for each row]}`` (the trivial model returns the length of
each input string, so ``{"dataframe_split": {"columns": ["text"], "data": [["hello"]]}}``
gives ``{"predictions": [5]}``, as MLflow and Hangar answer for the same body). For
``bench_serving.py --variant list`` it answers ``{"inputs": ["hello"]}`` the same way.

Run it with the Hangar venv's interpreter (bench_serving.py does)::

    .venv/bin/python bench/serving_reference.py --port 8000 [--workers 2]

Routes: ``POST /invocations``, ``GET /ready`` (200 once the app is up), ``GET /ping`` and
``GET /health`` (same). uvicorn uses ``--loop uvloop --http httptools`` when both are
installed (``--loop``/``--http`` override), and has its access log off, as a bare
production app would. TCP_NODELAY: both uvloop's and asyncio's TCP transports set it on every
accepted connection; uvicorn does not turn it off. On start the script prints one JSON line
to stdout with the loop / http implementation actually used.
"""

from __future__ import annotations

import argparse
import importlib.util
import json

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


async def invocations(request: Request) -> Response:
    try:
        payload = json.loads(await request.body())
        if "inputs" in payload:  # bench_serving.py --variant list
            preds = [len(text) for text in payload["inputs"]]
        else:
            preds = [len(row[0]) for row in payload["dataframe_split"]["data"]]
    except (ValueError, KeyError, TypeError, IndexError) as e:
        return JSONResponse({"error_code": "BAD_REQUEST", "message": str(e)}, status_code=400)
    return Response(json.dumps({"predictions": preds}), media_type="application/json")


async def ready(request: Request) -> Response:
    return Response("{}", media_type="application/json")


app = Starlette(routes=[
    Route("/invocations", invocations, methods=["POST"]),
    Route("/ready", ready, methods=["GET"]),
    Route("/ping", ready, methods=["GET"]),
    Route("/health", ready, methods=["GET"]),
])


def have(mod: str) -> bool:
    return importlib.util.find_spec(mod) is not None


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--loop", default=None, help="uvicorn loop (default: uvloop if installed, else asyncio)")
    p.add_argument("--http", default=None, help="uvicorn http (default: httptools if installed, else h11)")
    args = p.parse_args(argv)
    loop = args.loop or ("uvloop" if have("uvloop") else "asyncio")
    http = args.http or ("httptools" if have("httptools") else "h11")
    import uvicorn

    print(json.dumps({"server": "reference", "loop": loop, "http": http, "workers": args.workers,
                      "uvicorn": uvicorn.__version__}), flush=True)
    # An import string, so that --workers > 1 works (uvicorn re-imports the app per worker).
    uvicorn.run("serving_reference:app", host=args.host, port=args.port, workers=args.workers,
                loop=loop, http=http, access_log=False, log_level="warning",
                app_dir=str(__import__("pathlib").Path(__file__).resolve().parent))


if __name__ == "__main__":
    main()
