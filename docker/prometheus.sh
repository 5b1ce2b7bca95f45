# shellcheck shell=bash
# Functions to run a real Prometheus server against members' /metrics and
# query its HTTP API; sourced by cluster-test.sh. They need `prometheus`
# (Debian: apt-get install prometheus), curl and jq. The server listens on
# loopback, keeps its data in a temporary directory, and is stopped by
# prom_stop.

prom_pid=""
prom_dir=""
prom_url=""

# prom_free_port: prints a loopback TCP port nothing listens on.
prom_free_port() {
	local p
	for _ in $(seq 50); do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

# prom_start name=host:port…: starts Prometheus scraping each target's
# /metrics every second, labelled member=name, and waits until it is ready.
prom_start() {
	local port t
	prom_dir="$(mktemp -d)"
	port="$(prom_free_port)" || { echo "prometheus: no free port" >&2; return 1; }
	prom_url="http://127.0.0.1:$port"
	{
		echo "global: {scrape_interval: 1s, scrape_timeout: 900ms, evaluation_interval: 1s}"
		echo "scrape_configs:"
		echo "  - job_name: gossip"
		echo "    static_configs:"
		for t in "$@"; do
			echo "      - {targets: ['${t#*=}'], labels: {member: '${t%%=*}'}}"
		done
	} >"$prom_dir/prometheus.yml"
	prometheus --config.file="$prom_dir/prometheus.yml" --storage.tsdb.path="$prom_dir/data" \
		--web.listen-address="127.0.0.1:$port" --log.level=warn >"$prom_dir/log" 2>&1 &
	prom_pid=$!
	local deadline=$((SECONDS + 30))
	until curl -fsS "$prom_url/-/ready" >/dev/null 2>&1; do
		if ! kill -0 "$prom_pid" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
			echo "prometheus did not start:" >&2
			cat "$prom_dir/log" >&2
			return 1
		fi
		sleep 0.2
	done
}

# prom_stop: stops the server started by prom_start and removes its data.
prom_stop() {
	if [ -n "$prom_pid" ]; then
		kill "$prom_pid" 2>/dev/null || true
		wait "$prom_pid" 2>/dev/null || true
		prom_pid=""
	fi
	if [ -n "$prom_dir" ]; then
		rm -rf "$prom_dir"
		prom_dir=""
	fi
}

# prom_query expr: prints the instant vector of a PromQL expression as
# "member value" lines, sorted by member.
prom_query() {
	curl -fsS --get --data-urlencode "query=$1" "$prom_url/api/v1/query" |
		jq -r '.data.result[] | "\(.metric.member) \(.value[1])"' | sort
}
