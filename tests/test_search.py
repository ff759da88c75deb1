"""MLflow-style search: the filter and order_by parsers, and the selects they compile to, run on a
fresh SQLite file and a fresh PostgreSQL database (skipped when no server answers)."""

import uuid

import pytest
from sqlalchemy import create_engine, func, insert, select, text

from hangar.errors import InvalidArgumentError
from hangar.store import schema as s
from hangar.tracking.search import (
    ATTRIBUTES,
    DATASETS,
    EXPERIMENT_SEARCH,
    LOGGED_MODEL_SEARCH,
    METRICS,
    PARAMS,
    TAGS,
    Comparison,
    OrderTerm,
    build_experiment_search,
    build_logged_model_search,
    build_run_search,
    decode_page_token,
    encode_page_token,
    parse_filter,
    parse_order_by,
    split_page,
)

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


# -- parser -------------------------------------------------------------------------------------

@pytest.mark.parametrize("flt, expected", [
    ("metrics.acc > 0.8", [Comparison(METRICS, "acc", ">", 0.8)]),
    ("metric.acc>=1", [Comparison(METRICS, "acc", ">=", 1)]),
    ("metrics.loss < -1.5e-3", [Comparison(METRICS, "loss", "<", -0.0015)]),
    ("metrics.loss <= .5", [Comparison(METRICS, "loss", "<=", 0.5)]),
    ("metrics.n = 3E2", [Comparison(METRICS, "n", "=", 300.0)]),
    ("metrics.n != +7", [Comparison(METRICS, "n", "!=", 7)]),
    ("params.lr = '0.01'", [Comparison(PARAMS, "lr", "=", "0.01")]),
    ('param.lr = "0.01"', [Comparison(PARAMS, "lr", "=", "0.01")]),
    ("parameters.lr != 'a'", [Comparison(PARAMS, "lr", "!=", "a")]),
    ("tags.team LIKE 'v%'", [Comparison(TAGS, "team", "LIKE", "v%")]),
    ("tag.team ilike 'V%'", [Comparison(TAGS, "team", "ILIKE", "V%")]),
    ("tags.team IN ('a', \"b\",'c')", [Comparison(TAGS, "team", "IN", ("a", "b", "c"))]),
    ("tags.team not  in ('a')", [Comparison(TAGS, "team", "NOT IN", ("a",))]),
    ("tags.team IS NULL", [Comparison(TAGS, "team", "IS NULL", None)]),
    ("params.opt is not null", [Comparison(PARAMS, "opt", "IS NOT NULL", None)]),
    ("metrics.`val.acc` > 0", [Comparison(METRICS, "val.acc", ">", 0)]),
    ("metrics.val.acc > 0", [Comparison(METRICS, "val.acc", ">", 0)]),
    ('tags."my tag" = \'x\'', [Comparison(TAGS, "my tag", "=", "x")]),
    ("tags.`a``b` = 'x'", [Comparison(TAGS, "a`b", "=", "x")]),
    ("tags.mlflow.source-name = 'x'", [Comparison(TAGS, "mlflow.source-name", "=", "x")]),
    ("run_name = 'r'", [Comparison(ATTRIBUTES, "run_name", "=", "r")]),
    ("`run_name` = 'r'", [Comparison(ATTRIBUTES, "run_name", "=", "r")]),
    ("attributes.status IN ('RUNNING')", [Comparison(ATTRIBUTES, "status", "IN", ("RUNNING",))]),
    ("attribute.run_id = 'x'", [Comparison(ATTRIBUTES, "run_id", "=", "x")]),
    ("attr.user_id = 'x'", [Comparison(ATTRIBUTES, "user_id", "=", "x")]),
    ("run.artifact_uri LIKE 's3://%'", [Comparison(ATTRIBUTES, "artifact_uri", "LIKE", "s3://%")]),
    ("created > 5", [Comparison(ATTRIBUTES, "start_time", ">", 5)]),
    ("attributes.end_time <= 10", [Comparison(ATTRIBUTES, "end_time", "<=", 10)]),
    ("Status = 'x'", [Comparison(ATTRIBUTES, "status", "=", "x")]),
    ("datasets.name = 'd'", [Comparison(DATASETS, "name", "=", "d")]),
    ("dataset.context IN ('train')", [Comparison(DATASETS, "context", "IN", ("train",))]),
    ("tags.n = 'it''s'", [Comparison(TAGS, "n", "=", "it's")]),
    ("tags.n = 'it\\'s'", [Comparison(TAGS, "n", "=", "it's")]),
    ("tags.n = \"say \"\"hi\"\"\"", [Comparison(TAGS, "n", "=", 'say "hi"')]),
    ("tags.n LIKE '50\\%'", [Comparison(TAGS, "n", "LIKE", "50\\%")]),
    ("tags.n = 'a\\\\b'", [Comparison(TAGS, "n", "=", "a\\b")]),
    ("tags.n = ''", [Comparison(TAGS, "n", "=", "")]),
    ("params.lr = '0.01'' OR 1=1 --'", [Comparison(PARAMS, "lr", "=", "0.01' OR 1=1 --")]),
    ("metrics.a > 1 and params.b = 'x' AND tags.c = 'y'",
     [Comparison(METRICS, "a", ">", 1), Comparison(PARAMS, "b", "=", "x"), Comparison(TAGS, "c", "=", "y")]),
    ("  metrics.a>1   And\tmetrics.a<2 ", [Comparison(METRICS, "a", ">", 1), Comparison(METRICS, "a", "<", 2)]),
    ("", []),
    ("   ", []),
    (None, []),
])
def test_parse_filter_valid(flt, expected):
    assert parse_filter(flt) == expected


