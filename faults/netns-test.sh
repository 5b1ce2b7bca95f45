#!/usr/bin/env bash
# Members on separate hosts: four example processes, each in its own network
# namespace with its own address, on two switches (bridges) joined by one
# link. Taking that link down splits the cluster 2/2; both halves must drop
# each other. Bringing it back up must re-merge them without any restart.
#
#   hub namespace:  brA (m1, m2) ==trunk== brB (m3, m4)     10.199.0.0/24
#
# Needs root and iproute2; skips (exit 0, saying why) without them. Every
# namespace it creates is deleted on exit, whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
	echo "skipped: netns test needs root"
	exit 0
fi
if ! command -v ip >/dev/null || ! ip netns list >/dev/null 2>&1; then
	echo "skipped: netns test needs iproute2 with 'ip netns'"
	exit 0
fi
if ! command -v curl >/dev/null || ! command -v jq >/dev/null; then
	echo "skipped: netns test needs curl and jq"
	exit 0
fi

tag="gf$$"
hub="${tag}hub"
ns=("${tag}m1" "${tag}m2" "${tag}m3" "${tag}m4")
ips=(10.199.0.1 10.199.0.2 10.199.0.3 10.199.0.4)
interval=100ms
work=$(mktemp -d)
pids=()

cleanup() {
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	{ wait; } 2>/dev/null || true
	for n in "${ns[@]}" "$hub"; do ip netns del "$n" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/example" ./example

ip netns add "$hub"
ip -n "$hub" link set lo up
ip -n "$hub" link add brA type bridge
ip -n "$hub" link add brB type bridge
ip -n "$hub" link add trunkA type veth peer name trunkB
ip -n "$hub" link set trunkA master brA
ip -n "$hub" link set trunkB master brB
for l in brA brB trunkA trunkB; do ip -n "$hub" link set "$l" up; done

for i in 0 1 2 3; do
	n=${ns[$i]}
	br=brA
	[ "$i" -ge 2 ] && br=brB
	ip netns add "$n"
	ip -n "$n" link set lo up
	ip -n "$n" link add eth0 type veth peer name "p$i" netns "$hub"
	ip -n "$n" addr add "${ips[$i]}/24" dev eth0
	ip -n "$n" link set eth0 up
	ip -n "$hub" link set "p$i" master "$br"
	ip -n "$hub" link set "p$i" up
done

for i in 0 1 2 3; do
	join=""
	[ "$i" -gt 0 ] && join="-join ${ips[0]}:7000"
	# shellcheck disable=SC2086
	ip netns exec "${ns[$i]}" "$work/example" -addr "${ips[$i]}:7000" $join \
		-http 127.0.0.1:8080 -interval "$interval" -endpoint "http://${ips[$i]}:9000" \
		2>"$work/m$i.log" &
	pids+=($!)
done

# view i: the sorted addresses member i sees, one line.
view() {
	ip netns exec "${ns[$1]}" curl -sf --max-time 2 http://127.0.0.1:8080/members |
		jq -r '[.[].addr] | sort | join(" ")' 2>/dev/null || true
}

# await WHAT SECONDS I... EXPECTED: wait until each member I sees EXPECTED.
await() {
	local what=$1 secs=$2 want=$3
	shift 3
	local start=$SECONDS
	while :; do
		local ok=1
		for i in "$@"; do
			[ "$(view "$i")" = "$want" ] || ok=0
		done
		if [ "$ok" = 1 ]; then
			echo "ok: $what ($((SECONDS - start)) s)"
			return 0
		fi
		if [ $((SECONDS - start)) -ge "$secs" ]; then
			echo "FAIL: $what: after $secs s" >&2
			for i in "$@"; do echo "  m$((i + 1)) sees: $(view "$i")" >&2; done
			for i in 0 1 2 3; do echo "--- m$((i + 1)) log" >&2; tail -5 "$work/m$i.log" >&2; done
			return 1
		fi
		sleep 0.1
	done
}

all="10.199.0.1:7000 10.199.0.2:7000 10.199.0.3:7000 10.199.0.4:7000"
left="10.199.0.1:7000 10.199.0.2:7000"
right="10.199.0.3:7000 10.199.0.4:7000"

await "four hosts converge" 30 "$all" 0 1 2 3

ip -n "$hub" link set trunkA down
echo "link trunkA down: cluster split 2/2"
await "left half drops the right" 30 "$left" 0 1
await "right half drops the left" 30 "$right" 2 3

# Keep the link down past the cleanup time (2 × FailureTime, FailureTime
# 3 × 2 × 100 ms for two live members), so that each half forgets the other
# and only seeds and dead-member contacts can bring them together again.
sleep 3

ip -n "$hub" link set trunkA up
echo "link trunkA up"
await "the halves re-merge without restarts" 60 "$all" 0 1 2 3
echo "PASS: netns partition and re-merge"
