"""MLflow-style search: filter strings and ``order_by`` lists, parsed by hand and compiled to
SQLAlchemy Core selects in which every value and key is a bound parameter.

Filter grammar (keywords case-insensitive)::

    filter     := comparison ( AND comparison )*
    comparison := identifier op value
    identifier := [ entity "." ] key          # a bare key is an attribute: run_name = 'x'
    key        := word | `back quoted` | "double quoted"     # quotes allow dots and spaces
    op         := = | != | > | >= | < | <= | LIKE | ILIKE | IN | NOT IN | IS NULL | IS NOT NULL
    value      := 'string' | "string" | number | ( 'string' [, 'string']* )

Entities: ``metrics``/``metric``, ``params``/``param``/``parameters``, ``tags``/``tag``,
``attributes``/``attribute``/``attr`` (and ``run`` for runs), ``datasets``/``dataset`` (runs only).
Inside a string a quote is escaped by doubling it or with a backslash; ``\\\\`` is one backslash and
any other backslash pair is kept as written, so ``'50\\%'`` matches a literal ``%`` in LIKE.
There is no OR and no parentheses (as in MLflow); IN covers alternatives of one key.

Semantics follow MLflow: ``tags.x != 'a'`` (and NOT IN) matches runs that *have* tag ``x`` with
another value; LIKE is case-sensitive on every database, ILIKE is not (ASCII only on SQLite);
runs without an ``order_by`` metric, param or tag sort last whichever the direction; ties are
broken by the target's default keys and finally its id, so paging is deterministic.

A built select returns the id first, then the order keys, ordered, with ``LIMIT max_results + 1``
so that a caller sees whether another page exists (see :func:`split_page`).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from sqlalchemy import BigInteger, Boolean, Float, String, and_, case, exists, false, literal, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement

from hangar.errors import InvalidArgumentError
from hangar.store import schema as s

__all__ = [
    "ATTRIBUTES",
    "DATASETS",
    "EXPERIMENT_SEARCH",
    "LOGGED_MODEL_SEARCH",
    "MAX_RESULTS_LIMIT",
    "METRICS",
    "PARAMS",
    "RUN_SEARCH",
    "TAGS",
    "Comparison",
    "OrderTerm",
    "SearchTarget",
    "build_experiment_search",
    "build_logged_model_search",
    "build_run_search",
    "build_search",
    "decode_page_token",
    "encode_page_token",
    "parse_filter",
    "parse_order_by",
    "split_page",
]

METRICS, PARAMS, TAGS, ATTRIBUTES, DATASETS = "metrics", "params", "tags", "attributes", "datasets"
MAX_RESULTS_LIMIT = 50_000
_MAX_OFFSET = 2**31 - 1 - MAX_RESULTS_LIMIT  # LIMIT and OFFSET are 32-bit on PostgreSQL

NUMERIC_OPS = ("=", "!=", ">", ">=", "<", "<=")
STRING_OPS = ("=", "!=", "LIKE", "ILIKE", "IN", "NOT IN")
NULL_OPS = ("IS NULL", "IS NOT NULL")

_ENTITY_ALIASES = {
    METRICS: ("metric", "metrics"),
    PARAMS: ("param", "params", "parameter", "parameters"),
    TAGS: ("tag", "tags"),
    ATTRIBUTES: ("attribute", "attributes", "attr"),
    DATASETS: ("dataset", "datasets"),
}


@dataclass(frozen=True)
class Comparison:
    """One parsed clause. ``entity`` is one of METRICS, PARAMS, TAGS, ATTRIBUTES, DATASETS (an
    attribute key is the canonical one: ``created`` becomes ``start_time``); ``op`` is upper-case
    (``NOT IN``, ``IS NULL``); ``value`` is a str, an int or float, a tuple of str (IN) or None."""

    entity: str
    key: str
    op: str
    value: Any


@dataclass(frozen=True)
class OrderTerm:
    entity: str
    key: str
    ascending: bool = True


@dataclass(frozen=True)
class SearchTarget:
    """What can be searched on one kind of object, and where it lives in the schema.

    ``attributes`` maps an attribute key to (column name, "string" | "number"); ``children`` maps
    METRICS/PARAMS/TAGS to a key-value table and the column that points at ``table``'s id."""

    name: str
    table: Any = field(repr=False)
    id_column: str
    attributes: Mapping[str, tuple[str, str]]
    children: Mapping[str, tuple[Any, str]] = field(default_factory=dict, repr=False)
    aliases: Mapping[str, str] = field(default_factory=dict)  # attribute alias -> attribute key
    extra_entity_names: Mapping[str, str] = field(default_factory=dict)  # e.g. run -> attributes
    dataset_keys: tuple[str, ...] = ()
    default_order: tuple[OrderTerm, ...] = ()
    tiebreakers: tuple[OrderTerm, ...] = ()

    @property
    def entity_names(self) -> dict[str, str]:
        allowed = {ATTRIBUTES, *self.children, *([DATASETS] if self.dataset_keys else [])}
        names = {a: e for e, aliases in _ENTITY_ALIASES.items() if e in allowed for a in aliases}
        return {**names, **self.extra_entity_names}


