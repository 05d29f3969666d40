// Command pushdemo publishes a realistic stream of offline push jobs
// through a push.Publisher, closes it, and checks that every accepted job
// reached Redis and decodes into its payload type.
//
// Without -addr it starts an embedded miniredis on 127.0.0.1, so it needs
// no setup:
//
//	go run ./cmd/pushdemo
//	go run ./cmd/pushdemo -n 20000
//	go run ./cmd/pushdemo -addr 127.0.0.1:6380 -db 15
//	go run ./cmd/pushdemo -addr 127.0.0.1:6380 -duration 1m
//
// Run it with -h for the flags, the timeouts and the exit codes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/gomodule/redigo/redis"
	"github.com/sirupsen/logrus"

	"github.com/imkit/push"
)

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1 // a job is missing or failed, an entry is bad, or Redis is unreachable
	exitUsage  = 2 // invalid flags
)

// Settings of the run, stated in the help text.
const (
	publishers        = 4 // goroutines that publish, like an IM server's message handlers
	defaultMessages   = 100_000
	retryTimeout      = 3 * time.Second
	writeTimeout      = 2 * time.Second
	enqueueTimeout    = time.Second
	closeTimeout      = 10 * time.Second
	shortCloseTimeout = 2 * time.Second // after -duration, or after jobs failed
	dialTimeout       = time.Second
	ioTimeout         = 5 * time.Second // DialReadTimeout and DialWriteTimeout
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.Is(err, errFlagsReported):
		return exitUsage
	case err != nil:
		fmt.Fprintf(stderr, "pushdemo: %v\nRun it with -h for the flags.\n", err)
		return exitUsage
	}

	logger := logrus.New()
	logger.SetOutput(stderr)
	logger.SetLevel(logrus.InfoLevel)

	d := &demo{cfg: cfg, out: stdout, errOut: stderr, logger: logger, queues: newQueueSet(romApps)}
	return d.run()
}

// config holds the parsed flags.
type config struct {
	messages int
	duration time.Duration // publish for this long instead of messages
	addr     string        // a real Redis, or "" for the embedded miniredis
	db       int
}

// errFlagsReported is returned when the flag package has already printed
// the error and the usage.
var errFlagsReported = errors.New("invalid flags")

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("pushdemo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&cfg.messages, "n", defaultMessages,
		"the `number` of messages to publish, at least 1")
	fs.DurationVar(&cfg.duration, "duration", 0,
		"publish at full speed for this long instead of -n messages, for example 30s or 5m.\n"+
			"With -addr at a port where Redis is stopped, it shows how much memory the\n"+
			"publisher uses while every write fails")
	fs.StringVar(&cfg.addr, "addr", "",
		"`host:port` of a real Redis to write to instead of the embedded miniredis.\n"+
			"The demo writes to the real queue names that the push service reads\n"+
			"(push_queue, group_push_queue, ...), so never point it at a Redis that a\n"+
			"push service consumes: the service would send the demo's pushes, and the\n"+
			"check after the run would report its pops as missing jobs")
	fs.IntVar(&cfg.db, "db", 0,
		"the database `number` to select on the -addr Redis")
	fs.Usage = func() { printUsage(fs) }

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, err
		}
		return cfg, errFlagsReported
	}

	set := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return cfg, cfg.validate(set, fs.Args())
}

func (cfg config) validate(set map[string]bool, rest []string) error {
	switch {
	case len(rest) > 0:
		return fmt.Errorf("unexpected argument %q: pushdemo takes only flags", rest[0])
	case set["n"] && set["duration"]:
		return errors.New("use either -n or -duration, not both: -duration publishes for a time instead of a number of messages")
	case cfg.messages < 1:
		return fmt.Errorf("invalid -n %d: the number of messages must be at least 1", cfg.messages)
	case set["duration"] && cfg.duration <= 0:
		return fmt.Errorf("invalid -duration %v: it must be positive, for example 30s", cfg.duration)
	case cfg.db < 0:
		return fmt.Errorf("invalid -db %d: the database number must not be negative", cfg.db)
	case set["db"] && cfg.addr == "":
		return errors.New("-db selects a database of the -addr Redis, so it needs -addr")
	case set["addr"]:
		return validateAddr(cfg.addr)
	}
	return nil
}

func validateAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("invalid -addr %q: %v. Want host:port, for example 127.0.0.1:6379", addr, err)
	}
	if host == "" {
		return fmt.Errorf("invalid -addr %q: the host is missing. Want host:port, for example 127.0.0.1:6379", addr)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return fmt.Errorf("invalid -addr %q: the port must be a number from 1 to 65535", addr)
	}
	return nil
}

