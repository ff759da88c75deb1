import pytest

from hangar.errors import InvalidURIError
from hangar.uri import full_model_name, parse_model_uri


def test_forms():
    assert parse_model_uri("models:/main.support.assistant/3").version == 3
    u = parse_model_uri("models:/assistant@champion")
    assert (u.name, u.alias) == ("main.default.assistant", "champion")
    assert parse_model_uri("models:/m-" + "a" * 32).logged_model_id == "m-" + "a" * 32
    r = parse_model_uri("runs:/abc123/model")
    assert (r.run_id, r.artifact_path) == ("abc123", "model")
    assert str(parse_model_uri("models:/a.b.c/2")) == "models:/a.b.c/2"


@pytest.mark.parametrize("bad", ["models:/a.b/1", "models:/x/0", "models:/x@bad alias", "runs:/abc",
                                 "runs:/abc/../etc", "models:/1bad", "s3://x", "models:/a.b.c.d/1"])
def test_bad_uris(bad):
    with pytest.raises(InvalidURIError):
        parse_model_uri(bad)


def test_bare_name_resolves_in_main_default():
    assert full_model_name("assistant") == "main.default.assistant"
    with pytest.raises(InvalidURIError, match="must start with a letter"):
        full_model_name("main.default.9lives")