def _attr(column: str, kind: str = "string") -> tuple[str, str]:
    return (column, kind)


RUN_SEARCH = SearchTarget(
    name="run", table=s.runs, id_column="run_id",
    attributes={"run_id": _attr("run_id"), "run_name": _attr("run_name"), "status": _attr("status"),
                "user_id": _attr("user_id"), "artifact_uri": _attr("artifact_uri"),
                "lifecycle_stage": _attr("lifecycle_stage"), "parent_run_id": _attr("parent_run_id"),
                "start_time": _attr("start_time", "number"), "end_time": _attr("end_time", "number")},
    children={METRICS: (s.latest_metrics, "run_id"), PARAMS: (s.params, "run_id"), TAGS: (s.tags, "run_id")},
    aliases={"created": "start_time", "run name": "run_name", "run_uuid": "run_id"},
    extra_entity_names={"run": ATTRIBUTES},
    dataset_keys=("name", "digest", "context"),
    default_order=(OrderTerm(ATTRIBUTES, "start_time", False),),
    tiebreakers=(OrderTerm(ATTRIBUTES, "start_time", False), OrderTerm(ATTRIBUTES, "run_id")),
)

EXPERIMENT_SEARCH = SearchTarget(
    name="experiment", table=s.experiments, id_column="experiment_id",
    attributes={"name": _attr("name"), "artifact_location": _attr("artifact_location"),
                "lifecycle_stage": _attr("lifecycle_stage"), "experiment_id": _attr("experiment_id", "number"),
                "creation_time": _attr("creation_time", "number"),
                "last_update_time": _attr("last_update_time", "number")},
    children={TAGS: (s.experiment_tags, "experiment_id")},
    default_order=(OrderTerm(ATTRIBUTES, "creation_time", False),),
    tiebreakers=(OrderTerm(ATTRIBUTES, "experiment_id"),),
)

LOGGED_MODEL_SEARCH = SearchTarget(
    name="logged model", table=s.logged_models, id_column="model_id",
    attributes={"model_id": _attr("model_id"), "name": _attr("name"), "status": _attr("status"),
                "source_run_id": _attr("source_run_id"), "artifact_location": _attr("artifact_location"),
                "lifecycle_stage": _attr("lifecycle_stage"), "creation_time": _attr("creation_time", "number"),
                "last_updated_time": _attr("last_updated_time", "number")},
    children={METRICS: (s.logged_model_metrics, "model_id"), PARAMS: (s.logged_model_params, "model_id"),
              TAGS: (s.logged_model_tags, "model_id")},
    aliases={"creation_timestamp": "creation_time", "last_updated_timestamp": "last_updated_time"},
    default_order=(OrderTerm(ATTRIBUTES, "creation_time", False),),
    tiebreakers=(OrderTerm(ATTRIBUTES, "model_id"),),
)


# -- parsing ---------------------------------------------------------------------------------

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_UNQUOTED_KEY = re.compile(r"[\w.\-/:@]+")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?![\w.])")
_OP_CHARS = "<>=!"
_AND = re.compile(r"\s+and\s+", re.IGNORECASE)
_GOT = re.compile(r"""[A-Za-z_][\w.]*|[+-]?\d[\w.]*|[<>=!]+|'[^']*'?|"[^"]*"?|`[^`]*`?|\S""")


