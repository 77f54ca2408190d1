#!/bin/sh
# Tracing's cost on bench run's tunnel scenario: BenchmarkTunnelTracing
# (pkg/benchrun) in PAIRS interleaved off/on pairs (default 8), the order
# alternating between pairs, the OTLP sink a process of its own. Prints
# each pair's ratios on/off of CPU per request (cpu-ns/op, the budget's
# measure) and of wall time per request (ns/op, the inverse of req/s),
# then their medians, with the load average before and after.
# Run from the repository root: sh bench/tracing-pairs.sh (or task bench:tracing).
set -eu
pairs=${PAIRS:-8}
benchtime=${BENCHTIME:-3s}
bin=$(mktemp -d)/benchrun.test
trap 'rm -rf "$(dirname "$bin")"' EXIT
go test -c -o "$bin" ./pkg/benchrun
echo "load before: $(cat /proc/loadavg 2>/dev/null || uptime)"
out=$(dirname "$bin")/pairs
i=0
while [ "$i" -lt "$pairs" ]; do
	order=off,on
	[ $((i % 2)) -eq 1 ] && order=on,off
	POSTERN_BENCH_ORDER=$order "$bin" -test.run '^$' -test.bench '^BenchmarkTunnelTracing$' -test.benchtime "$benchtime" 2>/dev/null |
		awk -v order="$order" '
			/^BenchmarkTunnelTracing\/(off|on)/ { split($1, n, "/"); m = n[2]; sub(/-.*/, "", m); wall[m] = $3; cpu[m] = $5 }
			END { if (!("on" in cpu) || !("off" in cpu)) { print "pair failed"; exit 1 }
				printf "pair %s: off %d cpu-ns/op %d ns/op, on %d cpu-ns/op %d ns/op, cpu ratio %.3f wall ratio %.3f\n", order, cpu["off"], wall["off"], cpu["on"], wall["on"], cpu["on"]/cpu["off"], wall["on"]/wall["off"] }' |
		tee -a "$out"
	i=$((i + 1))
done
awk 'BEGIN { n = 0 }
	{ c[n] = $(NF-3); w[n] = $NF; n++ }
	function median(a, n,   i, j, t) { for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
		return n % 2 ? a[(n - 1) / 2] : (a[n / 2 - 1] + a[n / 2]) / 2 }
	END { printf "median of %d pairs: cpu ratio %.3f, wall ratio %.3f (on/off)\n", n, median(c, n), median(w, n) }' "$out"
echo "load after: $(cat /proc/loadavg 2>/dev/null || uptime)"
