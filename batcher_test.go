package push_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/sirupsen/logrus"

	"github.com/imkit/push"
)

// recordedCommand is one command sent on a recordingConn, with its
// arguments as strings.
type recordedCommand struct {
	Name string
	Args []string
}

func (c recordedCommand) String() string {
	return strings.TrimSpace(c.Name + " " + strings.Join(c.Args, " "))
}

// recordingPool wraps a pool and records the commands sent on each
// connection it hands out. A session is the commands of one connection,
// kept when the connection is closed. With a reply delay, every read of
// replies waits that long first, like a slow server.
type recordingPool struct {
	inner      push.Pool
	replyDelay time.Duration

	mu       sync.Mutex
	gets     int
	sessions [][]recordedCommand
}

func (r *recordingPool) GetContext(ctx context.Context) (redis.Conn, error) {
	r.mu.Lock()
	r.gets++
	r.mu.Unlock()

	conn, err := r.inner.GetContext(ctx)
	if err != nil {
		return nil, err
	}
	return &recordingConn{Conn: conn, pool: r}, nil
}

// Gets returns the number of GetContext calls.
func (r *recordingPool) Gets() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.gets
}

// Sessions returns the commands of each closed connection.
func (r *recordingPool) Sessions() [][]recordedCommand {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.sessions)
}

// recordingConn records the commands sent through it and passes every
// call to the real connection. It implements redis.ConnWithContext and
// redis.ConnWithTimeout, as redigo's own connections do, so the library
// takes the same code paths as without it.
type recordingConn struct {
	redis.Conn
	pool     *recordingPool
	commands []recordedCommand
}

var (
	_ redis.ConnWithContext = (*recordingConn)(nil)
	_ redis.ConnWithTimeout = (*recordingConn)(nil)
)

// record keeps cmd unless it is empty, which only flushes and reads.
func (c *recordingConn) record(cmd string, args []any) {
	if cmd == "" {
		return
	}
	rec := recordedCommand{Name: cmd}
	for _, arg := range args {
		switch arg := arg.(type) {
		case string:
			rec.Args = append(rec.Args, arg)
		case []byte:
			rec.Args = append(rec.Args, string(arg))
		default:
			rec.Args = append(rec.Args, fmt.Sprint(arg))
		}
	}
	c.commands = append(c.commands, rec)
}

// delay waits for the pool's reply delay, or until ctx ends.
func (c *recordingConn) delay(ctx context.Context) {
	if c.pool.replyDelay <= 0 || ctx.Err() != nil {
		return
	}
	timer := time.NewTimer(c.pool.replyDelay)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
}

func (c *recordingConn) Send(cmd string, args ...any) error {
	c.record(cmd, args)
	return c.Conn.Send(cmd, args...)
}

func (c *recordingConn) Do(cmd string, args ...any) (any, error) {
	c.record(cmd, args)
	c.delay(context.Background())
	return c.Conn.Do(cmd, args...)
}

func (c *recordingConn) DoContext(ctx context.Context, cmd string, args ...any) (any, error) {
	c.record(cmd, args)
	c.delay(ctx)
	return redis.DoContext(c.Conn, ctx, cmd, args...)
}

func (c *recordingConn) DoWithTimeout(timeout time.Duration, cmd string, args ...any) (any, error) {
	c.record(cmd, args)
	return redis.DoWithTimeout(c.Conn, timeout, cmd, args...)
}

func (c *recordingConn) ReceiveContext(ctx context.Context) (any, error) {
	return redis.ReceiveContext(c.Conn, ctx)
}

func (c *recordingConn) ReceiveWithTimeout(timeout time.Duration) (any, error) {
	return redis.ReceiveWithTimeout(c.Conn, timeout)
}

func (c *recordingConn) Close() error {
	c.pool.mu.Lock()
	c.pool.sessions = append(c.pool.sessions, c.commands)
	c.pool.mu.Unlock()
	return c.Conn.Close()
}

// wantCmd builds an expected recordedCommand.
func wantCmd(name string, args ...string) recordedCommand {
	return recordedCommand{Name: name, Args: args}
}

// checkSessions compares the recorded sessions with want, command by
// command.
func checkSessions(t *testing.T, rec *recordingPool, want [][]recordedCommand) {
	t.Helper()
	got := rec.Sessions()
	if len(got) != len(want) {
		t.Fatalf("%d connections used, want %d: %v", len(got), len(want), got)
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("connection %d sent:\n  %v\nwant\n  %v", i, got[i], want[i])
		}
	}
}

