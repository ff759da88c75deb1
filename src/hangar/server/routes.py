"""THE route table: every route of the server, with its one permission requirement.

The guard enforces ``requires`` for each route before its handler runs; the permission tests
walk this table. A new route is added here and nowhere else.
"""

from __future__ import annotations

from hangar.governance.privileges import (
    APPLY_TAG,
    CATALOG,
    CREATE_MODEL,
    CREATE_MODEL_VERSION,
    CREATE_SCHEMA,
    EDIT,
    ENDPOINT,
    EXECUTE,
    EXPERIMENT,
    MANAGE,
    METASTORE,
    QUERY,
    READ,
    REGISTERED_MODEL,
    SCHEMA,
    USE_CATALOG,
    USE_SCHEMA,
)
from hangar.server import securables as s
from hangar.server.handlers import (
    artifacts,
    catalogs,
    endpoints,
    experiments,
    governance,
    lineage,
    logged_models,
    meta,
    models,
    registration,
    runs,
)
from hangar.server.spec import AUTHENTICATED, PUBLIC, Requires, Route

V1 = "/api/v1"
_META = Requires(METASTORE, s.metastore, MANAGE, "the metastore")
_MODEL = "the model {name} (a bare name is in main.default)"


def _model(privilege: str) -> Requires:
    return Requires(REGISTERED_MODEL, s.model_in_path, privilege, _MODEL)


def _run(privilege: str) -> Requires:
    return Requires(EXPERIMENT, s.experiment_of_run, privilege, "the experiment of the run {run_id}")


def _exp(privilege: str) -> Requires:
    return Requires(EXPERIMENT, s.experiment_in_path, privilege, "the experiment {experiment_id}")


def _endpoint(privilege: str) -> Requires:
    return Requires(ENDPOINT, s.endpoint_in_path, privilege, "the endpoint {name}")


def _lm(privilege: str) -> Requires:
    return Requires(EXPERIMENT, s.experiment_of_logged_model, privilege, "the experiment of the logged model {model_id}")