@pytest.mark.parametrize("flt, message", [
    ("metrics.acc >> 0.8", "Invalid filter at 'metrics.acc >> 0.8' (position 12): expected one of =, !=, >, >=, <, <= "
                           "after metrics.acc, got '>>'"),
    ("metrics.acc => 0.8", "got '=>'"),
    ("metrics.acc <> 0.8", "got '<>'"),
    ("metrics.acc LIKE '0.8'", "expected one of =, !=, >, >=, <, <= after metrics.acc, got 'LIKE'"),
    ("metrics.acc > '0.8'", "expected a number for metrics.acc"),
    ("metrics.acc IS NULL", "expected one of =, !=, >, >=, <, <="),
    ("metrics.acc > abc", "expected a number for metrics.acc, got 'abc'"),
    ("metrics.acc > 1abc", "got '1abc'"),
    ("metrics.acc > 1.2.3", "got '1.2.3'"),
    ("metrics.acc >", "expected a number for metrics.acc, got the end of the input"),
    ("metrics.acc", "expected one of =, !=, >, >=, <, <= after metrics.acc, got the end of the input"),
    ("params.lr > '0.1'", "expected one of =, !=, LIKE, ILIKE, IN, NOT IN, IS NULL, IS NOT NULL after params.lr, got '>'"),
    ("params.lr = 0.01", "expected a quoted string for params.lr, which holds strings (write '0.01')"),
    ("tags.t = x", "expected a quoted string for tags.t, got 'x'"),
    ("tags.t NOT LIKE 'x'", "got 'NOT'"),
    ("tags.t IS NUL", "got 'IS'"),
    ("tags.t IN 'a'", "expected a parenthesized list of quoted strings after IN"),
    ("tags.t IN ()", "the list cannot be empty"),
    ("tags.t IN ('a' 'b')", "expected ',' or ')' in the IN list, got \"'b'\""),
    ("tags.t IN ('a', 3)", "expected a quoted string in the IN list, got '3'"),
    ("tags.t IN ('a'", "expected ',' or ')' in the IN list, got the end of the input"),
    ("tags.t = 'abc", "expected a closing ' for the string that opens here, got the end of the input"),
    ("tags.`abc = 'x'", "expected a closing ` for the key that opens here"),
    ("tags.`` = 'x'", "expected a non-empty key"),
    ("tags. = 'x'", "expected a key after tags."),
    ("foo = 'x'", "expected a run attribute, one of artifact_uri, end_time, lifecycle_stage"),
    ("attributes.foo = 'x'", "got 'foo'"),
    ("bar.x = 'y'", "expected an entity prefix, one of attr, attribute, attributes, dataset, datasets, metric"),
    ("start_time > '5'", "expected a number for attribute start_time"),
    ("status > 'x'", "expected one of =, !=, LIKE, ILIKE, IN, NOT IN after attribute status, got '>'"),
    ("status IS NULL", "after attribute status, got 'IS'"),
    ("start_time LIKE '1%'", "after attribute start_time, got 'LIKE'"),
    ("datasets.size = 'x'", "expected a dataset key, one of name, digest, context, got 'size'"),
    ("datasets.name > 'x'", "after datasets.name, got '>'"),
    ("metrics.a > 1 or metrics.b > 2", "OR is not supported"),
    ("metrics.a > 1 OR metrics.b > 2", "OR is not supported"),
    ("metrics.a > 1 and", "expected a comparison after AND, got the end of the input"),
    ("and metrics.a > 1", "got 'and'"),
    ("metrics.a > 1 and and metrics.b > 1", "got 'and'"),
    ("metrics.a > 1 metrics.b > 2", "expected AND or the end of the filter, got 'metrics.b'"),
    ("metrics.a > 1 andmetrics.b > 2", "expected AND or the end of the filter"),
    ("(metrics.a > 1)", "parentheses are not supported"),
    ("params.lr = '0.01'; DROP TABLE runs; --", "expected AND or the end of the filter, got ';'"),
    ("42 = 'x'", "expected an identifier such as metrics.acc"),
])
def test_parse_filter_errors(flt, message):
    with pytest.raises(InvalidArgumentError) as info:
        parse_filter(flt)
    assert message in info.value.message
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"