// rpushArgCounts returns the number of jobs of each RPUSH in each
// transaction.
func rpushArgCounts(sessions [][]recordedCommand) [][]int {
	// A session may carry several transactions, because the batcher
	// pipelines under load. Each MULTI starts the next one.
	var counts [][]int
	for _, session := range sessions {
		for _, c := range session {
			switch c.Name {
			case "MULTI":
				counts = append(counts, nil)
			case "RPUSH":
				counts[len(counts)-1] = append(counts[len(counts)-1], len(c.Args)-1)
			}
		}
	}
	return counts
}

func numberedJobs(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

func TestBatcherFlushByCount(t *testing.T) {
	const batchSize = 1000
	server, pool := startMiniredis(t)
	logger, _ := quietLogger()
	p := newPublisher(t, pool, push.WithLogger(logger),
		push.WithBatchSize(batchSize), push.WithFlushInterval(time.Hour))

	want := numberedJobs("job-", batchSize)
	for _, job := range want {
		mustPush(t, p, "q", job)
	}
	waitFor(t, 10*time.Second, "a full batch to land", func() bool { return listLen(t, server, "q") == batchSize })

	if got := p.Stats().Batches; got != 1 {
		t.Errorf("Stats.Batches = %d, want 1", got)
	}
	if got := listEntries(t, server, "q"); !slices.Equal(got, want) {
		t.Errorf("q holds %d jobs, not the %d published in order", len(got), len(want))
	}

	closePublisher(t, p)
	if got := p.Stats().Batches; got != 1 {
		t.Errorf("after Close, Stats.Batches = %d, want 1", got)
	}
}

func TestBatcherFlushByInterval(t *testing.T) {
	const (
		interval = 50 * time.Millisecond
		jobs     = 10
	)
	server, pool := startMiniredis(t)
	rec := &recordingPool{inner: pool}
	logger, _ := quietLogger()
	p := newPublisher(t, rec, push.WithLogger(logger), push.WithFlushInterval(interval))

	// The interval runs from a batch's first job, so time spent idle
	// before it does not count. The wait lets a timer that wrongly ran
	// while idle fire first.
	time.Sleep(2 * interval)

	start := time.Now()
	want := numberedJobs("job-", jobs)
	for _, job := range want {
		mustPush(t, p, "q", job)
	}
	published := time.Since(start)
	waitFor(t, 10*time.Second, "the batch to land", func() bool { return listLen(t, server, "q") == jobs })
	landed := time.Since(start)
	// The batcher closes the connection before it counts the jobs written.
	waitFor(t, 10*time.Second, "the jobs to be counted", func() bool { return p.Stats().Written == jobs })

	if landed < interval {
		t.Errorf("the batch landed %v after its first job, before the flush interval %v", landed, interval)
	}
	if got := listEntries(t, server, "q"); !slices.Equal(got, want) {
		t.Errorf("q = %q, want %q", got, want)
	}
	// Publishing ten jobs takes microseconds, so only a machine that paused
	// the test for a whole interval could split them.
	if published < interval {
		if got := p.Stats().Batches; got != 1 {
			t.Errorf("Stats.Batches = %d, want 1", got)
		}
		if got := rpushArgCounts(rec.Sessions()); !reflect.DeepEqual(got, [][]int{{jobs}}) {
			t.Errorf("jobs per RPUSH per transaction = %v, want [[%d]]", got, jobs)
		}
	} else {
		t.Logf("publishing took %v, longer than the interval; not checking the transaction count", published)
	}
}

func TestBatcherFlushOnClose(t *testing.T) {
	server, pool := startMiniredis(t)
	logger, _ := quietLogger()
	p := newPublisher(t, pool, push.WithLogger(logger), push.WithFlushInterval(time.Hour))

	want := numberedJobs("job-", 10)
	for _, job := range want {
		mustPush(t, p, "q", job)
	}
	if got := p.Stats().Batches; got != 0 {
		t.Errorf("before Close, Stats.Batches = %d, want 0", got)
	}

	closePublisher(t, p)
	if got := listEntries(t, server, "q"); !slices.Equal(got, want) {
		t.Errorf("q = %q, want %q", got, want)
	}
	stats := p.Stats()
	if stats.Batches != 1 {
		t.Errorf("Stats.Batches = %d, want 1", stats.Batches)
	}
	if stats.Written != 10 {
		t.Errorf("Stats.Written = %d, want 10", stats.Written)
	}
	if stats.Buffered != 0 {
		t.Errorf("Stats.Buffered = %d, want 0", stats.Buffered)
	}
}

func TestBatcherLatencyMode(t *testing.T) {
	server, pool := startMiniredis(t)
	logger, _ := quietLogger()
	p := newPublisher(t, pool, push.WithLogger(logger), push.WithFlushInterval(0))

	mustPush(t, p, "q", "alone")
	// Nothing but latency mode writes a lone job before Close.
	waitFor(t, 10*time.Second, "the lone job to land", func() bool { return listLen(t, server, "q") == 1 })
	if got := p.Stats().Batches; got != 1 {
		t.Errorf("Stats.Batches = %d, want 1", got)
	}

	mustPush(t, p, "q", "second")
	waitFor(t, 10*time.Second, "the second job to land", func() bool { return listLen(t, server, "q") == 2 })
	closePublisher(t, p)
	if got, want := listEntries(t, server, "q"), []string{"alone", "second"}; !slices.Equal(got, want) {
		t.Errorf("q = %q, want %q", got, want)
	}
}

func TestBatcherTransactionShape(t *testing.T) {
	server, pool := startMiniredis(t)
	rec := &recordingPool{inner: pool}
	logger, _ := quietLogger()
	p := newPublisher(t, rec, push.WithLogger(logger), push.WithFlushInterval(time.Hour))

	jobs := []push.Push{
		{Queue: "a", Payload: []byte("a1")},
		{Queue: "b", Payload: []byte("b1")},
		{Queue: "a", Payload: []byte("a2")},
		{Queue: "c", Payload: []byte("c1")},
		{Queue: "b", Payload: []byte("b2")},
		{Queue: "a", Payload: []byte("a3")},
	}
	for _, job := range jobs {
		mustPush(t, p, job.Queue, string(job.Payload))
	}
	closePublisher(t, p)

	checkSessions(t, rec, [][]recordedCommand{{
		wantCmd("MULTI"),
		wantCmd("RPUSH", "a", "a1", "a2", "a3"),
		wantCmd("RPUSH", "b", "b1", "b2"),
		wantCmd("RPUSH", "c", "c1"),
		wantCmd("EXEC"),
	}})
	want := map[string][]string{"a": {"a1", "a2", "a3"}, "b": {"b1", "b2"}, "c": {"c1"}}
	for queue, entries := range want {
		if got := listEntries(t, server, queue); !slices.Equal(got, entries) {
			t.Errorf("%s = %q, want %q", queue, got, entries)
		}
	}
	if got := p.Stats().Batches; got != 1 {
		t.Errorf("Stats.Batches = %d, want 1", got)
	}
}

func TestBatcherIdleClose(t *testing.T) {
	_, pool := startMiniredis(t)
	rec := &recordingPool{inner: pool}
	logger, _ := quietLogger()
	p := newPublisher(t, rec, push.WithLogger(logger), push.WithFlushInterval(time.Millisecond))

	closePublisher(t, p)
	if got := rec.Gets(); got != 0 {
		t.Errorf("an idle publisher took %d connections, want 0", got)
	}
	if got := len(rec.Sessions()); got != 0 {
		t.Errorf("an idle publisher sent %d transactions, want 0", got)
	}
	if got := p.Stats().Batches; got != 0 {
		t.Errorf("Stats.Batches = %d, want 0", got)
	}
}

func TestBatcherMaxBatchBytes(t *testing.T) {
	server, pool := startMiniredis(t)
	rec := &recordingPool{inner: pool}
	logger, _ := quietLogger()
	p := newPublisher(t, rec, push.WithLogger(logger), push.WithFlushInterval(time.Hour),
		push.WithMaxBatchBytes(100), push.WithMaxPayloadBytes(100))

	// Four 25-byte jobs fill 100 bytes exactly, and a fifth would pass the
	// limit, so ten jobs make batches of 4, 4 and 2.
	var want []string
	for i := range 10 {
		job := fmt.Sprintf("job-%02d-%s", i, strings.Repeat("x", 18))
		if len(job) != 25 {
			t.Fatalf("job %q is %d bytes, want 25", job, len(job))
		}
		want = append(want, job)
		mustPush(t, p, "q", job)
	}
	closePublisher(t, p)

	if got, wantCounts := rpushArgCounts(rec.Sessions()), [][]int{{4}, {4}, {2}}; !reflect.DeepEqual(got, wantCounts) {
		t.Errorf("jobs per RPUSH per transaction = %v, want %v", got, wantCounts)
	}
	if got := p.Stats().Batches; got != 3 {
		t.Errorf("Stats.Batches = %d, want 3", got)
	}
	if got := listEntries(t, server, "q"); !slices.Equal(got, want) {
		t.Errorf("q = %q, want %q", got, want)
	}
}

func TestBatcherSlowWrite(t *testing.T) {
	const (
		threshold = 20 * time.Millisecond
		delay     = 60 * time.Millisecond
	)
	server, pool := startMiniredis(t)
	rec := &recordingPool{inner: pool, replyDelay: delay}
	logger, hook := quietLogger()
	p := newPublisher(t, rec, push.WithLogger(logger), push.WithFlushInterval(time.Hour),
		push.WithSlowWriteThreshold(threshold))

	mustPush(t, p, "q", "a")
	mustPush(t, p, "q", "b")
	closePublisher(t, p)

	if got := listLen(t, server, "q"); got != 2 {
		t.Errorf("q has %d jobs, want 2", got)
	}
	if got := p.Stats().SlowWrites; got != 1 {
		t.Errorf("Stats.SlowWrites = %d, want 1", got)
	}

	var slow []*logrus.Entry
	for _, e := range hook.AllEntries() {
		if strings.Contains(e.Message, "slow") {
			slow = append(slow, e)
		}
	}
	if len(slow) != 1 {
		t.Fatalf("%d slow-write log entries, want 1", len(slow))
	}
	entry := slow[0]
	if entry.Level != logrus.WarnLevel {
		t.Errorf("slow-write entry at level %v, want warning", entry.Level)
	}
	if got, ok := entry.Data["jobs"].(int); !ok || got != 2 {
		t.Errorf("slow-write jobs field = %#v, want 2", entry.Data["jobs"])
	}
	duration, ok := entry.Data["duration"].(time.Duration)
	if !ok {
		t.Fatalf("slow-write duration field = %#v (%T), want a time.Duration", entry.Data["duration"], entry.Data["duration"])
	}
	if duration < delay {
		t.Errorf("slow-write duration = %v, want at least the reply delay %v", duration, delay)
	}
}

func TestBatcherLogLevels(t *testing.T) {
	_, pool := startMiniredis(t)
	logger, hook := quietLogger()
	// The slow-write warning is off, so a slow machine cannot add one.
	p := newPublisher(t, pool, push.WithLogger(logger), push.WithFlushInterval(0), push.WithSlowWriteThreshold(0))

	for i := range 5 {
		mustPush(t, p, "q", fmt.Sprintf("job-%d", i))
	}
	closePublisher(t, p)

	entries := hook.AllEntries()
	if len(entries) == 0 {
		t.Fatalf("no log entries, want a Debug entry for each written batch")
	}
	var jobs int
	for _, e := range entries {
		if e.Level != logrus.DebugLevel {
			t.Errorf("entry %q at level %v, want only Debug entries for successful writes", e.Message, e.Level)
			continue
		}
		n, ok := e.Data["jobs"].(int)
		if !ok {
			t.Errorf("Debug entry %q has jobs field %#v, want an int", e.Message, e.Data["jobs"])
		}
		jobs += n
	}
	if jobs != 5 {
		t.Errorf("Debug entries count %d jobs, want 5", jobs)
	}
	if got := uint64(len(entries)); got != p.Stats().Batches {
		t.Errorf("%d Debug entries for %d batches, want one per batch", got, p.Stats().Batches)
	}
}

func TestPushQueue(t *testing.T) {
	server, pool := startMiniredis(t)
	rec := &recordingPool{inner: pool}
	logger, _ := quietLogger()
	p := newPublisher(t, rec, push.WithLogger(logger))

	batch := []push.Push{
		{Queue: "a", Payload: []byte("a1")},
		{Queue: "b", Payload: []byte("b1")},
		{Queue: "a", Payload: []byte("a2")},
	}
	if err := p.PushQueue(context.Background(), batch); err != nil {
		t.Fatalf("PushQueue: %v", err)
	}
	// PushQueue returns after EXEC, so the jobs are there without Close.
	if got, want := listEntries(t, server, "a"), []string{"a1", "a2"}; !slices.Equal(got, want) {
		t.Errorf("a = %q, want %q", got, want)
	}
	if got, want := listEntries(t, server, "b"), []string{"b1"}; !slices.Equal(got, want) {
		t.Errorf("b = %q, want %q", got, want)
	}
	checkSessions(t, rec, [][]recordedCommand{{
		wantCmd("MULTI"),
		wantCmd("RPUSH", "a", "a1", "a2"),
		wantCmd("RPUSH", "b", "b1"),
		wantCmd("EXEC"),
	}})

	stats := p.Stats()
	if stats.Batches != 1 {
		t.Errorf("Stats.Batches = %d, want 1", stats.Batches)
	}
	if stats.Published != 0 {
		t.Errorf("Stats.Published = %d, want 0 for PushQueue", stats.Published)
	}
	if stats.Written != 0 {
		t.Errorf("Stats.Written = %d, want 0 for PushQueue", stats.Written)
	}

	for _, empty := range [][]push.Push{nil, {}} {
		if err := p.PushQueue(context.Background(), empty); err != nil {
			t.Errorf("PushQueue(%#v) = %v, want nil", empty, err)
		}
	}
	if got := rec.Gets(); got != 1 {
		t.Errorf("%d connections taken, want 1: an empty batch must send nothing", got)
	}

	// PushQueue keeps working after Close.
	closePublisher(t, p)
	if err := p.PushQueue(context.Background(), []push.Push{{Queue: "a", Payload: []byte("a3")}}); err != nil {
		t.Fatalf("PushQueue after Close: %v", err)
	}
	if got, want := listEntries(t, server, "a"), []string{"a1", "a2", "a3"}; !slices.Equal(got, want) {
		t.Errorf("a = %q, want %q", got, want)
	}
}

// failureLog collects the calls of an error handler.
type failureLog struct {
	mu    sync.Mutex
	calls []failedCall
}

type failedCall struct {
	jobs []push.Push
	err  error
}

func (f *failureLog) handle(jobs []push.Push, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, failedCall{jobs: jobs, err: err})
}

