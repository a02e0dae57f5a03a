#!/bin/bash
# docs/openapi.json must describe exactly the routes enrolld serves: same paths, same
# methods, nothing missing, nothing extra. The route table is printed by `enrolld --routes`.
set -eu
B=${B:-build}
cd "$(dirname "$0")/../.."
jq -e . docs/openapi.json >/dev/null || { echo "docs/openapi.json is not valid JSON"; exit 1; }
want=$(jq -r '.paths | to_entries[] | .key as $p | .value | keys[]
	| select(. != "parameters") | "\(ascii_upcase) \($p)"' docs/openapi.json | sort)
have=$("$B/enrolld" --routes | sort)
if [ "$want" != "$have" ]; then
	echo "docs/openapi.json and enrolld's routes differ (< openapi, > enrolld):"
	diff <(echo "$want") <(echo "$have") || true
	exit 1
fi
echo "openapi.json matches $(echo "$have" | wc -l) routes"
