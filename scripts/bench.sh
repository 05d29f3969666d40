#!/usr/bin/env bash
# Runs the end-to-end measurements that BENCHMARKS.md records:
#
#  1. throughput: redis-benchmark's pipelined single-connection RPUSH rate,
#     pushbench -mode e2e (the library, PushChan to Close) and pushbench
#     -mode roundtrip (one RPUSH round trip per job), in ROUNDS rounds, each
#     round printing the three rates and the ratios e2e/redis-benchmark and
#     e2e/roundtrip measured together, and the rate of e2e with two
#     Publishers relative to one;
#  2. redis-benchmark without pipelining, as a cross-check of the
#     round-trip rate, and one e2e run with -split, which times the
#     batcher's connection calls;
#  3. publish-to-pop latency at 1,000 jobs/s with flush intervals 500ms and 0;
#  4. the peak RSS of cmd/pushdemo publishing for DEMO_DURATION to a port
#     where no server listens, next to the publisher's buffer limits;
#  5. when MICRO_ROUNDS is above 0, the publish benchmarks of bench_test.go
#     next to their json.Marshal references, MICRO_ROUNDS times, each round
#     printing the speedup of every Publish helper over json.Marshal.
#
# It starts its own redis-server on a free 127.0.0.1 port with persistence
# off, talks to no other address, bounds every step with timeout, and stops
# the server and removes its files on exit.
#
# Environment: ROUNDS (3), JOBS (2000000), ROUNDTRIP_JOBS (200000),
# LATENCY_DURATION (10s), DEMO_DURATION (30s), MICRO_ROUNDS (0), and
# PROFILE_DIR: when set, the -split run also writes its CPU profile there
# as e2e.cpu.prof, with the pushbench binary next to it for go tool pprof.
# The defaults take 2 to 3 minutes, and MICRO_ROUNDS=3 adds about 3.
#
# Usage: scripts/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
JOBS=${JOBS:-2000000}
ROUNDTRIP_JOBS=${ROUNDTRIP_JOBS:-200000}
LATENCY_DURATION=${LATENCY_DURATION:-10s}
DEMO_DURATION=${DEMO_DURATION:-30s}
MICRO_ROUNDS=${MICRO_ROUNDS:-0}
PROFILE_DIR=${PROFILE_DIR:-}

for tool in go redis-server redis-cli redis-benchmark timeout awk; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "bench.sh: $tool is not installed" >&2
		exit 1
	fi
done

work=$(mktemp -d)
redis_pid=""
demo_pid=""

cleanup() {
	if [ -n "$demo_pid" ]; then
		kill "$demo_pid" 2>/dev/null || true
	fi
	if [ -n "$redis_pid" ]; then
		kill "$redis_pid" 2>/dev/null || true
		wait "$redis_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# free_port prints a port on 127.0.0.1 where nothing accepts connections.
free_port() {
	local port
	for _ in $(seq 1 200); do
		port=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			echo "$port"
			return 0
		fi
	done
	echo "bench.sh: found no free port on 127.0.0.1" >&2
	return 1
}

# run prints a command, then runs it.
run() {
	echo "+ $*" >&2
	"$@"
}

# result_field prints the value of key in the RESULT line of a pushbench
# output.
result_field() {
	awk -v key="$2" '/^RESULT / { for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == key) print kv[2] } }' <<<"$1"
}

# ratio prints $1 / $2 with two decimals.
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'
}

