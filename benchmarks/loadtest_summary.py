"""The load test's figures from its runs (benchmarks/loadtest.py): medians over the rounds, and their ratios."""

import numpy as np


def median(values) -> float:
    return float(np.median(list(values)))


def summary(results: dict) -> dict:
    """Per workload, medians over the rounds: the model's rows/s in process, each server's requests/s per
    concurrency and their ratio to it, to the peer and to hfx, and the p99 alone (concurrency 1) against the
    model's own p99."""
    rounds, concurrency = results["rounds"], results["concurrency"]
    names = list(dict.fromkeys(name for r in rounds for name in r["runs"]))
    out = {
        "errors": {
            name: sum(x["non_2xx"] + x["failed"] for r in rounds for x in r["runs"].get(name, {}).get("results", []))
            for name in names
        },
        "exit_codes_after_sigterm": {
            name: sorted({r["runs"][name]["exit_code_after_sigterm"] for r in rounds if name in r["runs"]})
            for name in names
        },
    }
    for workload in results["workloads"]:
        alone = {
            key: median(r["in_process"][workload][key] for r in rounds)
            for key in ("rows_per_s", "p99_ms", "cpu_ms_per_row")
        }
        runs = {
            name: [x for r in rounds for x in r["runs"].get(name, {}).get("results", []) if x["workload"] == workload]
            for name in names
        }
        rates = {
            name: {c: median(x["requests_per_s"] for x in runs[name] if x["concurrency"] == c) for c in concurrency}
            for name in names
        }
        p99_alone = {name: median(x["p99_ms"] for x in runs[name] if x["concurrency"] == 1) for name in names}
        out[workload] = {
            "in_process_rows_per_s": round(alone["rows_per_s"], 1),
            "in_process_p99_ms": round(alone["p99_ms"], 2),
            "in_process_cpu_ms_per_row": round(alone["cpu_ms_per_row"], 2),
            "cpu_ms_per_request": {
                name: {
                    c: round(median(x["cpu_ms_per_request"] for x in runs[name] if x["concurrency"] == c), 2)
                    for c in concurrency
                }
                for name in names
            },
            "requests_per_s": {name: {c: round(rate, 1) for c, rate in by_c.items()} for name, by_c in rates.items()},
            "requests_per_s_vs_in_process": {
                name: {c: round(rate / alone["rows_per_s"], 2) for c, rate in by_c.items()}
                for name, by_c in rates.items()
            },
            "p99_c1_vs_in_process_p99": {name: round(p99 / alone["p99_ms"], 2) for name, p99 in p99_alone.items()},
        }
        for baseline in ("peer", "hfx"):
            if baseline in rates:
                out[workload][f"requests_per_s_vs_{baseline}"] = {
                    name: {c: round(rate / rates[baseline][c], 2) for c, rate in by_c.items()}
                    for name, by_c in rates.items()
                    if name != baseline
                }
    return out