def test_parse_filter_rejects_non_strings_and_foreign_entities():
    with pytest.raises(InvalidArgumentError, match="filter_string must be a string"):
        parse_filter(42)
    with pytest.raises(InvalidArgumentError, match="expected an entity prefix, one of attr, attribute, attributes, tag"):
        parse_filter("metrics.acc > 1", EXPERIMENT_SEARCH)
    with pytest.raises(InvalidArgumentError, match="expected an entity prefix"):
        parse_filter("datasets.name = 'x'", LOGGED_MODEL_SEARCH)
    with pytest.raises(InvalidArgumentError, match="expected an experiment attribute"):
        parse_filter("run_name = 'x'", EXPERIMENT_SEARCH)
    assert parse_filter("attributes.creation_timestamp > 1", LOGGED_MODEL_SEARCH) == [
        Comparison(ATTRIBUTES, "creation_time", ">", 1)]


@pytest.mark.parametrize("order_by, expected", [
    (["metrics.acc DESC", "params.lr", "attributes.start_time ASC", "run_name"],
     [OrderTerm(METRICS, "acc", False), OrderTerm(PARAMS, "lr", True), OrderTerm(ATTRIBUTES, "start_time", True),
      OrderTerm(ATTRIBUTES, "run_name", True)]),
    (["metrics.`val.acc` desc", "tags.\"my tag\" asc"], [OrderTerm(METRICS, "val.acc", False), OrderTerm(TAGS, "my tag")]),
    (["created DESC"], [OrderTerm(ATTRIBUTES, "start_time", False)]),
    ("start_time", [OrderTerm(ATTRIBUTES, "start_time")]),
    ([], []),
    (None, []),
])
def test_parse_order_by_valid(order_by, expected):
    assert parse_order_by(order_by) == expected


@pytest.mark.parametrize("order_by, message", [
    (["metrics.acc DOWN"], "expected ASC, DESC or the end of the order_by clause, got 'DOWN'"),
    (["metrics.acc DESC extra"], "expected the end of the order_by clause, got 'extra'"),
    (["metrics.acc DESC, params.lr"], "expected the end of the order_by clause, got ','"),
    (["metrics.acc, params.lr"], "expected ASC, DESC or the end of the order_by clause, got ','"),
    ([""], "expected a key to order by"),
    (["foo"], "expected a run attribute"),
    (["datasets.name"], "datasets.* cannot be ordered by"),
    (["bogus.x"], "expected an entity prefix"),
    ([3], "order_by entries must be strings"),
    (["metrics.acc", "metric.acc DESC"], "order_by names metrics.acc more than once"),
    (42, "order_by must be a list of strings"),
])
def test_parse_order_by_errors(order_by, message):
    with pytest.raises(InvalidArgumentError) as info:
        parse_order_by(order_by)
    assert message in info.value.message


