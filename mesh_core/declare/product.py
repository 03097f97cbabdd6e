"""The data product: an immutable, validated declaration around one transform."""

from __future__ import annotations

import enum
import inspect
import re
from dataclasses import dataclass, field
from datetime import date
from types import MappingProxyType
from typing import Any, Callable, Iterable, Mapping

from mesh_core.declare.engine import ANNOTATION_HELP, Engine, engine_of, parameter_engines, sql_problems, sql_text
from mesh_core.declare.expectation import Expectation
from mesh_core.declare.inputs import Input
from mesh_core.declare.lifecycle import Lifecycle, Status
from mesh_core.declare.majors import PreviousMajor, major_of
from mesh_core.declare.names import RESERVED_DOMAINS, is_valid_name
from mesh_core.declare.ref import ProductRef
from mesh_core.declare.rules import BASELINE_RULES
from mesh_core.declare.slo import SLO
from mesh_core.errors import DefinitionError, Violation

_VERSION = re.compile(r"^[A-Za-z0-9_.-]{1,63}$")  # a Dagster tag value
# Check names Mesh itself reports; a suite expectation may not take them.
RESERVED_CHECK_NAMES = frozenset({"contract"})


class Access(str, enum.Enum):
    """Who may read a product: any domain, or only its own domain."""

    PUBLIC = "public"
    INTERNAL = "internal"


