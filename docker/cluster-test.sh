#!/usr/bin/env bash
# Runs the five-member cluster of docker/compose.yaml and checks, with the
# stats tool run inside a member, that:
#   1. all five members come up and agree on the membership;
#   2. a member killed with `docker kill` is reported gone by every other
#      member within a bound derived from the failure time;
#   3. the member, started again, is back and agreed on;
#   4. a member stopped with SIGTERM (`docker stop`) leaves, and is reported
#      gone sooner than the failure time; started again, it is back.
# Where `prometheus` is installed, a real Prometheus server scrapes every
# member's /metrics (docker/prometheus.sh) and its HTTP API must show every
# target up with five alive members on each, then, once m3 is killed, m3
# down and four alive on each of the others.
# Where dig is installed, it also asks m1's DNS (docs/dns.md) for the web
# service before and after the kill of step 2.
# Everything it starts is removed on exit, pass or fail. It needs a Docker
# daemon and `docker compose` or `docker-compose`; without a daemon it skips.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "cluster-test: $*"; }
fail() {
	echo "cluster-test: FAIL: $*" >&2
	if [ -n "${last:-}" ]; then
		echo "--- last stats output:" >&2
		echo "$last" >&2
	fi
	exit 1
}

if ! docker info >/dev/null 2>&1; then
	say "skipped: no Docker daemon answers 'docker info'"
	exit 0
fi
if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null 2>&1; then
	say "skipped: neither 'docker compose' nor 'docker-compose' is installed"
	exit 0
fi
. docker/prometheus.sh

# The gossip interval, and the failure time it implies for five members:
# Nfailures × (ceil(log2 5) + 1) × interval = 3 × 4 × interval (failure.go).
interval_ms=250
fail_ms=$((3 * 4 * interval_ms))
# A killed member is declared dead FailureTime after its last heartbeat
# reached the others, which is at most a spread time before the kill; allow
# twice the failure time, plus time for the stats rounds.
gone_bound_s=$(((2 * fail_ms + 999) / 1000 + 3))
up_bound_s=60

project="gossiptest$$$(date +%s)"
image="gossip-example:$project"
compose() { GOSSIP_IMAGE="$image" GOSSIP_INTERVAL="${interval_ms}ms" docker/compose.sh -p "$project" -f docker/compose.yaml "$@"; }

