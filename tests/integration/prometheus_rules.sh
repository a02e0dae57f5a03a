#!/bin/bash
# The operator's monitoring files: the alert rules are valid (promtool check rules), each
# alert fires on what it should and not on the near misses (promtool test rules), and every
# enrolld_* metric the rules and the Grafana dashboard use is one enrolld exports (the
# names are read from enrolld/metrics.c, where the exposition is written).
set -u
cd "$(dirname "$0")/../.."
command -v promtool >/dev/null || { echo "skip: promtool (Debian package prometheus) not installed"; exit 77; }
command -v jq >/dev/null || { echo "skip: jq not installed"; exit 77; }
fails=0
check() {
	local d=$1
	shift
	if "$@"; then echo "ok   $d"; else echo "FAIL $d"; fails=$((fails + 1)); fi
}
RULES=etc/prometheus/enrolld-alerts.yml
DASH=docs/grafana/enrolld-dashboard.json
check "promtool check rules $RULES" promtool check rules "$RULES"
check "promtool test rules (each alert fires, near misses do not)" \
	bash -c "cd tests/prometheus && promtool test rules enrolld-alerts.test.yml"
check "the dashboard is valid JSON with panels" bash -c "jq -e '.panels | length > 0' $DASH >/dev/null"

# Every metric name the rules and the dashboard use, against the names enrolld writes.
used=$( { grep -o 'enrolld_[a-z_]*' "$RULES"; jq -r '.. | .expr? // empty' "$DASH" |
	grep -o 'enrolld_[a-z_]*'; } | sed -E 's/_(bucket|count|sum)$//' | sort -u)
for m in $used; do
	check "metric $m is exported by enrolld" grep -q -e "\"$m\"" -e "$m{" -e "# TYPE $m " enrolld/metrics.c
done
[ -n "$used" ] || { echo "FAIL no metric names found"; fails=$((fails + 1)); }
echo "$fails failed"
[ "$fails" -eq 0 ]