@dataclass(frozen=True, eq=False)  # a declaration is equal only to itself
class DataProduct:
    """A data product: what one domain publishes, with its owners, contract and suite.

    Build it with the `@data_product` decorator. It is validated when declared:
    a product that breaks a rule raises `DefinitionError` naming each problem.
    """

    name: str
    domain: str
    fn: Callable[..., Any]
    description: str | None = None
    owners: tuple[str, ...] = ()
    contract: Any = None
    suite: tuple[Expectation, ...] = ()
    version: str = "0.1.0"
    access: Access = Access.PUBLIC
    inputs: Mapping[str, Input] = field(default_factory=dict)
    min_rows: int = 1
    tags: Mapping[str, str] = field(default_factory=dict)
    waivers: Mapping[str, str] = field(default_factory=dict)  # policy name -> the written reason
    lifecycle: Lifecycle = Lifecycle()
    previous_majors: tuple[PreviousMajor, ...] = ()
    # Consumers' expectations, each with the major its consumer reads; added when the domain loads.
    relied_on: tuple[tuple[int | None, Expectation], ...] = ()
    slo: SLO = SLO()
    # A SQL product: its query (DuckDB dialect) over relations named by its parameters; fn's body never runs.
    sql: str | None = None
    sql_file: str | None = None  # where `sql` was read from, when it came from a .sql file

    def __post_init__(self) -> None:
        violations = [*self._shape_violations(), *(v for r in BASELINE_RULES for v in r.check(self))]
        if violations:
            raise DefinitionError(violations)

    @property
    def ref(self) -> ProductRef:
        return ProductRef(self.domain, self.name)

    @property
    def major(self) -> int | None:
        return major_of(self.version) if isinstance(self.version, str) else None

    @property
    def suite_name(self) -> str:
        return f"{self.domain}.{self.name}"

    @property
    def wants_context(self) -> bool:
        return self.sql is None and "context" in inspect.signature(self.fn).parameters

    @property
    def read_as(self) -> Mapping[str, Engine]:
        """{parameter: the engine its input arrives in}: DuckDB relations for a SQL product; else
        Input(as_=...), else the parameter's annotation, else pandas."""
        if self.sql is not None:
            return {param: Engine.DUCKDB for param in self.inputs}
        annotated = parameter_engines(self.fn)
        return {param: Engine(spec.as_) if spec.as_ else annotated.get(param) or Engine.PANDAS
                for param, spec in self.inputs.items()}

    @property
    def engine(self) -> Engine:
        """The engine the product declares its output in: DuckDB for SQL; else its return annotation,
        else the engine its inputs arrive in when they all share one, else pandas. What it returns at
        run time decides how it is validated; this is what load-time checks go by."""
        if self.sql is not None:
            return Engine.DUCKDB
        returned = engine_of(inspect.signature(self.fn).return_annotation)
        if returned is not None:
            return returned
        engines = set(self.read_as.values())
        return engines.pop() if len(engines) == 1 else Engine.PANDAS

    def _violation(self, rule: str, message: str, fix: str) -> Violation:
        return Violation(str(self.domain), str(self.name), rule, message, fix)

    def _shape_violations(self) -> Iterable[Violation]:
        if not is_valid_name(self.domain):
            yield self._violation(
                "domain-name", f"invalid domain name {self.domain!r}.",
                "use the lower snake case name of the domain folder, e.g. domain='operations'.",
            )
        elif self.domain in RESERVED_DOMAINS:
            yield self._violation(
                "domain-name", f"the domain name {self.domain!r} is reserved (a schema Mesh keeps in every domain's store).",
                f"name the domain otherwise; reserved: {', '.join(sorted(RESERVED_DOMAINS))}.",
            )
        if not is_valid_name(self.name):
            yield self._violation(
                "product-name", f"invalid product name {self.name!r}.",
                "name products with a lower snake case noun for one row, e.g. 'flights'.",
            )
        if not isinstance(self.version, str) or not _VERSION.fullmatch(self.version):
            yield self._violation(
                "version-format", f"invalid version {self.version!r}.",
                "use letters, digits, '.', '_' or '-', e.g. version='1.2.0'.",
            )
        if not isinstance(self.access, Access):
            yield self._violation(
                "access-level", f"invalid access {self.access!r}.",
                "use access='public' (any domain may read) or 'internal' (own domain only).",
            )
        if not isinstance(self.min_rows, int) or self.min_rows < 0:
            yield self._violation(
                "min-rows", f"invalid min_rows {self.min_rows!r}.",
                "use a whole number >= 0 (0 allows publishing an empty product).",
            )
        seen: set[str] = set()
        for item in (*self.suite, *(expectation for _, expectation in self.relied_on)):
            if not isinstance(item, Expectation):
                yield self._violation(
                    "suite-items", f"suite item {item!r} is not an Expectation.",
                    "declare each item as mesh_core.Expectation('ExpectColumn...', column=...).",
                )
            elif item.name in seen or item.name in RESERVED_CHECK_NAMES or re.fullmatch(r"contract_v[0-9]+", item.name):
                yield self._violation(
                    "check-names-unique", f"check name {item.name!r} is used twice or reserved.",
                    "give one of the expectations its own name=... .",
                )
            else:
                seen.add(item.name)
        if self.lifecycle.status is Status.DEPRECATED and not (self.lifecycle.deprecated_on and self.lifecycle.successor):
            yield self._violation(
                "deprecation-complete", "is deprecated without a date and a successor.",
                "pass deprecated_on='YYYY-MM-DD' (reading it is an error from then on) and successor='<domain>.<product>'.",
            )
        if not isinstance(self.slo, SLO):
            yield self._violation("slo-valid", f"slo={self.slo!r} is not an SLO.",
                                  "declare slo=SLO(max_age_hours=6) or SLO(due_by='07:00', timezone='Europe/Paris').")
        yield from self._major_violations()
        yield from self._engine_violations()
        params = [p for p in inspect.signature(self.fn).parameters if p != "context"]
        if sorted(params) != sorted(self.inputs):
            yield self._violation(
                "inputs-match-parameters",
                f"function parameters {params} do not match inputs {sorted(self.inputs)}.",
                "declare inputs={'<parameter>': '<domain>.<product>'} for every parameter "
                "(an optional 'context' parameter receives the Dagster context).",
            )

    def _engine_violations(self) -> Iterable[Violation]:
        try:
            annotated = parameter_engines(self.fn)
            if self.sql is None:
                engine_of(inspect.signature(self.fn).return_annotation)
        except ValueError as exc:
            yield self._violation("input-engines", f"{exc}.", f"{ANNOTATION_HELP}.")
            return
        for param, spec in self.inputs.items() if isinstance(self.inputs, Mapping) else ():
            declared = annotated.get(param)
            if self.sql is None and spec.as_ and declared and spec.as_ != declared.value:
                yield self._violation(
                    "input-engines", f"parameter '{param}' is annotated as {declared.value} but its Input says as_={spec.as_!r}.",
                    "keep one of the two: the annotation, or Input(..., as_=...).")
        if self.sql is not None:
            where = f" ({self.sql_file})" if self.sql_file else ""
            for problem in sql_problems(self.sql):
                yield self._violation("sql-valid", f"its SQL{where} is not a query Mesh can run: {problem}.",
                                      "write one DuckDB SELECT whose FROM names the product's parameters "
                                      "(its inputs), e.g. sql='select carrier, count(*) as flights from flights group by 1'.")
            if "context" in inspect.signature(self.fn).parameters:
                yield self._violation("sql-valid", "a SQL product takes no 'context' parameter.",
                                      "drop the parameter: the query's relations are the product's inputs.")
            if self.previous_majors:
                yield self._violation("sql-valid", "a SQL product cannot keep previous majors (adapt() is Python code).",
                                      "write the product in Python (Polars or pandas) to publish an older major beside it.")

    def _major_violations(self) -> Iterable[Violation]:
        majors = [item.major for item in self.previous_majors if isinstance(item, PreviousMajor)]
        if len(majors) != len(self.previous_majors):
            yield self._violation("previous-majors-valid", "lists something other than PreviousMajor in previous_majors.",
                                  "declare each as PreviousMajor('1.4.0', contract=..., until='YYYY-MM-DD', adapt=...).")
        elif majors and (self.major is None or max(majors) >= self.major or len(set(majors)) != len(majors)):
            yield self._violation(
                "previous-majors-valid",
                f"publishes major(s) {sorted(majors)} beside version {self.version!r}: each must be older than the "
                "current major, and listed once.",
                "keep only majors below the current one, e.g. version='2.0.0' with PreviousMajor('1.4.0', ...).",
            )