func printUsage(fs *flag.FlagSet) {
	out := fs.Output()
	fmt.Fprint(out, `Usage: go run ./cmd/pushdemo [flags]

Publishes a mixed stream of offline push jobs (peer, group, customer,
customer V2 and system messages, with Chinese and emoji text, groups of 2
to 500 receivers, and ROM apps 7 and 9 with per-app queues) through a
push.Publisher from 4 goroutines, closes it, and checks that every
accepted job is in Redis and decodes into its payload type. Without -addr
it starts an embedded miniredis on 127.0.0.1.

Flags:
`)
	fs.PrintDefaults()
	fmt.Fprintf(out, `
Timeouts: the publisher retries a failing batch for %v (WithRetryTimeout).
Each write attempt waits at most %v for a connection and for the reply
(WithWriteTimeout), and the connections time out socket reads and writes
after %v (DialReadTimeout, DialWriteTimeout). A publish waits up to %v for
room in a full buffer before the job is dropped (WithEnqueueTimeout).
Close waits up to %v, or %v after -duration or after jobs failed, then
fails the jobs it could not write, though it still awaits a transaction
already sent. Without -duration, an -addr where no Redis responds ends the
run at once with an error.

The check after the run reads every new entry of a queue, or %d entries
spread over the new ones when there are more.

Exit status:
  %d  every accepted job is in Redis and every checked entry decodes
  %d  a job is missing or failed, an entry does not decode, or Redis
     cannot be reached
  %d  invalid flags
`, retryTimeout, writeTimeout, ioTimeout, enqueueTimeout, closeTimeout, shortCloseTimeout,
		maxCheckedEntries, exitOK, exitFailed, exitUsage)
}

// demo is the state of one run.
type demo struct {
	cfg    config
	out    io.Writer
	errOut io.Writer
	logger *logrus.Logger

	target   string // the Redis that the jobs go to, as messages name it
	pool     *redis.Pool
	queues   *queueSet
	failures failureRecorder
}

// run connects to Redis, publishes, closes the publisher, checks the
// queues and prints the report. It returns the exit code.
func (d *demo) run() int {
	stopRedis, err := d.connect()
	if err != nil {
		d.logger.WithError(err).Error("pushdemo: starting miniredis failed")
		return exitFailed
	}
	defer stopRedis()

	before, err := queueLengths(d.pool, d.queues.all)
	if err != nil {
		if !d.publishWithoutRedis(err) {
			return exitFailed
		}
		before = nil
	}

	publisher, err := push.NewPublisher(d.pool,
		push.WithLogger(d.logger),
		push.WithROMApps(isROMApp),
		push.WithEnqueueTimeout(enqueueTimeout),
		push.WithRetryTimeout(retryTimeout),
		push.WithWriteTimeout(writeTimeout),
		push.WithErrorHandler(d.failures.record),
	)
	if err != nil {
		d.logger.WithError(err).Error("pushdemo: creating the publisher failed")
		return exitFailed
	}

	d.printPlan()
	outcome := d.publish(publisher)
	d.close(publisher, &outcome)
	return d.report(publisher, before, outcome)
}

// connect starts the embedded miniredis unless -addr is set, and makes the
// pool. The returned function closes both.
func (d *demo) connect() (func(), error) {
	addr := d.cfg.addr
	stopServer := func() {}
	if addr == "" {
		server, err := miniredis.Run()
		if err != nil {
			return nil, err
		}
		addr, stopServer = server.Addr(), server.Close
		d.target = "the embedded miniredis at " + addr
	} else {
		d.target = fmt.Sprintf("Redis at %s, database %d", addr, d.cfg.db)
	}

	d.pool = newPool(addr, d.cfg.db)
	return func() {
		d.pool.Close()
		stopServer()
	}, nil
}

func newPool(addr string, db int) *redis.Pool {
	return &redis.Pool{
		DialContext: func(ctx context.Context) (redis.Conn, error) {
			return redis.DialContext(ctx, "tcp", addr,
				redis.DialConnectTimeout(dialTimeout),
				redis.DialReadTimeout(ioTimeout),
				redis.DialWriteTimeout(ioTimeout),
				redis.DialDatabase(db))
		},
		MaxIdle:     8,
		IdleTimeout: time.Minute,
	}
}

// publishWithoutRedis reports that the queue lengths could not be read
// before the run, and returns whether to publish anyway. It returns true
// only with -duration, and only when Redis did not respond at all.
func (d *demo) publishWithoutRedis(err error) bool {
	var reply redis.Error
	isReply := errors.As(err, &reply)
	if d.cfg.duration > 0 && !isReply {
		d.logger.WithError(err).Warnf("pushdemo: %s does not respond. Publishing for %v anyway, but the queues will not be checked", d.target, d.cfg.duration)
		return true
	}

	switch {
	case isReply && strings.HasPrefix(string(reply), "WRONGTYPE"):
		fmt.Fprintf(d.errOut, "pushdemo: reading the queue lengths from %s failed: %v\nA queue name there is a key that is not a list. Choose another -db, or delete that key.\n", d.target, err)
	case isReply:
		fmt.Fprintf(d.errOut, "pushdemo: reading the queue lengths from %s failed: %v\nCheck that -addr and -db name a Redis that accepts commands from this client.\n", d.target, err)
	default:
		fmt.Fprintf(d.errOut, "pushdemo: cannot reach %s: %v\nStart redis-server there, fix -addr, or leave -addr out to use the embedded miniredis.\n", d.target, err)
	}
	return false
}

