"""The example mesh as plain Dagster assets: what running the same work on Dagster costs, without Mesh.

The work of bench/baseline_mesh.py (its transforms, Pandera contracts, GX checks and writes,
imported from there), declared as plain `@dg.asset`s with one asset check per contract and per
expectation (42 checks, as Mesh reports), run in process one domain at a time (five runs, as
`mesh materialize`) against a persistent instance in a new DAGSTER_HOME with Dagster's stock
storage. What this costs over baseline_mesh.py is Dagster's; what `mesh materialize` costs over
this is Mesh's.

    python bench/baseline_dagster.py OUT_DIR
"""

from __future__ import annotations

import sys
import time
from functools import lru_cache
from pathlib import Path

import dagster as dg

sys.path.insert(0, str(Path(__file__).resolve().parent))

import baseline_mesh as plain  # noqa: E402

# domain -> product -> (contract, inputs as (domain, product, columns or None), transform)
FLOWN = ["carrier", "tailnum", "origin", "dest", "time_hour", "dep_delay", "arr_delay", "air_time", "distance", "status"]
MESH = {
    "reference": {"airlines": (plain.AirlinesContract, [], plain.airlines),
                  "airports": (plain.AirportsContract, [], plain.airports)},
    "fleet": {"aircraft": (plain.AircraftContract, [], plain.aircraft)},
    "operations": {"flights": (plain.FlightsContract, [], lambda: plain.flights(plain.data("flights.csv.zip")))},
    "weather": {"hourly_observations": (plain.HourlyObservationsContract, [], plain.hourly_observations)},
    "insights": {
        "fleet_utilisation": (plain.insights.FleetUtilisationContract,
                              [("operations", "flights", FLOWN), ("fleet", "aircraft", ("tailnum", "manufacturer", "model", "seats"))],
                              plain.fleet_utilisation),
        "carrier_on_time_performance": (plain.insights.CarrierOnTimePerformanceContract,
                                        [("operations", "flights", FLOWN), ("reference", "airlines", None)],
                                        plain.carrier_on_time_performance),
        "delay_vs_weather": (plain.insights.DelayVsWeatherContract,
                             [("operations", "flights", FLOWN), ("weather", "hourly_observations", None)],
                             plain.delay_vs_weather),
        "route_performance": (plain.insights.RoutePerformanceContract,
                              [("operations", "flights", FLOWN), ("reference", "airports", ("faa", "name"))],
                              plain.route_performance),
    },
}


def build(pipeline: plain.Pipeline) -> dict[str, list]:
    @lru_cache(maxsize=None)  # each input read once per process, as Mesh reads it once per run
    def read(domain: str, name: str, columns: tuple | None):
        return pipeline.read(domain, name, list(columns) if columns else None)

    def product(domain: str, name: str, contract, inputs, transform):
        expectations = pipeline.suites[name]
        checks = ["contract"] + [f"{i:02d}_{e.expectation_type}" for i, e in enumerate(expectations)]

        @dg.asset(key=[domain, name], group_name=domain, deps=[dg.AssetKey([d, n]) for d, n, _ in inputs],
                  check_specs=[dg.AssetCheckSpec(c, asset=[domain, name], blocking=True) for c in checks])
        def _asset():
            frame = transform(*(read(d, n, tuple(c) if c else None) for d, n, c in inputs))
            validated, results = pipeline.check(name, contract, frame)
            outcomes = [dg.AssetCheckResult(check_name="contract", passed=True)] + [
                dg.AssetCheckResult(check_name=c, passed=bool(r.success),
                                    severity=dg.AssetCheckSeverity.WARN if r.expectation_config.severity.value == "warning"
                                    else dg.AssetCheckSeverity.ERROR,
                                    metadata={"unexpected_count": (r.result or {}).get("unexpected_count") or 0})
                for c, r in zip(checks[1:], results)]
            if any(not o.passed and o.severity == dg.AssetCheckSeverity.ERROR for o in outcomes):
                raise RuntimeError(f"{domain}.{name} failed a blocking check")
            pipeline.write(domain, name, validated)
            return dg.MaterializeResult(metadata={"dagster/row_count": len(validated)}, check_results=outcomes)

        return _asset

    return {domain: [product(domain, name, *spec) for name, spec in products.items()] for domain, products in MESH.items()}


def main() -> None:
    out = Path(sys.argv[1])
    home = out / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    pipeline = plain.Pipeline(out)
    started = time.perf_counter()
    quiet = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for assets in build(pipeline).values():  # upstream domains first: one run each
            dg.materialize(assets, instance=instance, run_config=quiet)
    print(f"{time.perf_counter() - started:.3f}")


if __name__ == "__main__":
    main()