class _Parser:
    """A cursor over one filter string (or one ``order_by`` entry) that fails with the clause,
    the position, what was expected and what was found."""

    def __init__(self, text: str, target: SearchTarget, what: str):
        self.text, self.target, self.what = text, target, what
        self.pos = self.clause_start = 0

    # low level
    def at_end(self) -> bool:
        self.skip_ws()
        return self.pos >= len(self.text)

    def skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek_word(self) -> str:
        m = _WORD.match(self.text, self.pos)
        return m.group() if m else ""

    def take_word(self) -> str:
        word = self.peek_word()
        self.pos += len(word)
        return word

    def fail(self, expected: str, pos: int | None = None, got: str | None = None) -> NoReturn:
        pos = self.pos if pos is None else pos
        if got is None:
            m = _GOT.match(self.text, pos)
            got = repr(m.group()) if m else "the end of the input"
        end = _AND.search(self.text, max(pos, self.clause_start))
        snippet = self.text[self.clause_start:end.start() if end else len(self.text)].strip()
        if len(snippet) > 80:
            snippet = snippet[:77] + "..."
        raise InvalidArgumentError(f"Invalid {self.what} at {snippet!r} (position {pos}): expected {expected}, got {got}")

    # pieces
    def quoted(self, kind: str) -> str:
        """A quoted string or key starting at the cursor: doubled quotes and backslash-quote
        escape the quote, ``\\\\`` is one backslash, other backslash pairs stay as written."""
        start, quote = self.pos, self.text[self.pos]
        out, i, n = [], self.pos + 1, len(self.text)
        while i < n:
            c = self.text[i]
            if c == "\\" and i + 1 < n and self.text[i + 1] in ("\\", "'", '"', "`"):
                out.append(self.text[i + 1])
                i += 2
            elif c == quote and i + 1 < n and self.text[i + 1] == quote:
                out.append(quote)
                i += 2
            elif c == quote:
                self.pos = i + 1
                return "".join(out)
            else:
                out.append(c)
                i += 1
        self.fail(f"a closing {quote} for the {kind} that opens here", pos=start, got="the end of the input")

    def identifier(self, for_order: bool = False) -> tuple[str, str]:
        self.skip_ws()
        start, text, target = self.pos, self.text, self.target
        entities = target.entity_names
        example = "an identifier such as metrics.acc, params.lr, tags.team or an attribute such as " + (
            ", ".join(sorted(target.attributes)[:3]))
        if start < len(text) and text[start] == "(":
            self.fail("a comparison (parentheses are not supported: join comparisons with AND)")
        if start < len(text) and text[start] in "`\"":
            entity, key = ATTRIBUTES, self.quoted("key")
        else:
            word = self.take_word()
            if not word:
                self.fail(example)
            if self.pos < len(text) and text[self.pos] == ".":
                if word.lower() not in entities:
                    self.fail(f"an entity prefix, one of {', '.join(sorted(entities))}", pos=start, got=repr(word))
                entity = entities[word.lower()]
                self.pos += 1
                if self.pos < len(text) and text[self.pos] in "`\"":
                    key = self.quoted("key")
                else:
                    m = _UNQUOTED_KEY.match(text, self.pos)
                    if not m:
                        self.fail(f"a key after {word}. (quote a key with spaces in backquotes: {word}.`my key`)")
                    key, self.pos = m.group(), m.end()
            else:
                entity, key = ATTRIBUTES, word
        if not key:
            self.fail("a non-empty key", pos=start)
        if entity == ATTRIBUTES:
            key = target.aliases.get(key.lower(), key.lower())
            if key not in target.attributes:
                article = "an" if target.name[0] in "aeiou" else "a"
                prefixes = " or ".join(f"{e}." for e in (METRICS, PARAMS, TAGS) if e in target.children)
                self.fail(f"{article} {target.name} attribute, one of {', '.join(sorted(target.attributes))}"
                          + (f" (or a key with an entity prefix: {prefixes})" if prefixes else ""), pos=start, got=repr(key))
        elif entity == DATASETS:
            if for_order:
                self.fail("an orderable key (datasets.* cannot be ordered by)", pos=start, got=repr(f"datasets.{key}"))
            if key not in target.dataset_keys:
                self.fail(f"a dataset key, one of {', '.join(target.dataset_keys)}", pos=start, got=repr(key))
        return entity, key

    def operator(self) -> str | None:
        self.skip_ws()
        text, start = self.text, self.pos
        if start < len(text) and text[start] in _OP_CHARS:
            end = start
            while end < len(text) and text[end] in _OP_CHARS:
                end += 1
            op = text[start:end]
            if op in NUMERIC_OPS:
                self.pos = end
                return op
            return None
        word = self.peek_word().upper()
        if word in ("LIKE", "ILIKE", "IN"):
            self.take_word()
            return word
        if word in ("NOT", "IS"):
            self.take_word()
            parts = [word]
            self.skip_ws()
            if word == "IS" and self.peek_word().upper() == "NOT":
                self.take_word()
                self.skip_ws()
                parts.append("NOT")
            parts.append(self.take_word().upper())
            op = " ".join(parts)
            if op in ("NOT IN", "IS NULL", "IS NOT NULL"):
                return op
            self.pos = start
        return None

    def comparison(self) -> Comparison:
        entity, key = self.identifier()
        kind = self.value_kind(entity, key)
        ops = (NUMERIC_OPS if kind == "number" else STRING_OPS) + (NULL_OPS if entity in (PARAMS, TAGS) else ())
        self.skip_ws()
        op_pos = self.pos
        op = self.operator()
        if op not in ops:
            self.fail(f"one of {', '.join(ops)} after {self.describe(entity, key)}", pos=op_pos)
        self.skip_ws()
        if op in NULL_OPS:
            value = None
        elif op in ("IN", "NOT IN"):
            value = self.string_list(op)
        else:
            value = self.scalar(kind, entity, key)
        return Comparison(entity, key, op, value)

    def value_kind(self, entity: str, key: str) -> str:
        if entity == METRICS:
            return "number"
        if entity == ATTRIBUTES:
            return self.target.attributes[key][1]
        return "string"

    @staticmethod
    def describe(entity: str, key: str) -> str:
        return f"{entity}.{key}" if entity != ATTRIBUTES else f"attribute {key}"

    def scalar(self, kind: str, entity: str, key: str) -> str | int | float:
        text, start = self.text, self.pos
        what = self.describe(entity, key)
        if start < len(text) and text[start] in "'\"":
            value = self.quoted("string")
            if kind == "number":
                self.fail(f"a number for {what}, which is numeric (write it without quotes)", pos=start,
                          got=f"the string {text[start:self.pos]}")
            return value
        m = _NUMBER.match(text, start)
        if m:
            if kind == "string":
                self.fail(f"a quoted string for {what}, which holds strings (write '{m.group()}')", pos=start)
            self.pos = m.end()
            tok = m.group()
            number = int(tok) if re.fullmatch(r"[+-]?\d+", tok) else float(tok)
            return number if isinstance(number, float) or abs(number) < 2**63 else float(number)
        self.fail(f"a number for {what}" if kind == "number" else f"a quoted string for {what}")

    def string_list(self, op: str) -> tuple[str, ...]:
        if self.pos >= len(self.text) or self.text[self.pos] != "(":
            self.fail(f"a parenthesized list of quoted strings after {op}, such as ('a', 'b')")
        self.pos += 1
        items: list[str] = []
        while True:
            self.skip_ws()
            if self.pos < len(self.text) and self.text[self.pos] in "'\"":
                items.append(self.quoted("string"))
            else:
                self.fail(f"a quoted string in the {op} list" + ("" if items else " (the list cannot be empty)"))
            self.skip_ws()
            c = self.text[self.pos] if self.pos < len(self.text) else ""
            self.pos += 1
            if c == ")":
                return tuple(items)
            if c != ",":
                self.fail(f"',' or ')' in the {op} list", pos=self.pos - 1)


