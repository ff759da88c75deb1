import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from hangar.errors import InvalidArgumentError, SchemaMismatchError, UnknownParamError
from hangar.models.enforce import enforce_dataframe, enforce_params, enforce_payload
from hangar.models.infer import infer_schema, infer_signature
from hangar.models.signature import ColSpec, ModelSignature, ParamSchema, ParamSpec, Schema

CHAT = {"messages": [{"role": "user", "content": "hi"}]}


def test_infer_columns_from_dataframe():
    df = pd.DataFrame({"text": ["a", "b"], "n": [1, 2], "x": [0.5, 1.0], "ok": [True, False]})
    schema = infer_schema(df)
    assert [(c.name, c.type["type"], c.required) for c in schema.columns] == [
        ("text", "string", True), ("n", "long", True), ("x", "double", True), ("ok", "boolean", True)]


def test_infer_unnamed_column_from_list_of_strings():
    schema = infer_schema(["abc", "de"])
    assert not schema.is_named and schema.columns[0].type == {"type": "string"}


def test_infer_chat_payload_matches_mlflow_encoding():
    sig = infer_signature(CHAT, params={"temperature": 0.1, "max_tokens": 64})
    d = sig.to_dict()
    assert d["inputs"] == (
        '[{"type": "array", "items": {"type": "object", "properties": {"role": {"type": "string", '
        '"required": true}, "content": {"type": "string", "required": true}}}, "name": "messages", '
        '"required": true}]')
    assert '"name": "max_tokens", "default": 64, "shape": null, "type": "long"' in d["params"]
    assert ModelSignature.from_dict(d) == sig


def test_infer_optional_column_and_merged_types():
    schema = infer_schema([{"a": 1, "b": "x"}, {"a": 2.5}])
    a, b = schema.columns
    assert a.type == {"type": "double"} and a.required
    assert b.type == {"type": "string"} and not b.required


def test_enforce_coerces_int_to_double_and_names_bad_column():
    schema = Schema([ColSpec({"type": "double"}, "x"), ColSpec({"type": "string"}, "t")])
    out = enforce_dataframe({"x": [1, 2], "t": ["a", "b"]}, schema)
    assert out["x"].dtype == np.float64
    with pytest.raises(SchemaMismatchError, match=r"'t'.*string.*int64"):
        enforce_dataframe({"x": [1], "t": [3]}, schema)


def test_enforce_reports_missing_columns_with_what_arrived():
    schema = Schema([ColSpec({"type": "string"}, "question")])
    with pytest.raises(SchemaMismatchError) as err:
        enforce_dataframe([{"questoin": "hi"}], schema)
    assert "question" in err.value.message and "questoin" in err.value.message


def test_enforce_required_value_missing_names_the_row():
    schema = Schema([ColSpec({"type": "string"}, "q")])
    with pytest.raises(SchemaMismatchError, match="row 1"):
        enforce_dataframe({"q": ["a", None]}, schema)


def test_enforce_rejects_float_for_long_and_bool_for_long():
    schema = Schema([ColSpec({"type": "long"}, "n")])
    with pytest.raises(SchemaMismatchError, match="'n', row 0 expects long but got float"):
        enforce_dataframe({"n": [1.5]}, schema)
    with pytest.raises(SchemaMismatchError):
        enforce_dataframe({"n": [True]}, schema)


@pytest.mark.parametrize("data", [
    pd.DataFrame({"q": ["a", "b"]}),
    [{"q": "a"}, {"q": "b"}],
    {"q": ["a", "b"]},
    pa.table({"q": ["a", "b"]}),
    ["a", "b"],
])
def test_every_input_shape_becomes_the_same_frame(data):
    schema = Schema([ColSpec({"type": "string"}, "q")])
    out = enforce_dataframe(data, schema)
    assert out["q"].tolist() == ["a", "b"]


def test_datetime_strings_are_parsed():
    schema = Schema([ColSpec({"type": "datetime"}, "when")])
    out = enforce_dataframe({"when": ["2024-01-02T03:04:05"]}, schema)
    assert out["when"].iloc[0] == pd.Timestamp(dt.datetime(2024, 1, 2, 3, 4, 5))


def test_payload_checks_nested_fields():
    sig = infer_signature(CHAT)
    assert enforce_payload(CHAT, sig.inputs) == CHAT
    with pytest.raises(SchemaMismatchError, match=r"messages'\[0\] is missing the required field 'content'"):
        enforce_payload({"messages": [{"role": "user"}]}, sig.inputs)
    with pytest.raises(SchemaMismatchError, match="expects array"):
        enforce_payload({"messages": "hello"}, sig.inputs)
    with pytest.raises(SchemaMismatchError, match="JSON object"):
        enforce_payload("hello", sig.inputs)


def test_params_defaults_types_and_unknown_names():
    schema = ParamSchema([ParamSpec("temperature", "double", 0.1), ParamSpec("max_tokens", "long", 64),
                          ParamSpec("stop", "string", None, shape=(-1,))])
    assert enforce_params({"temperature": 1}, schema) == {"temperature": 1.0, "max_tokens": 64, "stop": None}
    assert enforce_params({"stop": ["a"]}, schema)["stop"] == ["a"]
    with pytest.raises(UnknownParamError, match="topk"):
        enforce_params({"topk": 3}, schema)
    with pytest.raises(SchemaMismatchError, match="'max_tokens' expects long"):
        enforce_params({"max_tokens": "many"}, schema)
    with pytest.raises(UnknownParamError, match="accepts no params"):
        enforce_params({"x": 1}, None)


def test_bad_schema_definitions_are_rejected():
    with pytest.raises(InvalidArgumentError, match="unknown type"):
        ColSpec.from_dict({"type": "str", "name": "x"})
    with pytest.raises(InvalidArgumentError, match="unknown type"):
        ParamSpec("p", "float64")
    with pytest.raises(InvalidArgumentError, match="all named or all unnamed"):
        Schema([ColSpec({"type": "string"}, "a"), ColSpec({"type": "string"})])
