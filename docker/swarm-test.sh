#!/usr/bin/env bash
# Runs the example service on Docker Swarm (docker/stack.yaml: one
# replicated service, every task joining through tasks.member) and checks,
# with the stats tool run inside a task on the overlay network, that:
#   1. 5 replicas come up and agree: every running task's view holds
#      exactly the running tasks;
#   2. scaled to 20, all 20 agree;
#   3. through a rolling restart (docker service update --force), no member
#      reports a live one failed, and all 20 agree afterwards;
#   4. scaled down to 5, the 15 others leave every view.
# It prints how long each took. A single-node swarm is a real swarm: the
# same scheduler, overlay network and DNS as on many nodes.
#
# What counts as a false report: a "member failed" line, logged by a member
# from its events, about an incarnation of a member (its address, and its
# heartbeat, which starts at its start time) that had not yet been told to
# stop (it logs "shutting down" on SIGTERM). A member told to stop leaves:
# reported failed instead of left, it is counted apart, as a leave seen as a
# failure; that is not a report about a live member. Lines are ordered by
# the time each member wrote in it, not by Docker's stamps (see reports).
#
# The swarm is initialised (on 127.0.0.1) only if this node is in none, and
# then left at the end; everything else it makes is removed on exit, pass or
# fail. Without a Docker daemon, or on a node that is a swarm worker, it
# skips, saying why.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "swarm-test: $*"; }
last=""
fail() {
	echo "swarm-test: FAIL: $*" >&2
	if [ -n "$last" ]; then
		echo "--- last stats output:" >&2
		echo "$last" >&2
	fi
	exit 1
}

if ! docker info >/dev/null 2>&1; then
	say "skipped: no Docker daemon answers 'docker info'"
	exit 0
fi
if ! command -v jq >/dev/null; then
	say "skipped: jq is not installed"
	exit 0
fi
state="$(docker info --format '{{.Swarm.LocalNodeState}}')"
case "$state" in
inactive) ;;
active)
	if [ "$(docker info --format '{{.Swarm.ControlAvailable}}')" != true ]; then
		say "skipped: this node is a swarm worker; deploying needs a manager"
		exit 0
	fi
	;;
*)
	say "skipped: this node's swarm state is '$state'"
	exit 0
	;;
esac

interval_ms=250
stack="gossipswarm$$"
service="${stack}_member"
network="${stack}_gossip"
image="gossip-example:$stack"
joined_swarm=""
gwbridge_existed=""
docker network inspect docker_gwbridge >/dev/null 2>&1 && gwbridge_existed=yes

cleanup() {
	status=$?
	docker stack rm "$stack" >/dev/null 2>&1 || true
	# Leaving the swarm before every task's container is gone leaves
	# their endpoints behind on docker_gwbridge, which then cannot be
	# removed: wait for the containers, then the network.
	local deadline=$((SECONDS + 90))
	while [ -n "$(docker ps -aq --filter "label=com.docker.swarm.service.name=$service")" ] ||
		docker network inspect "$network" >/dev/null 2>&1; do
		[ $SECONDS -lt $deadline ] || { say "warning: the stack's containers or network outlived 90 s"; break; }
		sleep 0.5
	done
	if [ -n "$joined_swarm" ]; then
		docker swarm leave --force >/dev/null 2>&1 || true
		say "left the swarm this test made"
		if [ -z "$gwbridge_existed" ]; then
			deadline=$((SECONDS + 20))
			until docker network rm docker_gwbridge >/dev/null 2>&1; do
				[ $SECONDS -lt $deadline ] || { say "warning: could not remove docker_gwbridge, made by the swarm"; break; }
				sleep 1
			done
		fi
	fi
	docker rmi -f "$image" >/dev/null 2>&1 || true
	exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now_ms() { date +%s%3N; }
ms_of() { date -d "$1" +%s%3N; } # an RFC 3339 time, as Docker prints it
secs() { printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)); }

# wait_until seconds description command…: poll until the command succeeds.
wait_until() {
	local bound=$1 what=$2 deadline=$((SECONDS + $1))
	shift 2
	until "$@"; do
		[ $SECONDS -lt $deadline ] || fail "$what: not within ${bound}s"
		sleep 0.5
	done
}

start_s=$SECONDS
say "building static binaries and image $image"
docker/build-image.sh "$image" || fail "building the image"
if [ "$state" = inactive ]; then
	docker swarm init --advertise-addr 127.0.0.1 >/dev/null || fail "docker swarm init"
	joined_swarm=yes
	say "initialised a single-node swarm (advertising 127.0.0.1)"
fi