def test_page_tokens_round_trip_and_reject_garbage():
    for offset in (0, 1, 1000, 10**8):
        token = encode_page_token(offset)
        assert token.isascii() and "=" not in token and "+" not in token and "/" not in token
        assert decode_page_token(token) == offset
    assert decode_page_token(None) == 0 and decode_page_token("") == 0
    assert decode_page_token("eyJvZmZzZXQiOiAxMDB9") == 100  # MLflow's token: standard base64, spaces in the JSON
    for bad in ("not a token!", "e30", "bnVsbA", "eyJvZmZzZXQiOiAtMX0", "eyJvZmZzZXQiOiAiMSJ9", "eyJvZmZzZXQiOnRydWV9",
                "%%%", 42):
        with pytest.raises(InvalidArgumentError, match="Invalid page_token"):
            decode_page_token(bad)
    with pytest.raises(InvalidArgumentError, match="Invalid page_token"):
        decode_page_token(encode_page_token(2**40))
    with pytest.raises(InvalidArgumentError):
        encode_page_token(-1)


def test_split_page():
    assert split_page([1, 2, 3], 2, 0) == ([1, 2], encode_page_token(2))
    assert split_page([1, 2], 2, 4) == ([1, 2], None)


@pytest.mark.parametrize("kwargs, message", [
    ({"max_results": 0}, "max_results must be an integer from 1 to 50000"),
    ({"max_results": 50001}, "max_results"),
    ({"max_results": True}, "max_results"),
    ({"offset": -1}, "offset must be an integer from 0 to"),
    ({"offset": 2**31}, "offset must be an integer from 0 to"),
    ({"view": "gone"}, "view must be one of active, deleted, all"),
])
def test_build_rejects_bad_paging_and_view(kwargs, message):
    with pytest.raises(InvalidArgumentError, match=message):
        build_run_search([1], **kwargs)


def test_values_and_keys_are_bound_parameters():
    stmt = build_run_search([1], "params.lr = 'SECRET1' and tags.`SECRET2` LIKE 'SECRET3%' and metrics.m > 0.123",
                            ["tags.SECRET4"])
    sql = str(stmt.compile(dialect=create_engine("sqlite://").dialect))
    assert not any(f"SECRET{i}" in sql for i in range(1, 5)) and "0.123" not in sql


# -- SQL, on SQLite and PostgreSQL ---------------------------------------------------------------

RUNS = [
    # run_id, experiment, name, status, start, end, stage, user
    ("r1", 1, "alpha", "FINISHED", 1000, 2000, "active", "ann"),
    ("r2", 1, "beta", "FINISHED", 2000, None, "active", "bob"),
    ("r3", 1, "Gamma", "RUNNING", 3000, None, "active", "ann"),
    ("r4", 1, "delta_1", "FAILED", 4000, 4500, "active", "cy"),
    ("r5", 1, "gone", "FINISHED", 5000, 5100, "deleted", "ann"),
    ("r6", 1, "alpha2", "FINISHED", 1000, None, "active", "dan"),
    ("r7", 2, "other", "FINISHED", 7000, 7100, "active", "ann"),
]
PARAMS_ROWS = {"r1": {"lr": "0.01", "opt": "adam"}, "r2": {"lr": "0.1", "opt": "sgd"}, "r3": {"lr": "0.01"},
               "r5": {"lr": "0.01"}, "r6": {"lr": "0.001"}, "r7": {"lr": "0.01"}}
METRICS_ROWS = {"r1": {"acc": 0.9, "loss": 0.3}, "r2": {"acc": 0.7}, "r3": {"acc": 0.85, "loss": 0.5, "val.acc": 0.8},
                "r4": {"loss": 0.1}, "r5": {"acc": 0.99}, "r6": {"acc": 0.9}, "r7": {"acc": 0.95}}
TAGS_ROWS = {"r1": {"team": "Vision", "my tag": "x y", "note": "it's", "pct": "500", "g": "axb"},
             "r2": {"team": "vision", "g": "a*b"}, "r3": {"team": "nlp", "pct": "50%", "g": "a[x]b"},
             "r4": {"team": "n_p", "path": "C:\\dir\\"}, "r7": {"team": "vision"}}
DEFAULT = ["r4", "r3", "r2", "r1", "r6"]  # experiment 1, active: start_time DESC, then run_id