# median prints the median of its numeric arguments.
median() {
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

flushall() {
	redis-cli -h 127.0.0.1 -p "$port" FLUSHALL >/dev/null
}

echo "== machine"
echo "cores: $(nproc), CPU: $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
go version
redis-server --version
date -u '+date: %Y-%m-%d %H:%M UTC'

echo "== build"
run go build -o "$work/pushbench" ./cmd/pushbench
demo_built=no
if run go build -o "$work/pushdemo" ./cmd/pushdemo; then
	demo_built=yes
else
	echo "bench.sh: cmd/pushdemo does not build; the memory check is skipped" >&2
fi

port=$(free_port)
addr="127.0.0.1:$port"
echo "== redis-server on $addr, persistence off"
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
	--daemonize no --loglevel warning --dir "$work" >"$work/redis.log" 2>&1 &
redis_pid=$!
for _ in $(seq 1 100); do
	if [ "$(redis-cli -h 127.0.0.1 -p "$port" PING 2>/dev/null)" = "PONG" ]; then
		break
	fi
	sleep 0.1
done
if [ "$(redis-cli -h 127.0.0.1 -p "$port" PING 2>/dev/null)" != "PONG" ]; then
	echo "bench.sh: redis-server did not reply to PING on $addr:" >&2
	cat "$work/redis.log" >&2
	exit 1
fi

echo "== throughput, $ROUNDS rounds"
rb_rates=()
e2e_rates=()
rt_rates=()
rb_ratios=()
rt_ratios=()
two_ratios=()
for round in $(seq 1 "$ROUNDS"); do
	rb_out=$(run timeout 300 redis-benchmark -h 127.0.0.1 -p "$port" -t rpush -P 1000 -c 1 -d 120 -n "$JOBS" -q)
	rb=$(tr '\r' '\n' <<<"$rb_out" | awk '/^RPUSH:/ { rate = $2 } END { print rate }')
	flushall

	e2e_out=$(run timeout 300 "$work/pushbench" -mode e2e -addr "$addr" -n "$JOBS")
	echo "$e2e_out"
	e2e=$(result_field "$e2e_out" jobs_per_s)
	flushall

	# Two Publishers, each with its own batcher and connection, keep two
	# transactions in flight: an upper bound for what overlapping the
	# batcher's work with the wait for Redis could gain.
	two_out=$(run timeout 300 "$work/pushbench" -mode e2e -addr "$addr" -n "$JOBS" -publishers 2)
	echo "$two_out"
	two=$(result_field "$two_out" jobs_per_s)
	flushall

	rt_out=$(run timeout 300 "$work/pushbench" -mode roundtrip -addr "$addr" -n "$ROUNDTRIP_JOBS")
	echo "$rt_out"
	rt=$(result_field "$rt_out" jobs_per_s)
	flushall

	if [ -z "$rb" ] || [ -z "$e2e" ] || [ -z "$two" ] || [ -z "$rt" ]; then
		echo "bench.sh: a rate is missing in round $round (redis-benchmark '$rb', e2e '$e2e', e2e with two publishers '$two', roundtrip '$rt')" >&2
		exit 1
	fi
	rb_rates+=("$rb")
	e2e_rates+=("$e2e")
	rt_rates+=("$rt")
	rb_ratios+=("$(ratio "$e2e" "$rb")")
	rt_ratios+=("$(ratio "$e2e" "$rt")")
	two_ratios+=("$(ratio "$two" "$e2e")")
	printf 'round %d: redis-benchmark %.0f/s, e2e %.0f jobs/s, roundtrip %.0f jobs/s, e2e/redis-benchmark %s, e2e/roundtrip %s, two publishers/e2e %s\n' \
		"$round" "$rb" "$e2e" "$rt" "${rb_ratios[-1]}" "${rt_ratios[-1]}" "${two_ratios[-1]}"
done

echo "== cross-check of the round-trip rate"
# redis-benchmark without pipelining measures the same one-round-trip-per-
# command rate as pushbench -mode roundtrip, without the library's client.
rb1_out=$(run timeout 300 redis-benchmark -h 127.0.0.1 -p "$port" -t rpush -P 1 -c 1 -d 120 -n $((ROUNDTRIP_JOBS / 4)) -q)
rb1=$(tr '\r' '\n' <<<"$rb1_out" | awk '/^RPUSH:/ { rate = $2 } END { print rate }')
echo "redis-benchmark -P 1 -c 1: $rb1 requests/s"
flushall

echo "== e2e with the batcher's time split"
split_args=(-mode e2e -addr "$addr" -n "$JOBS" -split)
if [ -n "$PROFILE_DIR" ]; then
	mkdir -p "$PROFILE_DIR"
	cp "$work/pushbench" "$PROFILE_DIR/pushbench"
	split_args+=(-cpuprofile "$PROFILE_DIR/e2e.cpu.prof")
fi
run timeout 300 "$work/pushbench" "${split_args[@]}"
flushall

echo "== latency at 1000 jobs/s for $LATENCY_DURATION"
latency_lines=()
for interval in 500ms 0; do
	out=$(run timeout 120 "$work/pushbench" -mode latency -addr "$addr" -rate 1000 -duration "$LATENCY_DURATION" -interval "$interval")
	echo "$out"
	latency_lines+=("flush interval $interval: p50 $(result_field "$out" p50_ms)ms, p99 $(result_field "$out" p99_ms)ms, max $(result_field "$out" max_ms)ms")
	flushall
done

memory_line="not measured: cmd/pushdemo does not build"
if [ "$demo_built" = yes ]; then
	dead_port=$(free_port)
	echo "== memory: pushdemo for $DEMO_DURATION with no server on 127.0.0.1:$dead_port"
	demo_cmd=("$work/pushdemo" -addr "127.0.0.1:$dead_port" -duration "$DEMO_DURATION")
	status=0
	if [ -x /usr/bin/time ]; then
		echo "+ /usr/bin/time -v timeout 300 ${demo_cmd[*]}" >&2
		/usr/bin/time -v -o "$work/time.txt" timeout 300 "${demo_cmd[@]}" >"$work/demo.out" 2>&1 || status=$?
		peak_kb=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$work/time.txt")
		method="/usr/bin/time -v"
	else
		# Without GNU time, sample the kernel's peak RSS of the process.
		echo "+ timeout 300 ${demo_cmd[*]} (sampling VmHWM)" >&2
		timeout 300 "${demo_cmd[@]}" >"$work/demo.out" 2>&1 &
		demo_pid=$!
		peak_kb=0
		while kill -0 "$demo_pid" 2>/dev/null; do
			hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$demo_pid/status" 2>/dev/null || true)
			if [ -n "$hwm" ] && [ "$hwm" -gt "$peak_kb" ]; then
				peak_kb=$hwm
			fi
			sleep 0.1
		done
		wait "$demo_pid" || status=$?
		demo_pid=""
		method="VmHWM sampled every 100ms"
	fi
	tail -n 25 "$work/demo.out"
	echo "pushdemo exit status: $status (1 is expected: every write fails without a server)"
	# The demo runs with the default buffer limits, read from options.go.
	buffer_jobs=$(awk '/DefaultBufferSize *=/ { print $3 }' options.go)
	buffer_bytes=$(awk '/DefaultMaxBufferedBytes *=/ { v = $3; if ($4 == "<<") v = $3 * 2 ^ $5; print v }' options.go)
	memory_line=$(awk -v kb="$peak_kb" -v m="$method" -v j="$buffer_jobs" -v b="$buffer_bytes" \
		'BEGIN { printf "peak RSS %.1f MiB (%s); buffer limits (defaults): %s jobs, %.0f MiB of payload", kb / 1024, m, j, b / 1048576 }')
fi

# speedups prints, for each Publish benchmark in go test output, its
# ns/op, its allocs/op and how many times faster it is than the
# JSONMarshalMap benchmark of the same helper, size and mode.
speedups() {
	awk '
		/^Benchmark(Publish|JSONMarshalMap)[A-Za-z0-9]*\// {
			name = $1; sub(/^Benchmark/, "", name)
			ns = ""; allocs = ""
			for (i = 3; i < NF; i++) {
				if ($(i + 1) == "ns/op") ns = $i
				if ($(i + 1) == "allocs/op") allocs = $i
			}
			if (name ~ /^JSONMarshalMap/) { sub(/^JSONMarshalMap/, "", name); ref[name] = ns }
			else { sub(/^Publish/, "", name); if (!(name in pub)) order[++n] = name; pub[name] = ns; pubAllocs[name] = allocs }
		}
		END {
			for (i = 1; i <= n; i++) {
				k = order[i]
				if (k in ref) printf "  %-28s %9.1f ns/op %s allocs/op, json.Marshal %9.1f ns/op, speedup %.2fx\n", k, pub[k], pubAllocs[k], ref[k], ref[k] / pub[k]
			}
		}'
}