def data_product(
    *,
    domain: str,
    description: str | None = None,
    owners: Iterable[str] = (),
    contract: Any = None,
    suite: Iterable[Expectation] = (),
    version: str = "0.1.0",
    access: Access | str = Access.PUBLIC,
    inputs: Mapping[str, Input | ProductRef | str] | None = None,
    name: str | None = None,
    min_rows: int = 1,
    tags: Mapping[str, str] | None = None,
    waivers: Mapping[str, str] | None = None,
    status: Status | str = Status.ACTIVE,
    deprecated_on: date | str | None = None,
    successor: ProductRef | str | None = None,
    previous_majors: Iterable[PreviousMajor] = (),
    slo: SLO | None = None,
    sql: str | None = None,
) -> Callable[[Callable[..., Any]], DataProduct]:
    """Declare the decorated function, which returns a pandas DataFrame, as a data product.

    `inputs` maps each function parameter to the product it receives, in this domain
    or another: `inputs={"flights": "operations.flights"}`, pinned to a major version with
    `"operations.flights@1"`, or an `Input(...)` naming the columns and expectations the
    product relies on. `previous_majors` keeps older majors published for a window. `slo` sets
    its freshness and quality objectives (default: no freshness objective, 99% clean runs). `waivers` exempts the product
    from a policy, with the reason written down: `waivers={"column-descriptions": "..."}`.
    `status` is draft, active (the default), deprecated (with `deprecated_on` and a
    `successor`) or retired.

    The function may return a pandas DataFrame, a Polars DataFrame or LazyFrame, a DuckDB
    relation, or any Arrow stream (pyarrow Table, RecordBatchReader, `__arrow_c_stream__`);
    each input arrives as its parameter's annotation says (`flights: pl.LazyFrame`; pandas by
    default). `sql="select ..."` (or `sql="name.sql"`, a file beside the module) makes it a SQL
    product run in DuckDB, its inputs the relations named by the function's parameters.
    """

    def decorator(fn: Callable[..., Any]) -> DataProduct:
        product_name = name or fn.__name__
        try:
            refs = {param: Input.parse(ref) for param, ref in (inputs or {}).items()}
            access_level = Access(access)
        except ValueError as exc:
            raise DefinitionError(
                [Violation(str(domain), product_name, "inputs-and-access", str(exc).rstrip(".") + ".",
                           "see the data_product docstring for the accepted forms.")]
            ) from None
        try:
            lifecycle = Lifecycle(
                Status(status),
                date.fromisoformat(deprecated_on) if isinstance(deprecated_on, str) else deprecated_on,
                ProductRef.parse(successor) if successor else None,
            )
        except ValueError:
            raise DefinitionError(
                [Violation(str(domain), product_name, "lifecycle-valid",
                           f"invalid lifecycle: status={status!r}, deprecated_on={deprecated_on!r}, successor={successor!r}.",
                           "status is one of draft, active, deprecated, retired; deprecated_on a date "
                           "'YYYY-MM-DD'; successor 'domain.product'.")]
            ) from None
        query = query_file = None
        if sql is not None:
            try:
                query, query_file = sql_text(sql, fn) if isinstance(sql, str) else (sql, None)
            except ValueError as exc:
                raise DefinitionError([Violation(str(domain), product_name, "sql-valid", f"{exc}.",
                                                 "put the .sql file beside the module that declares the product, "
                                                 "or pass the SQL text itself.")]) from None
        return DataProduct(
            name=product_name,
            domain=domain,
            fn=fn,
            description=inspect.cleandoc(description) if description else description,
            owners=tuple(owners),
            contract=contract,
            suite=tuple(suite),
            version=version,
            access=access_level,
            inputs=MappingProxyType(refs),
            min_rows=min_rows,
            tags=MappingProxyType(dict(tags or {})),
            waivers=MappingProxyType(dict(waivers or {})),
            lifecycle=lifecycle,
            slo=SLO() if slo is None else slo,
            previous_majors=(previous_majors,) if isinstance(previous_majors, PreviousMajor) else tuple(previous_majors or ()),
            sql=query,
            sql_file=query_file,
        )

    return decorator