# running: "container address" for every task the swarm wants running and
# that runs, its address on the stack's overlay network.
running() {
	local ids
	ids="$(docker service ps -q --filter desired-state=running "$service" 2>/dev/null)" || return 0
	[ -n "$ids" ] || return 0
	# shellcheck disable=SC2086
	docker inspect -f '{{.Status.State}} {{.Status.ContainerStatus.ContainerID}} {{range .NetworksAttachments}}{{if eq .Network.Spec.Name "'"$network"'"}}{{range .Addresses}}{{.}} {{end}}{{end}}{{end}}' $ids 2>/dev/null |
		awk '$1 == "running" && $2 != "" && $3 != "" { sub(/\/.*/, "", $3); print $2, $3 }'
}

# agree n: exactly n tasks run, and stats -all, run inside one of them,
# finds n members, each seen by all n, and they are the running tasks.
check_prev=0 check_start=0
agree() {
	local n=$1 tasks want cid ip
	check_prev=$check_start
	check_start=$(now_ms)
	tasks="$(running)"
	[ "$(grep -c . <<<"$tasks")" = "$n" ] || { last="$(grep -c . <<<"$tasks") tasks running, want $n"; return 1; }
	want="$(awk '{ print $2 ":7000" }' <<<"$tasks" | sort | jq -R . | jq -sc .)"
	read -r cid ip <<<"$(head -n1 <<<"$tasks")"
	last="$(docker exec "$cid" /stats -all -json -timeout 1s "$ip:7000" 2>&1)" || return 1
	jq -e --argjson n "$n" --argjson want "$want" \
		'.summary.answered == $n and .summary.members_seen == $n and .summary.seen_by_all == $n and ([.members[].addr] | sort) == $want' \
		<<<"$last" >/dev/null 2>&1
}

# last_start_ms: when the last of the running tasks' containers started.
last_start_ms() {
	local t latest=0 cid
	for cid in $(running | awk '{ print $1 }'); do
		t="$(ms_of "$(docker inspect -f '{{.State.StartedAt}}' "$cid")")"
		[ "$t" -gt "$latest" ] && latest=$t
	done
	echo "$latest"
}

# converge n t0 what: waits until n agree; says how long since t0, and
# since the last task started. Agreement came between the start of the
# last check that failed and the end of the one that passed: both are given.
converge() {
	local n=$1 t0=$2 what=$3 t1 started
	check_start=0
	wait_until 120 "$what: $n agreeing" agree "$n"
	t1=$(now_ms)
	started=$(last_start_ms)
	if [ "$check_prev" -gt "$started" ]; then
		before="not yet at $(secs $((check_prev - started)))s"
	else
		before="the first check after it"
	fi
	say "$what: $n members agree $(secs $((t1 - t0)))s after the command, by $(secs $((t1 - started)))s after the last task started ($before)"
}

t0=$(now_ms)
out="$(GOSSIP_IMAGE="$image" GOSSIP_INTERVAL="${interval_ms}ms" GOSSIP_REPLICAS=5 \
	docker stack deploy --resolve-image never -c docker/stack.yaml "$stack" 2>&1)" || fail "docker stack deploy: $out"
say "deployed stack $stack: service $service, 5 replicas, interval ${interval_ms}ms, seed tasks.member:7000"
converge 5 "$t0" "deploy"

t0=$(now_ms)
docker service scale -d "$service=20" >/dev/null 2>&1 || fail "docker service scale $service=20"
converge 20 "$t0" "scale 5 → 20"

# The rolling restart: every task replaced by a new one (a new container,
# a new address), two at a time, each stopped (SIGTERM) before its
# successor starts (docker/stack.yaml, update_config).
restart_since="$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)"
t0=$(now_ms)
docker service update --force -d "$service" >/dev/null 2>&1 || fail "docker service update --force"
update_done() {
	local s
	s="$(docker service inspect -f '{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}' "$service")"
	case "$s" in
	completed) return 0 ;;
	paused | rollback_*) fail "the rolling restart stopped: $s" ;;
	esac
	return 1
}
# all_new: every running task started since the restart began.
all_new() {
	local cids
	cids="$(running | awk '{ print $1 }')"
	[ "$(grep -c . <<<"$cids")" = 20 ] || return 1
	# shellcheck disable=SC2086
	docker inspect -f '{{.State.StartedAt}}' $cids | while read -r at; do
		[ "$(ms_of "$at")" -ge "$t0" ] || return 1
	done
}
wait_until 300 "rolling restart: 20 new tasks" all_new
converge 20 "$t0" "rolling restart"
# The swarm calls the update complete once it has watched the last task
# for update_config.monitor (5 s by default).
wait_until 60 "rolling restart: the swarm's update complete" update_done
say "rolling restart: the swarm called it complete $(secs $(($(now_ms) - t0)))s after the command"

