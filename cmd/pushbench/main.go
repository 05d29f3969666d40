// Command pushbench measures the push library against a Redis server on
// loopback. scripts/bench.sh starts a server, runs every mode and prints
// the figures that BENCHMARKS.md records.
//
// Modes:
//
//	-mode e2e        publish -n pre-encoded jobs with PushChan from -workers
//	                 goroutines and report jobs/s, from the first PushChan
//	                 call until Close returns and LLEN confirms every job
//	-mode roundtrip  write the same jobs with one RPUSH round trip each on
//	                 one redigo connection and report jobs/s
//	-mode latency    publish -rate jobs/s for -duration with the Publish
//	                 helpers, pop them with BLPOP on a second connection and
//	                 report the publish-to-pop latency percentiles
//
// pushbench deletes the queues it writes before and after each run, so
// point it only at a server that holds nothing of value. It accepts only
// loopback addresses.
//
// Every mode ends with one line that starts with "RESULT" and holds
// key=value pairs, for scripts.
package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"runtime/pprof"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/sirupsen/logrus"

	"github.com/imkit/push"
)

// config holds the command-line flags.
type config struct {
	mode       string
	addr       string
	jobs       int
	workers    int
	publishers int
	jobSize    int
	batchSize  int
	bufferSize int
	split      bool
	keep       bool
	cpuProfile string

	rate     int
	duration time.Duration
	interval time.Duration
}

func main() {
	var cfg config
	flag.StringVar(&cfg.mode, "mode", "e2e", "what to measure: e2e, roundtrip or latency")
	flag.StringVar(&cfg.addr, "addr", "127.0.0.1:6379", "host:port of the Redis server; only loopback addresses are accepted")
	flag.IntVar(&cfg.jobs, "n", 2_000_000, "number of jobs in e2e and roundtrip mode")
	flag.IntVar(&cfg.workers, "workers", 4, "goroutines calling PushChan in e2e mode")
	flag.IntVar(&cfg.publishers, "publishers", 1, "in e2e mode, Publishers that the workers share round-robin, each with its own batcher; more than one is an experiment that keeps several transactions in flight")
	flag.IntVar(&cfg.jobSize, "size", 130, "size of each encoded job in e2e and roundtrip mode, in bytes")
	flag.IntVar(&cfg.batchSize, "batch-size", push.DefaultBatchSize, "WithBatchSize: maximum jobs per transaction")
	flag.IntVar(&cfg.bufferSize, "buffer", push.DefaultBufferSize, "WithBufferSize: capacity of the publisher's buffer, in jobs")
	flag.BoolVar(&cfg.split, "split", false, "in e2e mode, time the batcher's connection calls and sample the buffer fill")
	flag.BoolVar(&cfg.keep, "keep", false, "leave the written queues in Redis after the run")
	flag.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write a CPU profile of the measured part of the run to this file")
	flag.IntVar(&cfg.rate, "rate", 1000, "jobs per second in latency mode")
	flag.DurationVar(&cfg.duration, "duration", 10*time.Second, "length of the publish phase in latency mode")
	flag.DurationVar(&cfg.interval, "interval", push.DefaultFlushInterval, "WithFlushInterval in latency mode; 0 selects the library's latency mode")
	flag.Parse()

	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "pushbench:", err)
		os.Exit(1)
	}
}

func run(cfg config) error {
	if err := checkLoopback(cfg.addr); err != nil {
		return err
	}
	if cfg.jobs < 1 || cfg.workers < 1 || cfg.publishers < 1 || cfg.rate < 1 || cfg.duration <= 0 {
		return errors.New("-n, -workers, -publishers, -rate and -duration must be positive")
	}
	if cfg.split && cfg.publishers > 1 {
		return errors.New("-split times one batcher, so it needs -publishers 1")
	}

	pool := newPool(cfg.addr)
	defer pool.Close()
	if err := ping(pool); err != nil {
		return fmt.Errorf("no Redis server responds on %s: %w", cfg.addr, err)
	}

	switch cfg.mode {
	case "e2e":
		return runE2E(cfg, pool)
	case "roundtrip":
		return runRoundTrip(cfg, pool)
	case "latency":
		return runLatency(cfg, pool)
	}
	return fmt.Errorf("unknown -mode %q: use e2e, roundtrip or latency", cfg.mode)
}

// checkLoopback returns an error unless addr is a loopback host:port.
// The benchmark deletes lists, so it must not reach a shared server.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("invalid -addr %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("invalid -addr %q: pushbench deletes the push queues, so it only runs against a loopback address such as 127.0.0.1", addr)
}

func newPool(addr string) *redis.Pool {
	return &redis.Pool{
		Dial: func() (redis.Conn, error) {
			return redis.Dial("tcp", addr,
				redis.DialConnectTimeout(2*time.Second),
				redis.DialReadTimeout(10*time.Second),
				redis.DialWriteTimeout(10*time.Second))
		},
		MaxIdle: 4,
	}
}

func ping(pool *redis.Pool) error {
	conn := pool.Get()
	defer conn.Close()
	_, err := conn.Do("PING")
	return err
}

// newLogger returns a logger that prints the library's warnings and
// errors, which a clean run has none of, to stderr.
func newLogger() *logrus.Logger {
	logger := logrus.New()
	logger.Out = os.Stderr
	logger.Level = logrus.WarnLevel
	return logger
}

// startProfile starts a CPU profile when path is set and returns the
// function that stops it.
func startProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "pushbench: writing the CPU profile:", err)
		}
	}, nil
}