func (d *demo) printPlan() {
	amount := fmt.Sprintf("%d messages", d.cfg.messages)
	if d.cfg.duration > 0 {
		amount = "for " + d.cfg.duration.String()
	}
	fmt.Fprintf(d.out, "Publishing %s from %d goroutines to %s.\n", amount, publishers, d.target)
	fmt.Fprintf(d.out, "ROM apps %d and %d write to per-app queues such as %s.\n",
		romApps[0], romApps[1], romQueueName(push.PeerQueue, romApps[0]))
	if d.cfg.addr != "" {
		fmt.Fprintln(d.out, "The jobs go to the real queue names that a push service reads, and stay there after the run.")
	}
}

// Why the publish phase stopped before its target.
var (
	errInterrupted = errors.New("interrupted by a signal")
	errJobsFailed  = errors.New("jobs failed, so Redis is not taking writes")
	errDurationEnd = errors.New("the -duration ended")
)

// publishOutcome holds the timings and results of the publish phase and of
// Close, for the report.
type publishOutcome struct {
	generators []*generator
	start      time.Time
	published  time.Time // when the last publish returned
	closed     time.Time // when Close returned
	stopCause  error     // errDurationEnd, errInterrupted, errJobsFailed, or nil
	closeErr   error
	peakHeap   uint64 // bytes of live heap objects, sampled during the publish phase
}

// publish runs the publishing goroutines until they have published -n
// messages, -duration has passed, a signal arrives, or, without
// -duration, the first jobs fail.
func (d *demo) publish(publisher *push.Publisher) publishOutcome {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	// After the publish phase a second signal ends the process at once.
	defer signal.Stop(signals)

	var failed <-chan struct{}
	if d.cfg.duration > 0 {
		timer := time.AfterFunc(d.cfg.duration, func() { cancel(errDurationEnd) })
		defer timer.Stop()
	} else {
		failed = d.failures.firstFailure()
	}
	watcherDone := make(chan struct{})
	go func() {
		defer close(watcherDone)
		select {
		case <-signals:
			cancel(errInterrupted)
		case <-failed:
			cancel(errJobsFailed)
		case <-ctx.Done():
		}
	}()

	outcome := publishOutcome{start: time.Now()}
	bar := startProgress(d.out, publisher, d.cfg, outcome.start)
	var wg sync.WaitGroup
	for w := range publishers {
		g := newGenerator(uint64(w+1), publisher, d.queues)
		outcome.generators = append(outcome.generators, g)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; d.cfg.duration > 0 || i < d.cfg.messages; i += publishers {
				if ctx.Err() != nil {
					return
				}
				g.publishOne()
			}
		}()
	}
	wg.Wait()
	outcome.published = time.Now()
	bar.finish()
	outcome.peakHeap = bar.peakHeap

	outcome.stopCause = context.Cause(ctx)
	if errors.Is(outcome.stopCause, context.Canceled) {
		outcome.stopCause = nil
	}
	cancel(nil)
	<-watcherDone
	return outcome
}

// close closes the publisher, with a short timeout when Redis is known to
// be failing or the run was for memory measurement.
func (d *demo) close(publisher *push.Publisher, outcome *publishOutcome) {
	timeout := closeTimeout
	if d.cfg.duration > 0 || outcome.stopCause == errJobsFailed {
		timeout = shortCloseTimeout
	}
	switch outcome.stopCause {
	case nil, errDurationEnd:
	default:
		fmt.Fprintf(d.out, "Stopped publishing early: %v.\n", outcome.stopCause)
	}
	fmt.Fprintf(d.out, "Closing the publisher (timeout %v)...\n", timeout)

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	outcome.closeErr = publisher.Close(ctx)
	outcome.closed = time.Now()
}

// failureRecorder is the publisher's error handler. It counts the failed
// jobs of each queue and signals the first failure.
type failureRecorder struct {
	mu      sync.Mutex
	byQueue map[string]uint64
	first   chan struct{}
}

func (r *failureRecorder) firstFailure() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.first == nil {
		r.first = make(chan struct{})
	}
	return r.first
}

// record runs on the batcher goroutine, so it only counts. The library
// has already logged the error.
func (r *failureRecorder) record(failed []push.Push, _ error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byQueue == nil {
		r.byQueue = make(map[string]uint64)
	}
	for _, job := range failed {
		r.byQueue[job.Queue]++
	}
	if r.first == nil {
		r.first = make(chan struct{})
	}
	select {
	case <-r.first:
	default:
		close(r.first)
	}
}

func (r *failureRecorder) count(queue string) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byQueue[queue]
}