def _populate(engine):
    s.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(s.experiments), [
            {"experiment_id": 1, "name": "exp-a", "artifact_location": "/a", "lifecycle_stage": "active",
             "creation_time": 10, "last_update_time": 30},
            {"experiment_id": 2, "name": "exp-b", "artifact_location": "/b", "lifecycle_stage": "active",
             "creation_time": 20, "last_update_time": 20},
            {"experiment_id": 3, "name": "old", "artifact_location": "/c", "lifecycle_stage": "deleted",
             "creation_time": 5, "last_update_time": 5}])
        conn.execute(insert(s.experiment_tags), [{"experiment_id": 1, "key": "team", "value": "vision"},
                                                 {"experiment_id": 2, "key": "team", "value": "nlp"}])
        conn.execute(insert(s.runs), [
            {"run_id": r, "experiment_id": e, "run_name": n, "status": st, "start_time": t0, "end_time": t1,
             "lifecycle_stage": stage, "artifact_uri": f"/a/{r}", "user_id": u}
            for r, e, n, st, t0, t1, stage, u in RUNS])
        conn.execute(insert(s.params), [{"run_id": r, "key": k, "value": v}
                                        for r, kv in PARAMS_ROWS.items() for k, v in kv.items()])
        conn.execute(insert(s.latest_metrics), [{"run_id": r, "key": k, "value": v, "timestamp": 0, "step": 0}
                                                for r, kv in METRICS_ROWS.items() for k, v in kv.items()])
        conn.execute(insert(s.tags), [{"run_id": r, "key": k, "value": v}
                                      for r, kv in TAGS_ROWS.items() for k, v in kv.items()])
        conn.execute(insert(s.datasets), [
            {"dataset_id": "d1", "experiment_id": 1, "name": "train-set", "digest": "abc123", "source_type": "local",
             "source": "/d1"},
            {"dataset_id": "d2", "experiment_id": 1, "name": "eval-set", "digest": "def456", "source_type": "local",
             "source": "/d2"}])
        conn.execute(insert(s.inputs), [{"dataset_id": "d1", "run_id": "r1", "context": "training"},
                                        {"dataset_id": "d1", "run_id": "r2", "context": "eval"},
                                        {"dataset_id": "d2", "run_id": "r3", "context": "eval"}])
        conn.execute(insert(s.logged_models), [
            {"model_id": m, "experiment_id": e, "name": n, "source_run_id": r, "artifact_location": f"/m/{m}",
             "status": st, "creation_time": t, "last_updated_time": t, "lifecycle_stage": stage}
            for m, e, n, r, st, t, stage in [("m1", 1, "clf", "r1", "READY", 100, "active"),
                                             ("m2", 1, "reg", "r2", "PENDING", 200, "active"),
                                             ("m3", 1, "clf-v2", None, "READY", 300, "active"),
                                             ("m4", 1, "clf-old", "r1", "READY", 400, "deleted"),
                                             ("m5", 2, "clf", "r7", "READY", 500, "active")]])
        conn.execute(insert(s.logged_model_params), [{"model_id": "m1", "key": "depth", "value": "3"},
                                                     {"model_id": "m3", "key": "depth", "value": "5"}])
        conn.execute(insert(s.logged_model_tags), [{"model_id": "m2", "key": "stage", "value": "dev"}])
        conn.execute(insert(s.logged_model_metrics), [
            {"model_id": m, "key": "acc", "value": v, "timestamp": 0, "step": 0} for m, v in [("m1", 0.8), ("m2", 0.9)]])


@pytest.fixture(scope="module")
def sqlite_engine(tmp_path_factory):
    from hangar.store.engine import create_store_engine

    engine = create_store_engine(f"sqlite:///{tmp_path_factory.mktemp('search') / 'hangar.db'}")
    _populate(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def pg_engine():
    try:
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # no server here: the SQLite half still runs
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 is not available: {exc}")
    name = f"hangar_search_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = create_engine(PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}")
    try:
        _populate(engine)
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request):
    return request.getfixturevalue(f"{'pg' if request.param == 'postgresql' else 'sqlite'}_engine")


def ids(engine, stmt) -> list:
    with engine.connect() as conn:
        return [row[0] for row in conn.execute(stmt)]


def runs(engine, flt=None, order_by=None, **kw) -> list[str]:
    kw.setdefault("experiment_ids", [1])
    return ids(engine, build_run_search(kw.pop("experiment_ids"), flt, order_by, **kw))


