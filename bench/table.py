#!/usr/bin/env python3
"""Print bench/compare.sh's results as one table, with Parley/peer ratios.

    python3 bench/table.py RESULTS_DIR "SERVERS" "SCENARIOS"

Each row is one figure of one scenario; each column a server. The ratio
columns compare Parley on PostgreSQL (the production store, as the peers
run on PostgreSQL too) with Synapse and with Dendrite, oriented so that a
ratio above 1 means Parley is better: throughputs are divided as
parley/peer, latencies and memory as peer/parley.
"""
import json
import os
import sys

# (scenario, label, path into the report, higher is better)
FIGURES = [
    ("send", "acked sends/s", ("rates_per_second", "acked_sends"), True),
    ("send", "send p50 ms", ("latency_ms", "send_ack", "p50_ms"), False),
    ("send", "send p99 ms", ("latency_ms", "send_ack", "p99_ms"), False),
    ("send", "send p99.9 ms", ("latency_ms", "send_ack", "p99_9_ms"), False),
    ("latency", "achieved sends/s", ("rates_per_second", "acked_sends"), True),
    ("latency", "send->sync p50 ms", ("latency_ms", "delivery", "p50_ms"), False),
    ("latency", "send->sync p90 ms", ("latency_ms", "delivery", "p90_ms"), False),
    ("latency", "send->sync p99 ms", ("latency_ms", "delivery", "p99_ms"), False),
    ("latency", "send->sync p99.9 ms", ("latency_ms", "delivery", "p99_9_ms"), False),
    ("latency", "send->sync max ms", ("latency_ms", "delivery", "max_ms"), False),
    ("latency", "missing deliveries", ("counts", "missing_deliveries"), False),
    ("fanout", "to last member p50 ms", ("latency_ms", "time_to_last_delivery", "p50_ms"), False),
    ("fanout", "to last member p99 ms", ("latency_ms", "time_to_last_delivery", "p99_ms"), False),
    ("fanout", "deliveries/s", ("rates_per_second", "deliveries"), True),
    ("idle", "polls held", ("counts", "polls_held"), True),
    ("idle", "RSS bytes per held poll", ("values", "bytes_per_held_poll"), False),
    ("initial-sync", "initial sync p50 ms", ("latency_ms", "initial_sync", "p50_ms"), False),
    ("initial-sync", "response KiB", ("values", "mean_response_bytes"), False),
]


def dig(report, path):
    cur = report
    for key in path:
        if not isinstance(cur, dict) or key not in cur:
            return None
        parent, cur = cur, cur[key]
    if path[0] == "latency_ms" and not parent.get("count"):
        return None  # nothing was measured: no acknowledged send or delivery
    return cur if isinstance(cur, (int, float)) else None


def fmt(v):
    if v is None:
        return "-"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.3g}"


def ratio(parley, peer, higher_better):
    if parley is None or peer is None or parley == 0 or peer == 0:
        return "-"
    r = parley / peer if higher_better else peer / parley
    return f"{r:.1f}x"


def main():
    results, servers, scenarios = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
    reports = {}
    for s in servers:
        for sc in scenarios:
            path = os.path.join(results, f"{s}-{sc}.json")
            try:
                with open(path) as f:
                    reports[(s, sc)] = json.load(f)
            except (OSError, ValueError):
                reports[(s, sc)] = None
    header = ["scenario", "figure"] + servers + ["parley/synapse", "parley/dendrite"]
    rows = []
    for sc, label, path, higher in FIGURES:
        if sc not in scenarios:
            continue
        vals = {}
        for s in servers:
            rep = reports.get((s, sc))
            v = dig(rep, path) if rep else None
            if v is not None and label == "response KiB":
                v = v / 1024
            vals[s] = v
        p = vals.get("parley-postgres")
        rows.append([sc, label] + [fmt(vals[s]) for s in servers]
                    + [ratio(p, vals.get("synapse"), higher), ratio(p, vals.get("dendrite"), higher)])
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    for r in [header] + rows:
        print("  ".join(str(c).ljust(w) if i < 2 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    errors = [f"{s} {sc}: {rep.get('counts', {}).get('errors', 0)} errors"
              for (s, sc), rep in reports.items() if rep and rep.get("counts", {}).get("errors")]
    missing = [f"{s} {sc}" for (s, sc), rep in reports.items() if rep is None]
    if errors:
        print("\nerrors: " + "; ".join(errors))
    if missing:
        print("\nno report (the run failed; see its .log): " + ", ".join(missing))


if __name__ == "__main__":
    main()
