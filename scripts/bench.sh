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
#  3. when OLD_PUSHBENCH is set, PAIRS pairs of e2e runs of that binary
#     (pushbench built from another commit) and of the current one, back to
#     back on the same server in alternating order, each pair printing the
#     ratio current/old;
#  4. publish-to-pop latency at 1,000 jobs/s with flush intervals 500ms and 0;
#  5. the peak RSS of cmd/pushdemo publishing for DEMO_DURATION to a port
#     where no server listens, next to the publisher's buffer limits;
#  6. when MICRO_ROUNDS is above 0, the publish benchmarks of bench_test.go
#     next to their json.Marshal references, MICRO_ROUNDS times, each round
#     printing the speedup of every Publish helper over json.Marshal, and
#     utf8.ValidString alone on the same contents.
#
# It starts its own redis-server on a free 127.0.0.1 port with persistence
# off, talks to no other address, bounds every step with timeout, and stops
# the server and removes its files on exit.
#
# Environment: ROUNDS (3), JOBS (2000000), ROUNDTRIP_JOBS (200000),
# LATENCY_DURATION (10s), DEMO_DURATION (30s), MICRO_ROUNDS (0),
# OLD_PUSHBENCH (unset), PAIRS (4) and PROFILE_DIR (unset).
# With PROFILE_DIR set, one more e2e run writes e2e.cpu.prof there, next to
# a copy of the pushbench binary. The serial 100B and 2KB cases of
# BenchmarkPublishPeer write publish100B.cpu.prof and publish2KB.cpu.prof,
# next to the test binary push.test. Read them with go tool pprof.
# The defaults take 2 to 3 minutes, MICRO_ROUNDS=3 adds about 3, and
# OLD_PUSHBENCH adds about 10 seconds per pair.
#
# Usage: scripts/bench.sh
#        OLD_PUSHBENCH=/tmp/pushbench-old scripts/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
JOBS=${JOBS:-2000000}
ROUNDTRIP_JOBS=${ROUNDTRIP_JOBS:-200000}
LATENCY_DURATION=${LATENCY_DURATION:-10s}
DEMO_DURATION=${DEMO_DURATION:-30s}
MICRO_ROUNDS=${MICRO_ROUNDS:-0}
PROFILE_DIR=${PROFILE_DIR:-}
OLD_PUSHBENCH=${OLD_PUSHBENCH:-}
PAIRS=${PAIRS:-4}

for tool in go redis-server redis-cli redis-benchmark timeout awk; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "bench.sh: $tool is not installed" >&2
		exit 1
	fi
done

if [ -n "$OLD_PUSHBENCH" ] && [ ! -x "$OLD_PUSHBENCH" ]; then
	echo "bench.sh: OLD_PUSHBENCH=$OLD_PUSHBENCH is not an executable file" >&2
	exit 1
fi

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

	# Two Publishers, each with its own batcher and connection, show
	# whether a second batcher adds anything to one that pipelines.
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
run timeout 300 "$work/pushbench" -mode e2e -addr "$addr" -n "$JOBS" -split
flushall

if [ -n "$PROFILE_DIR" ]; then
	echo "== e2e with a CPU profile in $PROFILE_DIR"
	mkdir -p "$PROFILE_DIR"
	cp "$work/pushbench" "$PROFILE_DIR/pushbench"
	run timeout 300 "$work/pushbench" -mode e2e -addr "$addr" -n "$JOBS" -cpuprofile "$PROFILE_DIR/e2e.cpu.prof"
	flushall
fi

pair_ratios=()
if [ -n "$OLD_PUSHBENCH" ]; then
	echo "== e2e of $OLD_PUSHBENCH and of the current code, $PAIRS pairs"
	for pair in $(seq 1 "$PAIRS"); do
		# Alternating which binary runs first keeps a drift of the machine
		# from favouring one of them.
		if [ $((pair % 2)) -eq 1 ]; then
			order=(old new)
		else
			order=(new old)
		fi
		for binary in "${order[@]}"; do
			binary="$work/pushbench"
			if [ "$binary" = old ]; then
				binary=$OLD_PUSHBENCH
			fi
			out=$(run timeout 300 "$binary" -mode e2e -addr "$addr" -n "$JOBS")
			echo "$out"
			rate=$(result_field "$out" jobs_per_s)
			if [ -z "$rate" ]; then
				echo "bench.sh: the $binary pushbench printed no rate in pair $pair" >&2
				exit 1
			fi
			if [ "$binary" = old ]; then old_rate=$rate; else new_rate=$rate; fi
			flushall
		done
		pair_ratios+=("$(ratio "$new_rate" "$old_rate")")
		printf 'pair %d (%s first): old %.0f jobs/s, current %.0f jobs/s, current/old %s\n' \
			"$pair" "${order[0]}" "$old_rate" "$new_rate" "${pair_ratios[-1]}"
	done
fi

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
		/^BenchmarkUTF8ValidString\// {
			name = $1; sub(/^BenchmarkUTF8ValidString\//, "", name)
			for (i = 3; i < NF; i++) if ($(i + 1) == "ns/op") valid[name] = $i
		}
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
			for (k in valid) {
				peer = "Peer/" k
				if ((peer in pub) && (peer in ref))
					printf "  utf8.ValidString %-17s %9.1f ns/op; Publish Peer %.2fx and json.Marshal %.2fx of it\n", k, valid[k], pub[peer] / valid[k], ref[peer] / valid[k]
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
			pattern="^Benchmark(Publish|JSONMarshalMap)$helper\$"
			if [ "$helper" = Peer ]; then
				pattern="$pattern|^BenchmarkUTF8ValidString\$"
			fi
			if ! out=$(run timeout 300 go test -run '^$' -bench "$pattern" -benchmem -count 1 . 2>&1); then
				echo "bench.sh: the $helper benchmarks failed:" >&2
				tail -n 20 <<<"$out" >&2
				continue
			fi
			speedups <<<"$out"
		done
	done
fi

if [ -n "$PROFILE_DIR" ]; then
	echo "== publish CPU profiles in $PROFILE_DIR"
	for size in 100B 2KB; do
		run timeout 300 go test -run '^$' -bench "^BenchmarkPublishPeer\$/^$size\$/^serial\$" -benchtime 3s \
			-cpuprofile "$PROFILE_DIR/publish$size.cpu.prof" -o "$PROFILE_DIR/push.test" . | grep '^Benchmark' ||
			echo "bench.sh: the $size publish profile failed" >&2
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
if [ ${#pair_ratios[@]} -gt 0 ]; then
	echo "e2e current / $OLD_PUSHBENCH per pair: ${pair_ratios[*]}, median $(median "${pair_ratios[@]}")"
fi
for line in "${latency_lines[@]}"; do
	echo "latency, $line (target p99 under 2ms with flush interval 0)"
done
echo "pushdemo with no server: $memory_line"