def parse_filter(filter_string: str | None, target: SearchTarget = RUN_SEARCH) -> list[Comparison]:
    """The comparisons of an MLflow-style filter, joined by AND; an empty filter gives []."""
    if filter_string is None:
        return []
    if not isinstance(filter_string, str):
        raise InvalidArgumentError(f"filter_string must be a string, got {type(filter_string).__name__}")
    p = _Parser(filter_string, target, "filter")
    if p.at_end():
        return []
    out = []
    while True:
        p.skip_ws()
        p.clause_start = p.pos
        if p.at_end():
            p.fail("a comparison after AND")
        out.append(p.comparison())
        if p.at_end():
            return out
        word = p.peek_word().lower()
        if word == "or":
            raise InvalidArgumentError(
                f"Invalid filter at position {p.pos}: OR is not supported; comparisons can only be joined with AND. "
                "Use IN ('a', 'b') for alternatives of one param, tag or attribute, or run one search per alternative.")
        if word != "and":
            p.fail("AND or the end of the filter")
        p.take_word()


def parse_order_by(order_by: Sequence[str] | str | None, target: SearchTarget = RUN_SEARCH) -> list[OrderTerm]:
    """``["metrics.acc DESC", "params.lr", "start_time ASC"]`` as OrderTerms (ASC by default)."""
    if order_by is None:
        return []
    if isinstance(order_by, str):
        order_by = [order_by]
    if not isinstance(order_by, Sequence):
        raise InvalidArgumentError(f"order_by must be a list of strings, got {type(order_by).__name__}")
    terms, seen = [], set()
    for item in order_by:
        if not isinstance(item, str):
            raise InvalidArgumentError(f"order_by entries must be strings such as 'metrics.acc DESC', got {item!r}")
        p = _Parser(item, target, "order_by clause")
        if p.at_end():
            p.fail("a key to order by, such as metrics.acc DESC")
        entity, key = p.identifier(for_order=True)
        ascending = True
        if not p.at_end():
            pos = p.pos
            word = p.take_word().upper()
            if word not in ("ASC", "DESC"):
                p.fail("ASC, DESC or the end of the order_by clause", pos=pos)
            ascending = word == "ASC"
            if not p.at_end():
                p.fail("the end of the order_by clause")
        if (entity, key) in seen:
            raise InvalidArgumentError(f"order_by names {entity}.{key} more than once: {list(order_by)!r}")
        seen.add((entity, key))
        terms.append(OrderTerm(entity, key, ascending))
    return terms


