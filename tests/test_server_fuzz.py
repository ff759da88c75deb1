"""Property-based fuzzing of the server's whole route table (hypothesis): every route, called as
an administrator (so that every handler runs) with odd path parameters, query strings and JSON
bodies of the wrong shapes and types. Bad input must get a 4xx with a JSON error body — never a
500 — and the server must stay up and keep its store consistent."""

from __future__ import annotations

import collections
import os
import re
import urllib.parse

import httpx
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from server_fixtures import start_hub  # noqa: E402

from hangar.server.routes import ROUTES  # noqa: E402

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]
# A deeper local run: HANGAR_FUZZ_EXAMPLES=5000 HANGAR_FUZZ_RANDOM=1 pytest tests/test_server_fuzz.py
EXAMPLES = int(os.environ.get("HANGAR_FUZZ_EXAMPLES", "700"))
RANDOM = bool(os.environ.get("HANGAR_FUZZ_RANDOM"))

M = "main.default.m"
_PARAM = re.compile(r"{(\w+)(?::path)?}")
# Every field name the API reads somewhere: a body built from these reaches the handlers' checks.
FIELDS = ["name", "comment", "tags", "experiment_id", "run_id", "run_name", "start_time", "end_time", "status",
          "key", "value", "step", "timestamp", "metrics", "params", "inputs", "dataset", "context", "source",
          "version", "alias", "config", "principal", "privilege", "kind", "member", "expires_in_days",
          "src_type", "src_id", "dst_type", "dst_id", "artifact_location", "model_id", "lifecycle_stage",
          "description", "filter", "max_results", "order_by", "page_token", "experiment_ids", "run_view_type"]
QUERY = ["filter", "max_results", "version", "alias", "force", "key", "principal", "privilege", "entity",
         "entity_id", "direction", "max_depth", "limit", "since", "securable", "action", "anchor", "path",
         "recursive", "missing_ok", "catalog", "schema", "name", "name_like", "tags", "descending"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8),
                                                                      children, max_size=4),
    max_leaves=12)
bodies = st.one_of(st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=6), json_values)
odd_text = st.one_of(st.text(min_size=1, max_size=30),
                     st.sampled_from(["..", "../x", "%2e%2e", "a/../../b", "x" * 600, " ", "\u202e", "0", "-1",
                                      "99999999999999999999", "main..x", "a.b.c.d", "null", "{}"]))


@pytest.fixture
def world(store_uri, tmp_path):
    from hangar.catalog.client import Client

    tmp = tmp_path
    server, hub = start_hub(store_uri, tmp)
    with server:
        c = Client(store_uri, str(tmp / "artifacts"), actor="admin")
        exp = c.create_experiment("fuzz")
        run = c.create_run(exp).info.run_id
        c.log_text(run, "hello", "notes.txt")
        c.store.close()
        with hub.admin() as a:
            assert a.post("/models", json={"name": M}).status_code == 201
            assert a.post("/endpoints", json={"name": "ep", "config": {"served_entities": [{"model": "/p"}]}}
                          ).status_code == 201
        known = {"name": [M, "ep"], "experiment_id": [str(exp)], "run_id": [run], "catalog": ["main"],
                 "schema": ["main.default"], "version": ["1"], "alias": ["champion"], "key": ["k"],
                 "path": ["notes.txt"], "principal": ["admin"], "securable_type": ["registered_model", "endpoint"],
                 "securable": [M, "ep"]}
        yield hub, known


def _url(route, params: dict) -> str:
    def fill(match):
        value = params[match.group(1)]
        return urllib.parse.quote(value, safe="/" if ":path" in match.group(0) else "")
    return _PARAM.sub(fill, route.path)


@st.composite
def requests(draw, known):
    route = draw(st.sampled_from(ROUTES))
    params = {p: draw(st.sampled_from(known.get(p, ["x"])) | odd_text) for p in _PARAM.findall(route.path)}
    query = draw(st.dictionaries(st.sampled_from(QUERY), st.text(max_size=12) | st.sampled_from(["true", "1", "-1"]),
                                 max_size=3))
    body = draw(bodies) if route.method in ("POST", "PUT", "PATCH") else None
    return route, _url(route, params), query, body


