#!/bin/bash
# Compile the dashboard's files (enrolld/ui/*) into C, for enrolld/api_ui.c to #include:
# one array per file (xxd -i, NUL-terminated) and a table of {name, bytes, length, ETag}.
# The ETag is the first 16 hex digits of the file's SHA-256: it changes when the file does.
# Text only: a file holding a NUL byte is refused (the server sends the text up to its end).
#
#   scripts/embed-ui.sh FILE... >ui_assets.inc
set -euo pipefail
n=0
names=()
for f in "$@"; do
	name=${f##*/}
	[[ $name =~ ^[a-z0-9][a-z0-9._-]*$ ]] || { echo "embed-ui: bad asset name '$name'" >&2; exit 1; }
	[ -s "$f" ] || { echo "embed-ui: '$f' is empty" >&2; exit 1; }
	if [ "$(tr -d '\000' <"$f" | wc -c)" != "$(wc -c <"$f")" ]; then
		echo "embed-ui: '$f' holds a NUL byte (text assets only)" >&2
		exit 1
	fi
	echo "static const unsigned char ui_asset_$n[] = {"
	xxd -i <"$f"
	echo ", 0x00 };"
	names+=("$name $(wc -c <"$f") $(sha256sum "$f" | cut -c1-16)")
	n=$((n + 1))
done
echo "static const struct ui_asset ui_assets[] = {"
n=0
for e in "${names[@]}"; do
	read -r name len etag <<<"$e"
	printf '\t{ "%s", ui_asset_%d, %d, "\\"%s\\"" },\n' "$name" "$n" "$len" "$etag"
	n=$((n + 1))
done
echo "};"