# -- SQL ---------------------------------------------------------------------------------------


class _CaseSensitiveLike(ColumnElement):
    """``column LIKE pattern`` that is case-sensitive on every dialect: GLOB on SQLite (whose LIKE
    ignores ASCII case), LIKE elsewhere. The escape character is a backslash."""

    type = Boolean()
    inherit_cache = False  # the pattern is rendered per dialect at compile time
    _is_implicitly_boolean = True  # no "= 1" after it on databases without a boolean type

    def __init__(self, column, pattern: str):
        self.column = column
        self.like_pattern, self.glob_pattern = _like_patterns(pattern)


@compiles(_CaseSensitiveLike)
def _compile_like(element, compiler, **kw):
    return compiler.process(element.column.like(literal(element.like_pattern, String), escape="\\"), **kw)


@compiles(_CaseSensitiveLike, "sqlite")
def _compile_glob(element, compiler, **kw):
    return compiler.process(element.column.op("GLOB", is_comparison=True)(literal(element.glob_pattern, String)), **kw)


def _like_patterns(pattern: str) -> tuple[str, str]:
    """A LIKE pattern (backslash escapes) as a normalized LIKE pattern and the equivalent GLOB."""
    like, glob, i = [], [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            i += 1
            c = pattern[i]
        elif c in "%_":
            like.append(c)
            glob.append("*" if c == "%" else "?")
            i += 1
            continue
        like.append("\\" + c if c in "%_\\" else c)
        glob.append(f"[{c}]" if c in "*?[" else c)
        i += 1
    return "".join(like), "".join(glob)


def _condition(column, op: str, value, numeric: bool, as_float: bool = False):
    if op in ("IN", "NOT IN"):
        return column.in_(list(value)) if op == "IN" else column.not_in(list(value))
    if op == "LIKE":
        return _CaseSensitiveLike(column, value)
    if op == "ILIKE":
        return column.ilike(literal(_like_patterns(value)[0], String), escape="\\")
    if not numeric:
        bound = literal(value, String)
    elif isinstance(value, float) or as_float:
        bound = literal(float(value), Float)
    else:
        bound = literal(value, BigInteger)  # Integer would be cast to a 32-bit INTEGER on PostgreSQL
    return {"=": column.__eq__, "!=": column.__ne__, ">": column.__gt__, ">=": column.__ge__,
            "<": column.__lt__, "<=": column.__le__}[op](bound)


def _null_last(expr, ascending: bool) -> list:
    """Order clauses that put NULL (a run without the key) last in either direction."""
    return [case((expr.is_(None), 1), else_=0), expr.asc() if ascending else expr.desc()]


def build_search(target: SearchTarget, where: Sequence, filter_string: str | None, order_by: Sequence[str] | None,
                 max_results: int, offset: int, *, extra_filters: Sequence[Comparison] = ()):
    """The select behind every search: ``target``'s id, then one labelled column per order key
    (``order_0``, ...), filtered by ``where`` (SQL conditions the caller owns, such as the
    experiment and the lifecycle stage) and by the filter string, ordered, and limited to
    ``max_results + 1`` rows from ``offset``.

    A metric, param or tag that is compared becomes an inner join on its key-value table (one row
    per object and key, so no duplicates), which lets the database drive the query from the
    ``(key, value)`` index; one that is only ordered by becomes an outer join."""
    _check_page(max_results, offset)
    comparisons = [*parse_filter(filter_string, target), *extra_filters]
    terms = parse_order_by(order_by, target) or list(target.default_order)
    table = target.table
    id_col = table.c[target.id_column]
    from_, conditions = table, list(where)
    joined: dict[tuple[str, str], Any] = {}

    by_key: dict[tuple[str, str], list[Comparison]] = {}
    for c in comparisons:
        if c.entity == ATTRIBUTES:
            col, kind = target.attributes[c.key]
            conditions.append(_condition(table.c[col], c.op, c.value, kind == "number"))
        elif c.entity in target.children:
            by_key.setdefault((c.entity, c.key), []).append(c)
    for n, ((entity, key), group) in enumerate(by_key.items()):
        child, fk = target.children[entity]
        if any(c.op == "IS NULL" for c in group):
            conditions.append(~exists().where(child.c[fk] == id_col, child.c.key == literal(key, String)))
            group = [c for c in group if c.op != "IS NULL"]
            if not group:
                continue
        alias = child.alias(f"f{n}_{entity}")
        on = [alias.c[fk] == id_col, alias.c.key == literal(key, String)]
        on += [_condition(alias.c.value, c.op, c.value, entity == METRICS, as_float=True)
               for c in group if c.op != "IS NOT NULL"]
        from_ = from_.join(alias, and_(*on))
        joined[(entity, key)] = alias
    dataset_filters = [c for c in comparisons if c.entity == DATASETS]
    if dataset_filters:
        conditions.append(_dataset_condition(id_col, dataset_filters))

    for tie in target.tiebreakers:
        if all((t.entity, t.key) != (tie.entity, tie.key) for t in terms):
            terms.append(tie)
    columns, order_clauses = [id_col], []
    for n, term in enumerate(terms):
        if term.entity == ATTRIBUTES:
            col = table.c[target.attributes[term.key][0]]
            nullable = col.nullable
        elif (term.entity, term.key) in joined:
            col, nullable = joined[(term.entity, term.key)].c.value, False
        else:
            child, fk = target.children[term.entity]
            alias = child.alias(f"o{n}_{term.entity}")
            from_ = from_.outerjoin(alias, and_(alias.c[fk] == id_col, alias.c.key == literal(term.key, String)))
            col, nullable = alias.c.value, True
        if col is not id_col:
            columns.append(col.label(f"order_{n}"))
        order_clauses += _null_last(col, term.ascending) if nullable else [col.asc() if term.ascending else col.desc()]

    stmt = select(*columns).select_from(from_)
    if conditions:
        stmt = stmt.where(*conditions)
    return stmt.order_by(*order_clauses).limit(max_results + 1).offset(offset)


def _dataset_condition(run_id_col, comparisons: Sequence[Comparison]):
    """Runs with one dataset input that meets every dataset comparison (an uncorrelated IN)."""
    cols = {"name": s.datasets.c.name, "digest": s.datasets.c.digest, "context": s.inputs.c.context}
    sub = (select(s.inputs.c.run_id)
           .join(s.datasets, s.datasets.c.dataset_id == s.inputs.c.dataset_id)
           .where(*[_condition(cols[c.key], c.op, c.value, False) for c in comparisons]))
    return run_id_col.in_(sub)


def _check_page(max_results, offset) -> None:
    if isinstance(max_results, bool) or not isinstance(max_results, int) or not 1 <= max_results <= MAX_RESULTS_LIMIT:
        raise InvalidArgumentError(f"max_results must be an integer from 1 to {MAX_RESULTS_LIMIT}, got {max_results!r}")
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= _MAX_OFFSET:
        raise InvalidArgumentError(f"offset must be an integer from 0 to {_MAX_OFFSET}, got {offset!r}")


_VIEWS = {"active": ("active",), "active_only": ("active",), "deleted": ("deleted",),
          "deleted_only": ("deleted",), "all": None, 1: ("active",), 2: ("deleted",), 3: None}


def _lifecycle(column, view) -> list:
    key = view.lower() if isinstance(view, str) else view
    if key not in _VIEWS:
        raise InvalidArgumentError(f"view must be one of active, deleted, all, got {view!r}")
    stages = _VIEWS[key]
    return [] if stages is None else [column.in_(stages)]


def _experiment_filter(column, experiment_ids) -> list:
    if isinstance(experiment_ids, (str, int)):
        experiment_ids = [experiment_ids]
    try:
        ids = [int(e) for e in experiment_ids]
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"experiment_ids must be a list of experiment ids, got {experiment_ids!r}") from None
    return [column.in_(ids)] if ids else [false()]


