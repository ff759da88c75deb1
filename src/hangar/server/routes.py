"""THE route table: every route of the server, with its one permission requirement.

The guard enforces ``requires`` for each route before its handler runs; the permission tests
walk this table. A new route is added here and nowhere else.
"""

from __future__ import annotations

from hangar.governance.privileges import (
    APPLY_TAG,
    CATALOG,
    CREATE_MODEL,
    CREATE_SCHEMA,
    EDIT,
    EXECUTE,
    EXPERIMENT,
    MANAGE,
    METASTORE,
    READ,
    REGISTERED_MODEL,
    SCHEMA,
    USE_CATALOG,
    USE_SCHEMA,
)
from hangar.server import securables as s
from hangar.server.handlers import catalogs, governance, meta, models, tracking
from hangar.server.spec import AUTHENTICATED, PUBLIC, Requires, Route

V1 = "/api/v1"
_META = Requires(METASTORE, s.metastore, MANAGE, "the metastore")
_MODEL = "the model {name} (a bare name is in main.default)"


def _model(privilege: str) -> Requires:
    return Requires(REGISTERED_MODEL, s.model_in_path, privilege, _MODEL)


def _run(privilege: str) -> Requires:
    return Requires(EXPERIMENT, s.experiment_of_run, privilege, "the experiment of the run {run_id}")


