#!/usr/bin/env bash
# Runs the shell blocks of README.md's "Quick start" section, in order, as
# one bash script, as a reader pasting them would, and checks what they
# print and that they leave no process behind.
#
# The members listen on a loopback address picked at random (127.x.y.z) in
# place of 127.0.0.1, so that a quick start someone is running, or another
# run of this test, is no obstacle. The script runs under timeout(1) in a
# process group of its own; whatever is left of that group is killed on
# exit. Linux only: elsewhere 127.0.0.1 is the only loopback address.
set -euo pipefail
cd "$(dirname "$0")/.."

deadline=600 # seconds; a cold build of the two binaries takes one to three minutes on two cores

if [ "$(uname -s)" != Linux ]; then
	echo "skipped: 127.x.y.z loopback addresses are Linux's"
	exit 0
fi
for tool in go curl timeout awk; do
	if ! command -v "$tool" >/dev/null; then
		echo "skipped: $tool is not installed"
		exit 0
	fi
done

work=$(mktemp -d)
group=
cleanup() {
	if [ -n "$group" ]; then
		kill -KILL -- "-$group" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*"
	echo "--- the script"
	cat "$work/quickstart.sh"
	echo "--- what it printed"
	cat "$work/out"
	exit 1
}

host=127.$((RANDOM % 200 + 20)).$((RANDOM % 254 + 1)).$((RANDOM % 254 + 1))
awk '
	/^```/ {
		if (fence) { fence = 0; block = 0 } else { fence = 1; block = section && $0 == "```sh" }
		next
	}
	fence { if (block) print; next }
	/^(# |## )/ { section = ($0 == "## Quick start") }
' README.md | sed "s/127\.0\.0\.1/$host/g" >"$work/quickstart.sh"
[ -s "$work/quickstart.sh" ] || { echo "FAIL: README.md has no sh block under '## Quick start'"; exit 1; }
echo "quick start on $host: $(grep -c . "$work/quickstart.sh") lines"

# timeout puts itself and the script in a process group of its own, and
# on expiry signals all of it; the script's temporary files go to $work.
start=$(date +%s)
TMPDIR=$work timeout -k 10 "$deadline" bash "$work/quickstart.sh" >"$work/out" 2>&1 </dev/null &
group=$!
status=0
wait "$group" || status=$?
echo "ran in $(($(date +%s) - start)) s, exit status $status"

[ "$status" != 124 ] || fail "not done within $deadline s"
[ "$status" = 0 ] || fail "exit status $status"
if kill -0 -- "-$group" 2>/dev/null; then
	ps -eo pid,pgid,args | awk -v g="$group" '$2 == g'
	fail "processes left running"
fi
out=$(cat "$work/out")
grep -Eq '^seen by all: +3' <<<"$out" || fail "stats never showed three members seen by all"
grep -q "\"http://$host:9001\"" <<<"$out" || fail "/services/web did not list http://$host:9001"
grep -Eq '"zone": *"b"' <<<"$out" || fail "PUT /data did not answer the new tags"
grep 'msg="member failed"' <<<"$out" | grep -q "$host:7002" || fail "no log line of $host:7002 failing"
if command -v dig >/dev/null; then
	grep -Eq 'IN[[:space:]]+SRV[[:space:]]+[0-9]+ [0-9]+ 9000 ' <<<"$out" || fail "dig listed no SRV record of web"
fi
echo "ok"