@pytest.mark.parametrize("flt, expected", [
    (None, DEFAULT),
    ("metrics.acc > 0.8", ["r3", "r1", "r6"]),
    ("metrics.acc > 8e-1", ["r3", "r1", "r6"]),
    ("metrics.acc >= 0.9", ["r1", "r6"]),
    ("metrics.acc = 0.7", ["r2"]),
    ("metrics.acc != 0.7", ["r3", "r1", "r6"]),  # a run without the metric does not match !=
    ("metrics.acc < 0.85", ["r2"]),
    ("metrics.acc <= 0.85", ["r3", "r2"]),
    ("metrics.acc > 0.6 and metrics.acc < 0.88", ["r3", "r2"]),
    ("metrics.`val.acc` > 0.5", ["r3"]),
    ("metrics.loss > -1", ["r4", "r3", "r1"]),
    ("metrics.loss > 1", []),
    ("params.lr = '0.01'", ["r3", "r1"]),
    ("params.lr != '0.01'", ["r2", "r6"]),
    ("params.lr IN ('0.1', '0.001')", ["r2", "r6"]),
    ("params.lr NOT IN ('0.1')", ["r3", "r1", "r6"]),
    ("params.lr LIKE '0.0%'", ["r3", "r1", "r6"]),
    ("params.opt IS NULL", ["r4", "r3", "r6"]),
    ("params.opt IS NOT NULL", ["r2", "r1"]),
    ("params.opt IS NOT NULL and params.opt = 'sgd'", ["r2"]),
    ("params.opt IS NULL and params.lr = '0.01'", ["r3"]),
    ("tags.team = 'vision'", ["r2"]),
    ("tags.team LIKE 'vision'", ["r2"]),  # LIKE is case-sensitive on SQLite too
    ("tags.team LIKE 'V%'", ["r1"]),
    ("tags.team ILIKE 'vision'", ["r2", "r1"]),
    ("tags.team ILIKE 'VIS%'", ["r2", "r1"]),
    ("tags.team ILIKE 'n_p'", ["r4", "r3"]),
    ("tags.team LIKE 'n_p'", ["r4", "r3"]),
    ("tags.team LIKE 'n\\_p'", ["r4"]),
    ("tags.pct LIKE '50%'", ["r3", "r1"]),
    ("tags.pct LIKE '50\\%'", ["r3"]),
    ("tags.g LIKE 'a*b'", ["r2"]),  # GLOB metacharacters stay literal
    ("tags.g LIKE 'a?b'", []),
    ("tags.g LIKE 'a[x]b'", ["r3"]),
    ("tags.g LIKE 'a_b'", ["r2", "r1"]),
    ("tags.g ILIKE 'A[X]%'", ["r3"]),
    ("tags.`my tag` = 'x y'", ["r1"]),
    ("tags.path = 'C:\\\\dir\\\\'", ["r4"]),
    ("tags.path LIKE 'C:%\\\\'", ["r4"]),  # a trailing escape character is a literal backslash
    ("tags.path ILIKE 'c:\\\\\\\\%'", ["r4"]),  # 4 backslashes in the filter: 2 after unquoting, 1 for LIKE
    ("tags.path LIKE 'C:\\\\\\\\dir_'", ["r4"]),
    ("tags.path LIKE 'C:\\\\dir_'", []),  # after unquoting, LIKE sees an escaped d
    ("tags.note = 'it''s'", ["r1"]),
    ("tags.note = \"it's\"", ["r1"]),
    ("tags.team IS NULL", ["r6"]),
    ("tags.team NOT IN ('vision', 'Vision')", ["r4", "r3"]),
    ("attributes.status = 'RUNNING'", ["r3"]),
    ("status IN ('FINISHED', 'FAILED')", ["r4", "r2", "r1", "r6"]),
    ("status NOT IN ('FINISHED')", ["r4", "r3"]),
    ("status != 'FINISHED'", ["r4", "r3"]),
    ("run_name LIKE 'alpha%'", ["r1", "r6"]),
    ("run_name LIKE 'g%'", []),
    ("run_name ILIKE 'g%'", ["r3"]),
    ("run_name = 'delta_1'", ["r4"]),
    ("attributes.user_id = 'ann'", ["r3", "r1"]),
    ("attr.start_time > 1500", ["r4", "r3", "r2"]),
    ("created >= 3000", ["r4", "r3"]),
    ("start_time > 1700000000000", []),
    ("start_time < 99999999999999999999", DEFAULT),
    ("start_time >= 1999.5", ["r4", "r3", "r2"]),
    ("metrics.acc < 10000000000", ["r3", "r2", "r1", "r6"]),
    ("attributes.end_time < 3000", ["r1"]),
    ("attributes.end_time != 2000", ["r4"]),
    ("run.run_id = 'r2'", ["r2"]),
    ("attributes.run_id IN ('r2', 'r6', 'r7')", ["r2", "r6"]),
    ("attributes.artifact_uri LIKE '/a/r1'", ["r1"]),
    ("datasets.name = 'train-set'", ["r2", "r1"]),
    ("datasets.context = 'eval'", ["r3", "r2"]),
    ("datasets.name = 'train-set' and datasets.context = 'eval'", ["r2"]),  # the same dataset input
    ("datasets.name = 'eval-set' and datasets.context = 'training'", []),
    ("datasets.digest LIKE 'def%'", ["r3"]),
    ("datasets.name IN ('eval-set')", ["r3"]),
    ("metrics.acc > 0.8 and params.lr = '0.01' and tags.team = 'nlp'", ["r3"]),
    ("metrics.acc > 0.8 and params.lr = '0.01' and tags.team = 'vision'", []),
])
def test_run_filters(engine, flt, expected):
    assert runs(engine, flt) == expected