ROUTES: tuple[Route, ...] = (
    # service
    Route("HEALTH", "GET", "/health", meta.health, PUBLIC, summary="The process is up"),
    Route("READY", "GET", "/ready", meta.ready, PUBLIC, summary="The store answers"),
    Route("OPENAPI", "GET", f"{V1}/openapi.json", meta.openapi, PUBLIC, summary="This API's OpenAPI document"),
    # identity
    Route("WHOAMI", "GET", f"{V1}/auth/whoami", governance.whoami, AUTHENTICATED, summary="The caller and its groups"),
    Route("LIST_MY_GRANTS", "GET", f"{V1}/auth/grants", governance.my_grants, AUTHENTICATED,
          summary="Grants held directly by the caller"),
    Route("CREATE_TOKEN", "POST", f"{V1}/auth/tokens", governance.create_own_token, AUTHENTICATED, 201,
          "A token for the caller (shown once)"),
    Route("LIST_TOKENS", "GET", f"{V1}/auth/tokens", governance.list_own_tokens, AUTHENTICATED,
          summary="The caller's tokens (never the secrets)"),
    Route("REVOKE_TOKEN", "DELETE", f"{V1}/auth/tokens/{{token_id}}", governance.revoke_own_token, AUTHENTICATED,
          summary="Revoke one of the caller's tokens"),
    Route("CREATE_PRINCIPAL", "POST", f"{V1}/principals", governance.create_principal, _META, 201,
          "Create a user, group or service principal"),
    Route("LIST_PRINCIPALS", "GET", f"{V1}/principals", governance.list_principals, AUTHENTICATED,
          summary="Principals (names and kinds)"),
    Route("GET_PRINCIPAL", "GET", f"{V1}/principals/{{principal}}", governance.get_principal, _META,
          summary="A principal, its groups and (for a group) its members"),
    Route("ADD_MEMBER", "POST", f"{V1}/principals/{{principal}}/members", governance.add_member, _META,
          summary="Add a member to a group"),
    Route("REMOVE_MEMBER", "DELETE", f"{V1}/principals/{{principal}}/members/{{member}}", governance.remove_member,
          _META, summary="Remove a member from a group"),
    Route("CREATE_TOKEN_FOR", "POST", f"{V1}/principals/{{principal}}/tokens", governance.create_token_for, _META,
          201, "A token for another principal (a service principal)"),
    # grants
    Route("LIST_GRANTS", "GET", f"{V1}/grants/{{securable_type}}/{{securable}}", governance.list_grants,
          Requires(s.securable_type_in_path, s.path("securable"), MANAGE, "the securable in the path"),
          summary="Grants made on a securable"),
    Route("GRANT", "POST", f"{V1}/grants/{{securable_type}}/{{securable}}", governance.add_grant,
          Requires(s.securable_type_in_path, s.path("securable"), MANAGE, "the securable in the path"), 201,
          "Grant a privilege to a principal"),
    Route("REVOKE", "DELETE", f"{V1}/grants/{{securable_type}}/{{securable}}", governance.remove_grant,
          Requires(s.securable_type_in_path, s.path("securable"), MANAGE, "the securable in the path"),
          summary="Revoke a privilege (?principal=&privilege=)"),
    Route("LIST_AUDIT", "GET", f"{V1}/audit", governance.list_audit, AUTHENTICATED,
          summary="Audit records of securables the caller may MANAGE (all for metastore admins)"),
    # catalogs and schemas
    Route("CREATE_CATALOG", "POST", f"{V1}/catalogs", catalogs.create_catalog, _META, 201, "Create a catalog"),
    Route("LIST_CATALOGS", "GET", f"{V1}/catalogs", catalogs.list_catalogs, AUTHENTICATED,
          summary="Catalogs the caller may use"),
    Route("GET_CATALOG", "GET", f"{V1}/catalogs/{{catalog}}", catalogs.get_catalog,
          Requires(CATALOG, s.path("catalog"), USE_CATALOG, "the catalog {catalog}")),
    Route("DELETE_CATALOG", "DELETE", f"{V1}/catalogs/{{catalog}}", catalogs.delete_catalog,
          Requires(CATALOG, s.path("catalog"), MANAGE, "the catalog {catalog}")),
    Route("LIST_SCHEMAS", "GET", f"{V1}/catalogs/{{catalog}}/schemas", catalogs.list_schemas,
          Requires(CATALOG, s.path("catalog"), USE_CATALOG, "the catalog {catalog}"),
          summary="Schemas of a catalog that the caller may use"),
    Route("CREATE_SCHEMA", "POST", f"{V1}/schemas", catalogs.create_schema,
          Requires(CATALOG, s.catalog_of_schema_in_body, CREATE_SCHEMA, "the catalog of the body's name 'c.s'"), 201),
    Route("GET_SCHEMA", "GET", f"{V1}/schemas/{{schema}}", catalogs.get_schema,
          Requires(SCHEMA, s.path("schema"), USE_SCHEMA, "the schema {schema} ('c.s')")),
    Route("DELETE_SCHEMA", "DELETE", f"{V1}/schemas/{{schema}}", catalogs.delete_schema,
          Requires(SCHEMA, s.path("schema"), MANAGE, "the schema {schema} ('c.s')")),
    # registered models, versions, aliases
    Route("CREATE_MODEL", "POST", f"{V1}/models", models.create_model,
          Requires(SCHEMA, s.schema_of_model_in_body, CREATE_MODEL, "the schema of the body's name 'c.s.m'"), 201),
    Route("SEARCH_MODELS", "GET", f"{V1}/models", models.search_models, AUTHENTICATED,
          summary="Models the caller may see (?catalog=&schema=&name_like=&alias=&filter=)"),
    Route("GET_MODEL", "GET", f"{V1}/models/{{name}}", models.get_model, _model(EXECUTE)),
    Route("UPDATE_MODEL", "PATCH", f"{V1}/models/{{name}}", models.update_model, _model(MANAGE)),
    Route("DELETE_MODEL", "DELETE", f"{V1}/models/{{name}}", models.delete_model, _model(MANAGE)),
    Route("SET_MODEL_TAG", "PUT", f"{V1}/models/{{name}}/tags/{{key}}", models.set_model_tag, _model(APPLY_TAG)),
    Route("DELETE_MODEL_TAG", "DELETE", f"{V1}/models/{{name}}/tags/{{key}}", models.delete_model_tag,
          _model(APPLY_TAG)),
    Route("LIST_VERSIONS", "GET", f"{V1}/models/{{name}}/versions", models.list_versions, _model(EXECUTE)),
    Route("GET_VERSION", "GET", f"{V1}/models/{{name}}/versions/{{version}}", models.get_version, _model(EXECUTE)),
    Route("UPDATE_VERSION", "PATCH", f"{V1}/models/{{name}}/versions/{{version}}", models.update_version,
          _model(MANAGE)),
    Route("DELETE_VERSION", "DELETE", f"{V1}/models/{{name}}/versions/{{version}}", models.delete_version,
          _model(MANAGE)),
    Route("SET_VERSION_TAG", "PUT", f"{V1}/models/{{name}}/versions/{{version}}/tags/{{key}}", models.set_version_tag,
          _model(APPLY_TAG)),
    Route("GET_ALIAS", "GET", f"{V1}/models/{{name}}/aliases/{{alias}}", models.get_alias, _model(EXECUTE)),
    Route("SET_ALIAS", "PUT", f"{V1}/models/{{name}}/aliases/{{alias}}", models.set_alias, _model(MANAGE)),
    Route("DELETE_ALIAS", "DELETE", f"{V1}/models/{{name}}/aliases/{{alias}}", models.delete_alias, _model(MANAGE)),
    Route("ALIAS_HISTORY", "GET", f"{V1}/models/{{name}}/alias-history", models.alias_history, _model(EXECUTE)),
    # experiments and runs
    Route("CREATE_EXPERIMENT", "POST", f"{V1}/experiments", tracking.create_experiment, AUTHENTICATED, 201,
          "Create an experiment; the caller owns it"),
    Route("SEARCH_EXPERIMENTS", "POST", f"{V1}/experiments/search", tracking.search_experiments, AUTHENTICATED,
          summary="Experiments the caller may READ"),
    Route("GET_EXPERIMENT", "GET", f"{V1}/experiments/{{experiment_id}}", tracking.get_experiment,
          Requires(EXPERIMENT, s.path("experiment_id"), READ, "the experiment {experiment_id}")),
    Route("CREATE_RUN", "POST", f"{V1}/runs", tracking.create_run,
          Requires(EXPERIMENT, s.experiment_in_body, EDIT, "the body's experiment_id"), 201),
    Route("SEARCH_RUNS", "POST", f"{V1}/runs/search", tracking.search_runs, AUTHENTICATED,
          summary="Runs of the requested experiments that the caller may READ"),
    Route("GET_RUN", "GET", f"{V1}/runs/{{run_id}}", tracking.get_run, _run(READ)),
    Route("UPDATE_RUN", "PATCH", f"{V1}/runs/{{run_id}}", tracking.update_run, _run(EDIT)),
    Route("LOG_BATCH", "POST", f"{V1}/runs/{{run_id}}/log-batch", tracking.log_batch, _run(EDIT)),
    Route("METRIC_HISTORY", "GET", f"{V1}/runs/{{run_id}}/metrics/{{key}}", tracking.metric_history, _run(READ)),
)