def build_run_search(experiment_ids: Sequence[int], filter_string: str | None = None,
                     order_by: Sequence[str] | None = None, view: str = "active", max_results: int = 1000,
                     offset: int = 0):
    """Runs of ``experiment_ids`` in ``view`` ("active", "deleted", "all"): select of ``run_id``
    then the order keys; default order ``start_time DESC, run_id``."""
    where = _experiment_filter(s.runs.c.experiment_id, experiment_ids) + _lifecycle(s.runs.c.lifecycle_stage, view)
    return build_search(RUN_SEARCH, where, filter_string, order_by, max_results, offset)


def build_experiment_search(filter_string: str | None = None, order_by: Sequence[str] | None = None,
                            view: str = "active", max_results: int = 1000, offset: int = 0):
    """Experiments in ``view``: select of ``experiment_id`` then the order keys; default order
    ``creation_time DESC, experiment_id``."""
    where = _lifecycle(s.experiments.c.lifecycle_stage, view)
    return build_search(EXPERIMENT_SEARCH, where, filter_string, order_by, max_results, offset)


def build_logged_model_search(experiment_ids: Sequence[int], filter_string: str | None = None,
                              order_by: Sequence[str] | None = None, max_results: int = 1000, offset: int = 0,
                              *, view: str = "active"):
    """Logged models of ``experiment_ids``: select of ``model_id`` then the order keys; default
    order ``creation_time DESC, model_id``."""
    where = (_experiment_filter(s.logged_models.c.experiment_id, experiment_ids)
             + _lifecycle(s.logged_models.c.lifecycle_stage, view))
    return build_search(LOGGED_MODEL_SEARCH, where, filter_string, order_by, max_results, offset)


# -- paging -------------------------------------------------------------------------------------


def encode_page_token(offset: int) -> str:
    """An opaque token for the page starting at ``offset`` (URL-safe base64 of JSON)."""
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise InvalidArgumentError(f"offset must be a non-negative integer, got {offset!r}")
    raw = json.dumps({"offset": offset}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_page_token(token: str | None) -> int:
    """The offset in a token from :func:`encode_page_token` (also MLflow's standard-base64
    tokens); None or "" is the first page."""
    if token is None or token == "":
        return 0
    try:
        text = token.strip().replace("+", "-").replace("/", "_")
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
        offset = json.loads(raw)["offset"]
    except (AttributeError, TypeError, ValueError, KeyError, binascii.Error):
        offset = None
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= _MAX_OFFSET:
        raise InvalidArgumentError(
            f"Invalid page_token {token!r}: pass the next_page_token of the previous search unchanged")
    return offset


def split_page(rows: Sequence, max_results: int, offset: int) -> tuple[list, str | None]:
    """The rows of one page (of a select built here) and the token of the next page, or None."""
    rows = list(rows)
    more = len(rows) > max_results
    return rows[:max_results], (encode_page_token(offset + max_results) if more else None)