@pytest.mark.parametrize("flt, order_by, expected", [
    (None, ["metrics.acc DESC"], ["r1", "r6", "r3", "r2", "r4"]),  # r4 has no acc: last
    (None, ["metrics.acc ASC"], ["r2", "r3", "r1", "r6", "r4"]),  # ... in both directions
    (None, ["metrics.acc"], ["r2", "r3", "r1", "r6", "r4"]),
    (None, ["metrics.loss DESC", "metrics.acc DESC"], ["r3", "r1", "r4", "r6", "r2"]),
    (None, ["params.opt ASC"], ["r1", "r2", "r4", "r3", "r6"]),
    (None, ["params.opt DESC"], ["r2", "r1", "r4", "r3", "r6"]),
    (None, ["tags.team DESC"], ["r2", "r3", "r4", "r1", "r6"]),
    (None, ["attributes.end_time ASC"], ["r1", "r4", "r3", "r2", "r6"]),
    (None, ["attributes.end_time DESC"], ["r4", "r1", "r3", "r2", "r6"]),
    (None, ["start_time"], ["r1", "r6", "r2", "r3", "r4"]),
    (None, ["attributes.start_time DESC", "attributes.run_id DESC"], ["r4", "r3", "r2", "r6", "r1"]),
    ("status = 'FINISHED'", ["run_name DESC"], ["r2", "r6", "r1"]),
    ("metrics.acc > 0.8", ["metrics.acc DESC"], ["r1", "r6", "r3"]),
    ("metrics.acc > 0.8", ["metrics.acc ASC"], ["r3", "r1", "r6"]),
    ("metrics.acc > 0.8", ["metrics.loss DESC"], ["r3", "r1", "r6"]),
    ("params.lr = '0.01'", ["params.lr DESC", "metrics.loss"], ["r1", "r3"]),
    ("params.opt IS NULL", ["params.opt DESC"], ["r4", "r3", "r6"]),
])
def test_run_ordering(engine, flt, order_by, expected):
    assert runs(engine, flt, order_by) == expected


def test_run_select_returns_order_keys(engine):
    with engine.connect() as conn:
        rows = conn.execute(build_run_search([1], "metrics.acc > 0.8", ["metrics.acc DESC", "params.opt"])).all()
    assert [tuple(r) for r in rows] == [("r1", 0.9, "adam", 1000), ("r6", 0.9, None, 1000), ("r3", 0.85, None, 3000)]


def test_run_views_and_experiments(engine):
    assert runs(engine, view="deleted") == ["r5"]
    assert runs(engine, view="all") == ["r5", *DEFAULT]
    assert runs(engine, "params.lr = '0.01'", view="all") == ["r5", "r3", "r1"]
    assert runs(engine, experiment_ids=[1, 2]) == ["r7", *DEFAULT]
    assert runs(engine, experiment_ids=["2"]) == ["r7"]
    assert runs(engine, experiment_ids=[]) == []
    assert runs(engine, experiment_ids=[99]) == []