def test_no_route_answers_bad_input_with_a_500(world):
    hub, known = world
    seen: list = []
    with httpx.Client(base_url=hub.url, headers={"Authorization": f"Bearer {hub.admin_token}"}, timeout=30) as http:

        @settings(max_examples=EXAMPLES, deadline=None, derandomize=not RANDOM, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(requests(known))
        def call(request):
            route, url, query, body = request
            if route.streaming and route.method == "PUT":
                resp = http.put(url, params=query, content=b"\x00payload")
            else:
                resp = http.request(route.method, url, params=query, json=body)
            seen.append((route.name, resp.status_code))
            assert resp.status_code < 500, f"{route.name} {url} {query} {body!r}: {resp.status_code} {resp.text[:300]}"
            if resp.status_code >= 400:
                error = resp.json()
                assert set(error) >= {"error_code", "message"}, (route.name, error)

        call()
        assert http.get("/ready").status_code == 200
        assert len({name for name, _ in seen}) > len(ROUTES) * 0.8, "most routes were reached"
        statuses = collections.Counter(status for _, status in seen)
        assert statuses[200] + statuses[201] > len(seen) / 10, f"too few calls got through: {statuses}"
    with hub.admin() as a:
        assert a.get("/audit/verify").json()["ok"] is True, "the audit chain survived"


@pytest.mark.parametrize("method, path, body, status", [
    ("DELETE", "/artifacts/runs/{run}/files/" + "x" * 600, None, 400),        # a name longer than a file system takes
    ("GET", "/artifacts/runs/{run}/files/" + "a/" * 600 + "b", None, 400),     # a path longer than an object key
    ("POST", "/experiments/99999999999999999999/restore", None, 404),          # beyond 64 bits: no such experiment
    ("DELETE", f"/models/{M}/versions/99999999999999999999", None, 404),       # beyond any version number
    ("POST", "/runs/{run}/params", {"key": ["k"], "value": "v"}, 400),         # a key that is not a string
    ("POST", "/runs/{run}/tags", {"key": {"k": 1}, "value": "v"}, 400),
    ("POST", "/principals/a\x00b/tokens", {"name": "t"}, (400, 404)),  # NUL: refused by PostgreSQL, absent in SQLite
    ("POST", "/experiments", {"name": "e\x00x"}, (400, 201)),
    ("POST", f"/models/{M}/versions/:/finalize", {"status": "FAILED"}, 400),   # not a version number
    ("GET", "/experiments/\u00b9", None, (400, 403, 404)),                       # a digit int() does not read
    ("POST", "/runs", {"experiment_id": "0", "start_time": {"t": 1}}, 400),     # a time that is not a number
    ("POST", "/runs", {"experiment_id": "0", "start_time": 2**70}, 400),        # ... or beyond 64 bits
])
def test_what_the_fuzzer_found_is_a_4xx(world, method, path, body, status):
    hub, known = world
    url = path.replace("{run}", known["run_id"][0]).replace("\x00", "%00")
    with hub.admin() as a:
        resp = a.request(method, url, json=body)
        assert resp.status_code in (status if isinstance(status, tuple) else (status,)), resp.text
        assert resp.status_code < 300 or (resp.json()["error_code"] and resp.json()["message"])
        assert a.get("/auth/whoami").status_code == 200


@st.composite
def mutated(draw, example):
    """A valid request of the permission walk's examples with one part spoiled: a path parameter, a body
    field replaced, dropped or added, or the whole body of another shape."""
    params, body, query = dict(example[0]), example[1], dict(example[2])
    spoil = draw(st.sampled_from(["param", "field", "drop", "extra", "body", "query"]))
    if spoil == "param" and params:
        params[draw(st.sampled_from(sorted(params)))] = draw(odd_text)
    elif spoil in ("field", "drop") and isinstance(body, dict) and body:
        body = dict(body)
        key = draw(st.sampled_from(sorted(body)))
        if spoil == "drop":
            del body[key]
        else:
            body[key] = draw(json_values)
    elif spoil == "extra" and isinstance(body, dict):
        body = {**body, draw(st.sampled_from(FIELDS)): draw(json_values)}
    elif spoil == "body" and body is not None:
        body = draw(json_values)
    elif query:
        query[draw(st.sampled_from(sorted(query)))] = draw(st.text(max_size=12))
    return params, body, query


def test_no_route_answers_a_spoiled_valid_request_with_a_500(store_uri, tmp_path, package):
    """Near-valid requests (the permission walk's examples, one part spoiled) reach deeper into each
    handler than random ones do."""
    from test_server_permissions import examples, permission_world

    routes = {r.name: r for r in ROUTES}
    with permission_world(store_uri, tmp_path, package) as (hub, _, w):
        ex = examples(w)
        with httpx.Client(base_url=hub.url, headers={"Authorization": f"Bearer {hub.admin_token}"}, timeout=30) as http:

            @settings(max_examples=EXAMPLES, deadline=None, derandomize=not RANDOM, database=None,
                      suppress_health_check=list(HealthCheck))
            @given(st.sampled_from(sorted(ex)).flatmap(lambda name: st.tuples(st.just(name), mutated(ex[name]))))
            def call(request):
                name, (params, body, query) = request
                route = routes[name]
                url = _url(route, {k: str(v) for k, v in params.items()})
                if route.streaming and route.method == "PUT":
                    resp = http.put(url, params=query, content=b"x")
                else:
                    resp = http.request(route.method, url, params=query, json=body)
                assert resp.status_code < 500, f"{name} {url} {query} {body!r}: {resp.status_code} {resp.text[:300]}"

            call()
            assert http.get("/ready").status_code == 200
