#!/bin/bash
# The man pages say what the programs do: every configuration key the parsers accept is in
# enrolld.conf(5) / edge-keyd.conf(5) and every key there is accepted by the parser (the
# real binary's -n, which refuses unknown keys); every long option and command of --help is
# in the program's page; each page has the sections an operator looks for; scdoc builds
# each page and man(1) renders it without warnings.
set -u
cd "$(dirname "$0")/../.."
B=${B:-build}
command -v scdoc >/dev/null || { echo "skip: scdoc not installed"; exit 77; }
fails=0
check() {
	local d=$1
	shift
	if "$@"; then echo "ok   $d"; else echo "FAIL $d"; fails=$((fails + 1)); fi
}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

# "section.key" per line from a conf.5 page: "# SECTION" headings, "*key* = ..." entries
# (several keys may share an entry: "*tls_cert* = _file_, *tls_key* = _file_").
man_keys() {
	awk '/^# [A-Z]+$/ { sec = tolower($2); next }
	     /^\*[a-z_]+\* = / && sec != "" && sec != "example" && sec != "description" {
		line = $0
		while (match(line, /\*[a-z_]+\* = /)) {
			print sec "." substr(line, RSTART + 1, RLENGTH - 5)
			line = substr(line, RSTART + RLENGTH)
		}
	     }' "$1" | sort -u
}
# The parser's list of known keys (conf_known[] in <daemon>/conf.c).
parser_keys() {
	sed -n '/conf_known\[\] = {/,/NULL/p' "$1" | grep -o '"[a-z_]*\.[a-z_]*"' | tr -d '"' | sort -u
}

for d in enrolld edge-keyd; do
	page=docs/man/$d.conf.5.scd
	man_keys "$page" >"$T/$d.man"
	parser_keys "$d/conf.c" >"$T/$d.parser"
	check "$d.conf(5) lists keys ($(wc -l <"$T/$d.man"))" [ -s "$T/$d.man" ]
	check "$d.conf(5) has exactly the keys $d's parser knows" \
		diff -u "$T/$d.parser" "$T/$d.man"
	# Each documented key is accepted by the real parser: -n on a config with that key must
	# not answer "unknown key" (its value may be refused for other reasons: not checked).
	bad=
	echo "admin-token-0123456789abcdef" >"$T/tok" && chmod 600 "$T/tok"
	while IFS=. read -r sec key; do
		if [ "$d" = enrolld ]; then
			printf '[auth]\nadmin_token_file = %s\n[%s]\n%s = 1\n' "$T/tok" "$sec" "$key"
		else
			printf '[%s]\n%s = 1\n' "$sec" "$key"
		fi >"$T/one.conf"
		"$B/$d" -n -c "$T/one.conf" 2>"$T/err" >/dev/null
		grep -q "unknown key" "$T/err" && bad="$bad $sec.$key"
	done <"$T/$d.man"
	check "$d -n accepts every key of $d.conf(5)${bad:+ (refused:$bad)}" [ -z "$bad" ]
	printf '[server]\nno_such_key = 1\n' >"$T/one.conf"
	check "... and the probe can fail: -n refuses an unknown key" \
		bash -c "'$B/$d' -n -c '$T/one.conf' 2>&1 | grep -q 'unknown key'"
done

# Long options and commands from --help, against the program's page.
for d in enrolld edge-keyd enrollctl; do
	page=$(ls docs/man/$d.[18].scd)
	"$B/$d" --help >"$T/help" 2>&1
	missing=
	for o in $(grep -o -- '--[a-z][a-z-]*' "$T/help" | sort -u); do
		grep -q -- "\*$o\*" "$page" || missing="$missing $o"
	done
	check "$(basename "$page" .scd) documents every long option of --help${missing:+ (missing:$missing)}" [ -z "$missing" ]
done
missing=
for c in $(sed -n '/^Commands:/,/^$/p' <("$B/edge-keyd" --help 2>&1) | awk 'NR > 1 && /^  [a-z]/ { print $1 }'); do
	grep -q "^\*$c\*" docs/man/edge-keyd.8.scd || missing="$missing $c"
done
check "edge-keyd(8) documents every command of --help${missing:+ (missing:$missing)}" [ -z "$missing" ]
missing=
for c in $(sed -n '/^commands/,/^$/p' <("$B/enrollctl" --help 2>&1) | awk 'NR > 1 && /^  [a-z]/ { print $1 }'); do
	grep -q "^\*$c\*" docs/man/enrollctl.1.scd || missing="$missing $c"
done
check "enrollctl(1) documents every command of --help${missing:+ (missing:$missing)}" \
	bash -c "[ -z '$missing' ] && '$B/enrollctl' --help 2>&1 | grep -q '^  devices'"

for page in docs/man/*.scd; do
	name=$(basename "$page" .scd)
	check "$name: scdoc builds it" bash -c "scdoc <'$page' >'$T/$name'"
	case $name in
	*.5) want="NAME SYNOPSIS DESCRIPTION EXAMPLE" ;;
	*) want="NAME SYNOPSIS DESCRIPTION OPTIONS FILES EXIT STATUS" ;;
	esac
	missing=
	for s in $want; do grep -q "^# .*$s" "$page" || missing="$missing $s"; done
	check "$name has the sections $want${missing:+ (missing:$missing)}" [ -z "$missing" ]
	if command -v man >/dev/null; then
		check "$name: man renders it without warnings" \
			bash -c "MANWIDTH=80 man --warnings -l '$T/$name' 2>'$T/warn' >/dev/null && [ ! -s '$T/warn' ]"
	fi
done
echo "$fails failed"
[ "$fails" -eq 0 ]