func (f *failureLog) Calls() []failedCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// checkWrongTypeFailure checks that the handler got exactly the jobs of
// queue in one call, with a WRONGTYPE *WriteError for their RPUSH.
func checkWrongTypeFailure(t *testing.T, failures *failureLog, queue string, want []string) {
	t.Helper()
	calls := failures.Calls()
	if len(calls) != 1 {
		t.Fatalf("error handler called %d times, want once", len(calls))
	}
	var got []string
	for _, job := range calls[0].jobs {
		if job.Queue != queue {
			t.Errorf("failed job on queue %q, want %q", job.Queue, queue)
		}
		got = append(got, string(job.Payload))
	}
	if !slices.Equal(got, want) {
		t.Errorf("failed jobs:\n got %q\nwant %q", got, want)
	}

	var werr *push.WriteError
	if !errors.As(calls[0].err, &werr) {
		t.Fatalf("handler error %v (%T) is not a *push.WriteError", calls[0].err, calls[0].err)
	}
	if werr.Command != "RPUSH" {
		t.Errorf("WriteError.Command = %q, want RPUSH", werr.Command)
	}
	if werr.Queue != queue {
		t.Errorf("WriteError.Queue = %q, want %q", werr.Queue, queue)
	}
	if werr.Reason != "WRONGTYPE" {
		t.Errorf("WriteError.Reason = %q, want WRONGTYPE", werr.Reason)
	}
	if werr.Jobs != len(want) {
		t.Errorf("WriteError.Jobs = %d, want %d", werr.Jobs, len(want))
	}
	if werr.Temporary {
		t.Errorf("WriteError.Temporary = true, want false for WRONGTYPE")
	}
	if werr.Attempts != 1 {
		t.Errorf("WriteError.Attempts = %d, want 1", werr.Attempts)
	}
	var reply redis.Error
	if !errors.As(werr, &reply) {
		t.Errorf("WriteError %v does not wrap the redis.Error reply", werr)
	}
}