_ART = f"{V1}/artifacts"
_RUN_ART, _LM_ART, _MV_ART = f"{_ART}/runs/{{run_id}}", f"{_ART}/logged-models/{{model_id}}", \
    f"{_ART}/models/{{name}}/versions/{{version}}"


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
    Route("CREATE_VERSION", "POST", f"{V1}/models/{{name}}/versions", registration.create_version,
          _model(CREATE_MODEL_VERSION), 201, "A PENDING version; upload its files, then finalize it"),
    Route("FINALIZE_VERSION", "POST", f"{V1}/models/{{name}}/versions/{{version}}/finalize",
          registration.finalize_version, _model(CREATE_MODEL_VERSION),
          summary="READY (the server computes and checks the checksums) or FAILED"),
    Route("LOAD_VERSION", "GET", f"{V1}/models/{{name}}/load", registration.load_version, _model(EXECUTE),
          summary="The READY version to load (?version= or ?alias=); audited as LOAD_MODEL"),
    # lineage and audit
    Route("GET_LINEAGE", "GET", f"{V1}/lineage", lineage.get_lineage, AUTHENTICATED,
          summary="Lineage around ?entity= (a URI or type with ?entity_id=), limited to what the caller may see"),
    # An edge naming a model_version needs EXECUTE on its registered model (the writer used the model);
    # else one naming a batch_job or run (a batch job's id is its run's id) needs EDIT on that run's
    # experiment; any other edge, MANAGE on the metastore. Not audited: tracking writes stay in their runs.
    Route("ADD_LINEAGE_EDGE", "POST", f"{V1}/lineage/edges", lineage.add_edge,
          Requires(s.lineage_edge_type, s.lineage_edge_securable, s.lineage_edge_privilege,
                   "the body's model_version end (EXECUTE on its model), else its batch_job or run end "
                   "(EDIT on the run's experiment), else the metastore (MANAGE)"),
          summary="Record a lineage edge {src_type, src_id, dst_type, dst_id} (idempotent)"),
    Route("VERIFY_AUDIT", "GET", f"{V1}/audit/verify", governance.verify_audit, _META,
          summary="Check the audit log's hash chain (?anchor=SEQ:HASH)"),
    # endpoints: definitions, and "may this caller query it?" for serving processes that forward their callers' tokens
    Route("CREATE_ENDPOINT", "POST", f"{V1}/endpoints", endpoints.create_endpoint, AUTHENTICATED, 201,
          "Create an endpoint {name, config}; the caller owns it", also=s.models_of_endpoint_in_body),
    Route("LIST_ENDPOINTS", "GET", f"{V1}/endpoints", endpoints.list_endpoints, AUTHENTICATED,
          summary="Endpoints the caller may query or manage"),
    Route("GET_ENDPOINT", "GET", f"{V1}/endpoints/{{name}}", endpoints.get_endpoint, _endpoint(QUERY)),
    Route("UPDATE_ENDPOINT", "PUT", f"{V1}/endpoints/{{name}}", endpoints.update_endpoint, _endpoint(MANAGE),
          summary="Replace the endpoint's config {config}; serving processes apply it live",
          also=s.models_of_endpoint_in_body),
    Route("DELETE_ENDPOINT", "DELETE", f"{V1}/endpoints/{{name}}", endpoints.delete_endpoint, _endpoint(MANAGE),
          summary="Delete the endpoint and the grants made on it"),
    Route("QUERY_ENDPOINT", "GET", f"{V1}/endpoints/{{name}}/query-access", endpoints.query_access,
          _endpoint(QUERY), summary="Whether the caller may query the endpoint (200 with its name, else 403, audited)"),
    Route("QUERY_REGISTERED_MODEL", "GET", f"{V1}/models/{{name}}/query-access", endpoints.query_access,
          _model(EXECUTE), summary="Whether the caller may call the model where it is served (200, else 403, audited)"),
    # experiments
    Route("CREATE_EXPERIMENT", "POST", f"{V1}/experiments", experiments.create_experiment, AUTHENTICATED, 201,
          "Create an experiment; the caller owns it"),
    Route("SEARCH_EXPERIMENTS", "POST", f"{V1}/experiments/search", experiments.search_experiments, AUTHENTICATED,
          summary="Experiments the caller may READ"),
    Route("GET_EXPERIMENT_BY_NAME", "GET", f"{V1}/experiment-by-name", experiments.get_experiment_by_name,
          AUTHENTICATED, summary="The experiment ?name= if the caller may READ it, else null"),
    Route("GET_EXPERIMENT", "GET", f"{V1}/experiments/{{experiment_id}}", experiments.get_experiment, _exp(READ)),
    Route("DELETE_EXPERIMENT", "DELETE", f"{V1}/experiments/{{experiment_id}}", experiments.delete_experiment,
          _exp(MANAGE)),
    Route("RESTORE_EXPERIMENT", "POST", f"{V1}/experiments/{{experiment_id}}/restore", experiments.restore_experiment,
          _exp(MANAGE)),
    Route("SET_EXPERIMENT_TAG", "POST", f"{V1}/experiments/{{experiment_id}}/tags", experiments.set_experiment_tag,
          _exp(EDIT)),
    # runs
    Route("CREATE_RUN", "POST", f"{V1}/runs", runs.create_run,
          Requires(EXPERIMENT, s.experiment_in_body, EDIT, "the body's experiment_id"), 201),
    Route("SEARCH_RUNS", "POST", f"{V1}/runs/search", runs.search_runs, AUTHENTICATED,
          summary="Runs of the requested experiments that the caller may READ"),
    Route("GET_RUN", "GET", f"{V1}/runs/{{run_id}}", runs.get_run, _run(READ)),
    Route("UPDATE_RUN", "PATCH", f"{V1}/runs/{{run_id}}", runs.update_run, _run(EDIT)),
    Route("DELETE_RUN", "DELETE", f"{V1}/runs/{{run_id}}", runs.delete_run, _run(EDIT)),
    Route("RESTORE_RUN", "POST", f"{V1}/runs/{{run_id}}/restore", runs.restore_run, _run(EDIT)),
    Route("LOG_BATCH", "POST", f"{V1}/runs/{{run_id}}/log-batch", runs.log_batch, _run(EDIT)),
    Route("LOG_PARAM", "POST", f"{V1}/runs/{{run_id}}/params", runs.log_param, _run(EDIT)),
    Route("LOG_METRIC", "POST", f"{V1}/runs/{{run_id}}/metrics", runs.log_metric, _run(EDIT)),
    Route("SET_TAG", "POST", f"{V1}/runs/{{run_id}}/tags", runs.set_tag, _run(EDIT)),
    Route("DELETE_TAG", "DELETE", f"{V1}/runs/{{run_id}}/tags", runs.delete_tag, _run(EDIT), summary="?key="),
    Route("LOG_INPUTS", "POST", f"{V1}/runs/{{run_id}}/inputs", runs.log_inputs, _run(EDIT)),
    Route("METRIC_HISTORY", "GET", f"{V1}/runs/{{run_id}}/metrics/{{key:path}}", runs.metric_history, _run(READ)),
    Route("FIND_LOGGED_MODEL", "GET", f"{V1}/runs/{{run_id}}/logged-models/{{name}}", logged_models.find_logged_model,
          _run(READ), summary="The newest READY logged model of that name from the run, or null"),
    # logged models
    Route("CREATE_LOGGED_MODEL", "POST", f"{V1}/logged-models", logged_models.create_logged_model,
          Requires(EXPERIMENT, s.experiment_in_body, EDIT, "the body's experiment_id"), 201),
    Route("SEARCH_LOGGED_MODELS", "POST", f"{V1}/logged-models/search", logged_models.search_logged_models,
          AUTHENTICATED, summary="Logged models of the requested experiments that the caller may READ"),
    Route("GET_LOGGED_MODEL", "GET", f"{V1}/logged-models/{{model_id}}", logged_models.get_logged_model, _lm(READ)),
    Route("FINALIZE_LOGGED_MODEL", "POST", f"{V1}/logged-models/{{model_id}}/finalize",
          logged_models.finalize_logged_model, _lm(EDIT)),
    Route("SET_LOGGED_MODEL_TAGS", "POST", f"{V1}/logged-models/{{model_id}}/tags", logged_models.set_logged_model_tags,
          _lm(EDIT)),
    Route("LOG_LOGGED_MODEL_METRICS", "POST", f"{V1}/logged-models/{{model_id}}/metrics",
          logged_models.log_logged_model_metrics, _lm(EDIT)),
    # artifacts: streamed, Range on downloads, bounded uploads; deletes take a file or a whole folder
    Route("LIST_RUN_ARTIFACTS", "GET", f"{_RUN_ART}/list", artifacts.lister("run"), _run(READ)),
    Route("DOWNLOAD_RUN_ARTIFACT", "GET", f"{_RUN_ART}/files/{{path:path}}", artifacts.downloader("run"), _run(READ),
          streaming=True),
    Route("UPLOAD_RUN_ARTIFACT", "PUT", f"{_RUN_ART}/files/{{path:path}}", artifacts.uploader("run"), _run(EDIT),
          streaming=True),
    Route("DELETE_RUN_ARTIFACT", "DELETE", f"{_RUN_ART}/files/{{path:path}}", artifacts.deleter("run"), _run(EDIT),
          summary="Delete a file, or a folder and everything in it (?missing_ok=true: no 404)"),
    Route("LIST_LOGGED_MODEL_ARTIFACTS", "GET", f"{_LM_ART}/list", artifacts.lister("logged_model"), _lm(READ)),
    Route("DOWNLOAD_LOGGED_MODEL_ARTIFACT", "GET", f"{_LM_ART}/files/{{path:path}}", artifacts.downloader("logged_model"),
          _lm(READ), streaming=True),
    Route("UPLOAD_LOGGED_MODEL_ARTIFACT", "PUT", f"{_LM_ART}/files/{{path:path}}", artifacts.uploader("logged_model"),
          _lm(EDIT), streaming=True, summary="Only while the logged model is PENDING"),
    Route("DELETE_LOGGED_MODEL_ARTIFACT", "DELETE", f"{_LM_ART}/files/{{path:path}}", artifacts.deleter("logged_model"),
          _lm(EDIT), summary="Only while the logged model is PENDING; a folder goes with everything in it"),
    Route("LIST_VERSION_ARTIFACTS", "GET", f"{_MV_ART}/list", artifacts.lister("version"), _model(EXECUTE)),
    Route("DOWNLOAD_VERSION_ARTIFACT", "GET", f"{_MV_ART}/files/{{path:path}}", artifacts.downloader("version"),
          _model(EXECUTE), streaming=True),
    Route("UPLOAD_VERSION_ARTIFACT", "PUT", f"{_MV_ART}/files/{{path:path}}", artifacts.uploader("version"),
          _model(CREATE_MODEL_VERSION), streaming=True, summary="Only while the version is PENDING"),
    Route("DELETE_VERSION_ARTIFACT", "DELETE", f"{_MV_ART}/files/{{path:path}}", artifacts.deleter("version"),
          _model(CREATE_MODEL_VERSION), summary="Only while the version is PENDING (else delete the version)"),
)