# reports since what: counts the members' reports since a time (RFC 3339),
# from every container of the service, running or stopped. It finds each
# incarnation (address and first heartbeat, from its own "member joined …
# self=true" line) and when it was told to stop ("shutting down"), then
# classes every "member failed" line; it sets left, failed, false_reports
# and missed_leaves, and prints each failure report, and how long each leave
# took to be reported after the member was told to stop. It sets last_stop
# to when the last member told to stop since then was, and last_left to the
# last leave reported by a member still running.
reports() {
	local since_ms logs cid ts rest at addr hb who incarnations="" delays=""
	local -A stop_ms
	since_ms=$(ms_of "$1")
	logs="$(mktemp)"
	for cid in $(docker ps -aq --filter "label=com.docker.swarm.service.name=$service"); do
		docker logs -t "$cid" 2>&1 | sed "s/^/$cid /" >>"$logs" || true
	done
	# Times are the members' own (time=…, to the millisecond), not those
	# Docker stamps lines with as it reads them: Docker may read a
	# member's "shutting down" after a peer's report that its port
	# refused a dial, which came after it.
	while read -r cid ts rest; do
		case "$rest" in
		*'msg="member joined"'*self=true*)
			incarnations+="$(field addr <<<"$rest") $(field heartbeat <<<"$rest") $cid"$'\n'
			;;
		*'msg="shutting down"'*) stop_ms[$cid]=$(ms_of "$(field time <<<"$rest")") ;;
		esac
	done <"$logs"
	left=0 failed=0 false_reports=0 missed_leaves=0 last_stop=0 last_left=0
	for cid in "${!stop_ms[@]}"; do
		[ "${stop_ms[$cid]}" -gt "$last_stop" ] && last_stop=${stop_ms[$cid]}
	done
	while read -r cid ts rest; do
		case "$rest" in
		*'msg="member left"'* | *'msg="member failed"'*) ;;
		*) continue ;;
		esac
		ts="$(field time <<<"$rest")"
		at=$(ms_of "$ts")
		[ "$at" -ge "$since_ms" ] || continue
		addr="$(field addr <<<"$rest")"
		hb="$(field heartbeat <<<"$rest")"
		# The incarnation reported: the one at that address that
		# started last at or before the reported heartbeat.
		who="$(awk -v a="$addr" -v hb="$hb" '$1 == a && $2 <= hb { print $2, $3 }' <<<"$incarnations" | sort -n | tail -n1 | cut -d' ' -f2)"
		if [[ "$rest" == *'msg="member left"'* ]]; then
			left=$((left + 1))
			[ -z "${stop_ms[$cid]:-}" ] && [ "$at" -gt "$last_left" ] && last_left=$at
			[ -n "$who" ] && [ -n "${stop_ms[$who]:-}" ] && delays+="$((at - stop_ms[$who]))"$'\n'
			continue
		fi
		failed=$((failed + 1))
		if [ -n "$who" ] && [ -n "${stop_ms[$who]:-}" ] && [ "${stop_ms[$who]}" -le "$at" ]; then
			missed_leaves=$((missed_leaves + 1))
			say "  a leave seen as a failure: $addr, told to stop at $(date -u -d @"$(secs "${stop_ms[$who]}")" +%T.%3N), reported failed by ${cid:0:12} at $ts"
		else
			false_reports=$((false_reports + 1))
			say "  FALSE REPORT: $addr reported failed by ${cid:0:12} at $ts while it ran (container ${who:0:12})"
		fi
	done <"$logs"
	rm -f "$logs"
	say "$2: $left 'member left' reports, $failed 'member failed' reports: $false_reports about a live member, $missed_leaves leaves seen as failures"
	if [ -n "$delays" ]; then
		sort -n <<<"${delays%$'\n'}" | awk -v what="$2" '{ d[NR] = $1 } END {
			printf "swarm-test: %s: a leave reported by each member after the leaver was told to stop: median %d ms, 90th percentile %d ms, max %d ms (%d reports)\n",
				what, d[int((NR + 1) / 2)], d[int(NR * 0.9 + 0.999)], d[NR], NR }'
	fi
}
field() { grep -o "$1=\"\?[^\" ]*" | head -n1 | sed 's/.*="\?//'; }

reports "$restart_since" "rolling restart"
[ "$false_reports" = 0 ] || fail "$false_reports false reports of a live member failed during the rolling restart"

scale_since="$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)"
t0=$(now_ms)
docker service scale -d "$service=5" >/dev/null 2>&1 || fail "docker service scale $service=5"
wait_until 120 "scale 20 → 5: the others gone from every view" agree 5
say "scale 20 → 5: the 15 others gone from every view of the 5 left $(secs $(($(now_ms) - t0)))s after the command"
reports "$scale_since" "scale 20 → 5"
say "scale 20 → 5: the last of the 15 was told to stop $(secs $((last_stop - t0)))s after the command; the 5 left logged the last leave at $(secs $((last_left - t0)))s"
[ "$false_reports" = 0 ] || fail "$false_reports false reports of a live member failed while scaling down"

say "PASS in $((SECONDS - start_s))s"