cleanup() {
	status=$?
	prom_stop
	compose down -v --remove-orphans -t 2 >/dev/null 2>&1 || true
	docker rmi -f "$image" >/dev/null 2>&1 || true
	exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_s=$SECONDS
say "building static binaries and image $image"
docker/build-image.sh "$image" || fail "building the image"

say "starting five members (project $project, interval ${interval_ms}ms, failure time ${fail_ms}ms)"
compose up -d >/dev/null 2>&1 || { compose up -d; fail "compose up"; }
declare -A cid
for m in m1 m2 m3 m4 m5; do
	cid[$m]="$(compose ps -q "$m")"
	[ -n "${cid[$m]}" ] || fail "no container for $m"
done

# stats_from member: stats -all, run inside that member's container.
last=""
stats_from() {
	last="$(docker exec "${cid[$1]}" /stats -all -timeout 1s "$1:7000" 2>&1)" || true
}

# agreed n: the last stats output shows n members, all seen by all n.
agreed() {
	grep -Eq "^queried: +$1 +\($1 answered\)" <<<"$last" &&
		grep -Eq "^members seen: +$1 *$" <<<"$last" &&
		grep -Eq "^seen by all: +$1 *$" <<<"$last"
}

# wait_until seconds description command…: poll until the command succeeds.
wait_until() {
	local bound=$1 what=$2 deadline=$((SECONDS + $1))
	shift 2
	until "$@"; do
		[ $SECONDS -lt $deadline ] || fail "$what: not within ${bound}s"
		sleep 0.25
	done
}

t0=$SECONDS
wait_until $up_bound_s "five members agreeing" eval 'stats_from m1; agreed 5'
say "five members agree after $((SECONDS - t0))s"
echo "$last"

if command -v curl >/dev/null 2>&1; then
	port="$(compose port m1 8080 | tail -n1)"
	n="$(curl -fsS "http://$port/services/web" | grep -c '"endpoint"' || true)"
	[ "$n" = 3 ] || fail "GET /services/web on m1 ($port) lists $n endpoints, want 3"
	curl -fsS "http://$port/healthz" >/dev/null || fail "GET /healthz on m1"
	say "HTTP API on m1 ($port) lists the 3 web endpoints"
fi

# dns_lists member…: dig, a DNS client we did not write, asked m1 over UDP
# and over TCP (compose publishes them on two ports), lists exactly these
# members for the web service: SRV records to port 8080 of their node
# names, and A records of their container addresses (docs/dns.md).
dns_lists() {
	local want_srv want_a got m q
	want_srv="$(for m in "$@"; do echo "1 1 8080 $m-7000.node.gossip."; done | sort)"
	want_a="$(for m in "$@"; do docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "${cid[$m]}"; done | sort)"
	for q in "-p $dns_udp" "+tcp -p $dns_tcp"; do
		# shellcheck disable=SC2086
		got="$(dig @127.0.0.1 $q +short +time=2 +tries=1 web.service.gossip SRV | sort)" || return 1
		last="dig $q web.service.gossip SRV: $got"
		[ "$got" = "$want_srv" ] || return 1
		# shellcheck disable=SC2086
		got="$(dig @127.0.0.1 $q +short +time=2 +tries=1 web.service.gossip A | sort)" || return 1
		last="dig $q web.service.gossip A: $got (want $want_a)"
		[ "$got" = "$want_a" ] || return 1
	done
}
dns_check() {
	if ! command -v dig >/dev/null 2>&1; then
		say "DNS: skipped: dig is not installed (Debian package dnsutils)"
		return 0
	fi
	dns_udp="$(compose port --protocol udp m1 8600 | tail -n1 | sed 's/.*://')"
	dns_tcp="$(compose port m1 8600 | tail -n1 | sed 's/.*://')"
	wait_until 30 "dig lists web members $*" dns_lists "$@"
	say "DNS on m1 (udp $dns_udp, tcp $dns_tcp): dig lists web members $* in SRV and A"
	dig @127.0.0.1 -p "$dns_udp" web.service.gossip SRV | sed -n '/ANSWER SECTION/,/^$/p'
}
dns_check m1 m2 m3

now_ms() { date +%s%3N; }

# prom_shows n member…: Prometheus shows up=1 on the members given and 0 on
# the others of m1…m5, and gossip_members{state="alive"} = n on each given.
prom_shows() {
	local n=$1 m want_up="" want_alive=""
	shift
	for m in m1 m2 m3 m4 m5; do
		if [[ " $* " == *" $m "* ]]; then
			want_up+="$m 1"$'\n'
			want_alive+="$m $n"$'\n'
		else
			want_up+="$m 0"$'\n'
		fi
	done
	prom_up="$(prom_query 'up{job="gossip"}')" || return 1
	prom_alive="$(prom_query 'gossip_members{job="gossip",state="alive"}')" || return 1
	last="up: $prom_up"$'\n'"alive: $prom_alive"
	[ "$prom_up"$'\n' = "$want_up" ] && [ "$prom_alive"$'\n' = "$want_alive" ]
}
prom_report() { say "Prometheus $1: up{job=\"gossip\"} = {$(tr '\n' ' ' <<<"$prom_up")}; gossip_members{state=\"alive\"} = {$(tr '\n' ' ' <<<"$prom_alive")}"; }

prom_skip=""
if ! command -v prometheus >/dev/null 2>&1; then
	prom_skip="prometheus is not installed (Debian: apt-get install prometheus)"
elif ! command -v curl >/dev/null 2>&1 || ! command -v jq >/dev/null 2>&1; then
	prom_skip="the Prometheus check needs curl and jq"
fi
if [ -z "$prom_skip" ]; then
	targets=()
	for m in m1 m2 m3 m4 m5; do
		targets+=("$m=$(compose port "$m" 8080 | tail -n1)")
	done
	prom_start "${targets[@]}" || fail "starting Prometheus"
	say "Prometheus $(prometheus --version 2>&1 | head -n1 | cut -d' ' -f3) at $prom_url scraping ${targets[*]}"
	t0=$SECONDS
	wait_until 30 "Prometheus: every target up, five alive on each" prom_shows 5 m1 m2 m3 m4 m5
	prom_report "after $((SECONDS - t0))s"
else
	say "skipped: the Prometheus check: $prom_skip"
fi

say "killing m3"
t0ms=$(now_ms)
docker kill "${cid[m3]}" >/dev/null
gone() { stats_from m1 && agreed 4 && ! grep -q "^$1:7000 " <<<"$last"; }
wait_until $gone_bound_s "m3 reported gone by all" gone m3
kill_ms=$(($(now_ms) - t0ms))
say "m3 (killed) gone for all four after ${kill_ms}ms (bound ${gone_bound_s}s)"
if [ -z "$prom_skip" ]; then
	# Scraped every second: allow the failure time plus a few scrapes.
	wait_until $((gone_bound_s + 5)) "Prometheus: m3 down, four alive on each other target" prom_shows 4 m1 m2 m4 m5
	prom_report "$(($(now_ms) - t0ms))ms after the kill"
	prom_stop
fi
dns_check m1 m2

say "starting m3 again"
docker start "${cid[m3]}" >/dev/null
t0=$SECONDS
wait_until $up_bound_s "m3 back" eval 'stats_from m1; agreed 5'
say "m3 back, five members agree after $((SECONDS - t0))s"
echo "$last"

# A member stopped on purpose (SIGTERM, as in a rolling restart) leaves:
# the others drop it at once, not after the failure time.
say "stopping m4 (SIGTERM: it leaves the cluster)"
t0ms=$(now_ms)
docker stop -t 10 "${cid[m4]}" >/dev/null &
stopper=$!
wait_until $gone_bound_s "m4 reported gone by all" gone m4
leave_ms=$(($(now_ms) - t0ms))
wait $stopper || fail "docker stop m4"
say "m4 (stopped) gone for all four after ${leave_ms}ms; killed: ${kill_ms}ms; failure time ${fail_ms}ms"
[ "$leave_ms" -lt "$fail_ms" ] || fail "a member that left took ${leave_ms}ms to disappear, not less than the failure time (${fail_ms}ms)"
docker start "${cid[m4]}" >/dev/null
t0=$SECONDS
wait_until $up_bound_s "m4 back" eval 'stats_from m1; agreed 5'
say "m4 back, five members agree after $((SECONDS - t0))s"

say "PASS in $((SECONDS - start_s))s"