func TestBatcherWrongType(t *testing.T) {
	server, pool := startMiniredis(t)
	if err := server.Set(push.GroupQueue, "not a list"); err != nil {
		t.Fatal(err)
	}
	rec := &recordingPool{inner: pool}
	logger, hook := quietLogger()
	failures := &failureLog{}
	p := newPublisher(t, rec, push.WithLogger(logger), push.WithFlushInterval(time.Hour),
		push.WithErrorHandler(failures.handle), push.WithRetryBackoff(time.Millisecond, time.Millisecond))

	var wantPeer, wantGroup []string
	for i := range 4 {
		content := fmt.Sprintf("n%d", i)
		if err := findHelper(t, "peer").publish(p, 7, content); err != nil {
			t.Fatal(err)
		}
		wantPeer = append(wantPeer, mustMarshal(t, findHelper(t, "peer").payload(7, content)))
		if i%2 == 0 {
			if err := findHelper(t, "group").publish(p, 7, content); err != nil {
				t.Fatal(err)
			}
			wantGroup = append(wantGroup, mustMarshal(t, findHelper(t, "group").payload(7, content)))
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := p.Close(ctx)
	if err == nil {
		t.Fatalf("Close = nil, want an error for the group jobs")
	}
	if !strings.Contains(err.Error(), "WRONGTYPE: 2") {
		t.Errorf("Close error %q does not count 2 WRONGTYPE failures", err)
	}

	if got := listEntries(t, server, push.PeerQueue); !slices.Equal(got, wantPeer) {
		t.Errorf("%s:\n got %q\nwant %q", push.PeerQueue, got, wantPeer)
	}
	got, err := server.Get(push.GroupQueue)
	if err != nil {
		t.Fatalf("reading %s: %v", push.GroupQueue, err)
	}
	if got != "not a list" {
		t.Errorf("%s = %q, want the string left alone", push.GroupQueue, got)
	}
	checkWrongTypeFailure(t, failures, push.GroupQueue, wantGroup)

	stats := p.Stats()
	if stats.Written != 4 {
		t.Errorf("Stats.Written = %d, want 4", stats.Written)
	}
	if stats.Failed != 2 {
		t.Errorf("Stats.Failed = %d, want 2", stats.Failed)
	}
	if want := map[string]uint64{"WRONGTYPE": 2}; !reflect.DeepEqual(stats.FailedByReason, want) {
		t.Errorf("Stats.FailedByReason = %v, want %v", stats.FailedByReason, want)
	}
	if stats.Retries != 0 {
		t.Errorf("Stats.Retries = %d, want 0", stats.Retries)
	}
	if stats.Batches != 1 {
		t.Errorf("Stats.Batches = %d, want 1", stats.Batches)
	}
	if got := len(rec.Sessions()); got != 1 {
		t.Errorf("%d transactions sent, want 1", got)
	}

	var logged int
	for _, e := range hook.AllEntries() {
		if e.Level == logrus.ErrorLevel && e.Data["reason"] == "WRONGTYPE" {
			logged++
			if e.Data["queue"] != push.GroupQueue {
				t.Errorf("error entry queue field = %#v, want %q", e.Data["queue"], push.GroupQueue)
			}
		}
	}
	if logged != 1 {
		t.Errorf("%d error entries with reason WRONGTYPE, want 1", logged)
	}
}

func TestBatcherSplitsLargeQueue(t *testing.T) {
	server, pool := startMiniredis(t)
	rec := &recordingPool{inner: pool}
	logger, _ := quietLogger()
	p := newPublisher(t, rec, push.WithLogger(logger), push.WithBatchSize(20000),
		push.WithBufferSize(20000), push.WithFlushInterval(time.Hour))

	// One queue with more jobs than one RPUSH carries gets several RPUSH
	// commands in the same transaction, in order.
	var wantLarge, wantSmall []string
	for i := range 9000 {
		job := fmt.Sprintf("large-%04d", i)
		wantLarge = append(wantLarge, job)
		mustPush(t, p, "large", job)
		if i%900 == 0 {
			small := fmt.Sprintf("small-%04d", i)
			wantSmall = append(wantSmall, small)
			mustPush(t, p, "small", small)
		}
	}
	closePublisher(t, p)

	if got, want := rpushArgCounts(rec.Sessions()), [][]int{{4096, 4096, 808, 10}}; !reflect.DeepEqual(got, want) {
		t.Errorf("jobs per RPUSH per transaction = %v, want %v", got, want)
	}
	if got := listEntries(t, server, "large"); !slices.Equal(got, wantLarge) {
		t.Errorf("large has %d entries, want %d in order", len(got), len(wantLarge))
	}
	if got := listEntries(t, server, "small"); !slices.Equal(got, wantSmall) {
		t.Errorf("small = %q, want %q", got, wantSmall)
	}
}