if [ "$MICRO_ROUNDS" -gt 0 ]; then
	echo "== publish benchmarks, $MICRO_ROUNDS rounds"
	for round in $(seq 1 "$MICRO_ROUNDS"); do
		echo "round $round:"
		# One go test run per helper keeps each Publish benchmark a few
		# seconds from its json.Marshal reference on a noisy machine.
		for helper in Peer Group Customer CustomerV2 System; do
			if ! out=$(run timeout 300 go test -run '^$' -bench "^Benchmark(Publish|JSONMarshalMap)$helper\$" -benchmem -count 1 . 2>&1); then
				echo "bench.sh: the $helper benchmarks failed:" >&2
				tail -n 20 <<<"$out" >&2
				continue
			fi
			speedups <<<"$out"
		done
	done
fi

echo "== summary"
echo "redis-benchmark RPUSH -P 1000 -c 1 -d 120: ${rb_rates[*]} requests/s, median $(median "${rb_rates[@]}")"
echo "pushbench e2e, $JOBS jobs:               ${e2e_rates[*]} jobs/s, median $(median "${e2e_rates[@]}")"
echo "pushbench roundtrip, $ROUNDTRIP_JOBS jobs:     ${rt_rates[*]} jobs/s, median $(median "${rt_rates[@]}")"
echo "redis-benchmark RPUSH -P 1 -c 1 (cross-check of roundtrip): $rb1 requests/s"
echo "e2e / redis-benchmark per round: ${rb_ratios[*]}, median $(median "${rb_ratios[@]}") (target at least 1.5)"
echo "e2e / roundtrip per round:       ${rt_ratios[*]}, median $(median "${rt_ratios[@]}") (target at least 40)"
echo "e2e with two publishers / e2e per round: ${two_ratios[*]}, median $(median "${two_ratios[@]}")"
for line in "${latency_lines[@]}"; do
	echo "latency, $line (target p99 under 2ms with flush interval 0)"
done
echo "pushdemo with no server: $memory_line"