@pytest.mark.parametrize("order_by", [None, ["metrics.acc DESC"], ["params.opt"]])
def test_paging_walks_every_run_once(engine, order_by):
    everything = runs(engine, None, order_by)
    seen, token, pages = [], None, 0
    while True:
        offset = decode_page_token(token)
        page, token = split_page(runs(engine, None, order_by, max_results=2, offset=offset), 2, offset)
        seen += page
        pages += 1
        if token is None:
            break
    assert seen == everything and pages == 3
    assert len(runs(engine, max_results=2)) == 3  # one row past the page says "there is more"
    assert runs(engine, max_results=5) == DEFAULT
    assert runs(engine, max_results=1, offset=50) == []


@pytest.mark.parametrize("flt", [
    "params.lr = '0.01'' OR 1=1 --'",
    "params.lr = '0.01\\' OR 1=1 --'",
    "params.`lr' OR '1'='1` = 'x'",
    "tags.team IN ('x'') OR 1=1 --')",
    "run_name = 'x''; DROP TABLE runs; --'",
    "tags.team LIKE '%'' OR ''1''=''1'",
])
def test_injection_attempts_are_literals(engine, flt):
    assert runs(engine, flt) == []
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(s.runs)).scalar() == len(RUNS)
        assert conn.execute(select(func.count()).select_from(s.params)).scalar() == sum(map(len, PARAMS_ROWS.values()))
    assert runs(engine) == DEFAULT


def test_injection_outside_quotes_is_a_syntax_error(engine):
    for flt in ("params.lr = '0.01' OR 1=1", "params.lr = '0.01'; DROP TABLE runs; --", "params.lr = '0.01' --"):
        with pytest.raises(InvalidArgumentError):
            runs(engine, flt)
    assert runs(engine) == DEFAULT


@pytest.mark.parametrize("flt, order_by, view, expected", [
    (None, None, "active", [2, 1]),
    (None, None, "all", [2, 1, 3]),
    (None, None, "deleted", [3]),
    (None, ["name"], "active", [1, 2]),
    (None, ["last_update_time DESC"], "all", [1, 2, 3]),
    ("name LIKE 'exp-%'", None, "all", [2, 1]),
    ("attributes.name ILIKE 'EXP-A'", None, "active", [1]),
    ("tags.team = 'nlp'", None, "active", [2]),
    ("tags.team IS NULL", None, "all", [3]),
    ("attributes.creation_time > 15", None, "active", [2]),
    ("experiment_id = 1", None, "active", [1]),
    (None, ["tags.team DESC"], "all", [1, 2, 3]),
])
def test_experiment_search(engine, flt, order_by, view, expected):
    assert ids(engine, build_experiment_search(flt, order_by, view, 100, 0)) == expected


def test_experiment_search_pages(engine):
    first = ids(engine, build_experiment_search(None, None, "all", 2, 0))
    assert first == [2, 1, 3]  # max_results + 1
    assert ids(engine, build_experiment_search(None, None, "all", 2, 2)) == [3]


@pytest.mark.parametrize("flt, order_by, expected", [
    (None, None, ["m3", "m2", "m1"]),
    ("name LIKE 'clf%'", None, ["m3", "m1"]),
    ("attributes.status = 'READY'", None, ["m3", "m1"]),
    ("source_run_id = 'r1'", None, ["m1"]),
    ("metrics.acc > 0.85", None, ["m2"]),
    ("params.depth = '5'", None, ["m3"]),
    ("params.depth IS NULL", None, ["m2"]),
    ("tags.stage = 'dev'", None, ["m2"]),
    ("creation_timestamp >= 200", None, ["m3", "m2"]),
    (None, ["metrics.acc DESC"], ["m2", "m1", "m3"]),
    (None, ["metrics.acc"], ["m1", "m2", "m3"]),
    (None, ["source_run_id DESC"], ["m2", "m1", "m3"]),
    (None, ["name"], ["m1", "m3", "m2"]),
])
def test_logged_model_search(engine, flt, order_by, expected):
    assert ids(engine, build_logged_model_search([1], flt, order_by, 100, 0)) == expected


def test_logged_model_views_and_experiments(engine):
    assert ids(engine, build_logged_model_search([1], None, None, 100, 0, view="deleted")) == ["m4"]
    assert ids(engine, build_logged_model_search([1, 2], "name = 'clf'", None, 100, 0)) == ["m5", "m1"]
