package push_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/gomodule/redigo/redis"
	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/imkit/push"
)

// These tests check the delivery promise under failures, against miniredis
// and against a stub connection with canned replies: every accepted job is
// written or handed to the error handler, and nothing is pending after
// Close.

// Log messages of the library that the tests look for.
const (
	msgWillRetry    = "push: Redis write failed, will retry"
	msgWriteFailed  = "push: Redis write failed"
	msgRecovered    = "push: Redis writes recovered"
	msgHandlerPanic = "push: error handler panicked"
	msgSlowWrite    = "push: slow Redis write"
)

// Error replies of Redis 7.
const (
	wrongTypeReply  = "WRONGTYPE Operation against a key holding the wrong kind of value"
	loadingReply    = "LOADING Redis is loading the dataset in memory"
	oomReply        = "OOM command not allowed when used memory > 'maxmemory'."
	execAbortReply  = "EXECABORT Transaction discarded because of previous errors."
	unknownCmdReply = "ERR unknown command 'rpush', with args beginning with: "
)

// faultWaitTimeout bounds every wait for the Publisher to reach a state.
const faultWaitTimeout = 10 * time.Second

// checkAccounting fails the test unless the counters of s add up: every
// accepted job is written, failed or still buffered, never two of these,
// and FailedByReason splits Failed.
func checkAccounting(t testing.TB, s push.Stats) {
	t.Helper()
	if s.Written+s.Failed > s.Published {
		t.Errorf("Written+Failed = %d+%d, more than Published = %d", s.Written, s.Failed, s.Published)
	}
	if got := s.Written + s.Failed + s.Buffered; got != s.Published {
		t.Errorf("Written+Failed+Buffered = %d+%d+%d = %d, want Published = %d",
			s.Written, s.Failed, s.Buffered, got, s.Published)
	}
	var byReason uint64
	for _, n := range s.FailedByReason {
		byReason += n
	}
	if byReason != s.Failed {
		t.Errorf("FailedByReason %v adds up to %d, want Failed = %d", s.FailedByReason, byReason, s.Failed)
	}
	if s.Buffered == 0 && s.BufferedBytes != 0 {
		t.Errorf("BufferedBytes = %d with no job buffered, want 0", s.BufferedBytes)
	}
}

// checkDrained checks the counters of a closed Publisher: they add up and
// nothing is pending.
func checkDrained(t testing.TB, s push.Stats) {
	t.Helper()
	checkAccounting(t, s)
	if s.Buffered != 0 {
		t.Errorf("after Close, Buffered = %d, want 0", s.Buffered)
	}
	if s.BufferedBytes != 0 {
		t.Errorf("after Close, BufferedBytes = %d, want 0", s.BufferedBytes)
	}
}

// faultJobs returns n jobs spread over three queues, each with a payload
// that no other job has.
func faultJobs(n int) []push.Push {
	queues := []string{push.PeerQueue, push.GroupQueue, push.SystemQueue}
	jobs := make([]push.Push, n)
	for i := range jobs {
		jobs[i] = push.Push{
			Queue:   queues[i%len(queues)],
			Payload: []byte(fmt.Sprintf(`{"content":"job %d"}`, i)),
		}
	}
	return jobs
}

// pushEach hands jobs to p with PushChan and fails the test unless each is
// accepted. It passes copies, because PushChan takes ownership of the
// payload.
func pushEach(t testing.TB, p *push.Publisher, jobs []push.Push) {
	t.Helper()
	for i, job := range jobs {
		if err := p.PushChan(job.Queue, slices.Clone(job.Payload)); err != nil {
			t.Fatalf("PushChan of job %d: %v", i, err)
		}
	}
}

// queueLists groups the payloads of jobs by queue, keeping their order: the
// lists that writing jobs to an empty Redis produces.
func queueLists(jobs []push.Push) map[string][]string {
	lists := make(map[string][]string)
	for _, job := range jobs {
		lists[job.Queue] = append(lists[job.Queue], string(job.Payload))
	}
	return lists
}

// miniLists returns every list in m by key. Call it only when nothing
// writes to m, because miniredis returns its own slices.
func miniLists(t testing.TB, m *miniredis.Miniredis) map[string][]string {
	t.Helper()
	lists := make(map[string][]string)
	for _, key := range m.Keys() {
		if m.Type(key) != "list" {
			continue
		}
		items, err := m.List(key)
		if err != nil {
			t.Fatalf("reading list %s: %v", key, err)
		}
		lists[key] = slices.Clone(items)
	}
	return lists
}

// checkQueueLists compares the lists in Redis with the expected ones, queue by
// queue.
func checkQueueLists(t testing.TB, got, want map[string][]string) {
	t.Helper()
	keys := make(map[string]bool)
	for key := range got {
		keys[key] = true
	}
	for key := range want {
		keys[key] = true
	}
	for key := range keys {
		if !slices.Equal(got[key], want[key]) {
			t.Errorf("list %s contains %d entries %q, want %d entries %q",
				key, len(got[key]), got[key], len(want[key]), want[key])
		}
	}
}

// failureRecorder is an error handler that keeps every call.
type failureRecorder struct {
	mu   sync.Mutex
	jobs []push.Push
	errs []error
}

func (r *failureRecorder) handle(jobs []push.Push, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.jobs = append(r.jobs, jobs...)
	r.errs = append(r.errs, err)
}

// jobCount returns the number of jobs handed to the handler so far.
func (r *failureRecorder) jobCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.jobs)
}

// calls returns copies of the jobs and errors received so far.
func (r *failureRecorder) calls() ([]push.Push, []error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.jobs), slices.Clone(r.errs)
}

// writeErrors returns the *push.WriteError behind each error the handler
// received, and fails the test for an error that has none.
func (r *failureRecorder) writeErrors(t testing.TB) []*push.WriteError {
	t.Helper()
	_, errs := r.calls()
	out := make([]*push.WriteError, 0, len(errs))
	for i, err := range errs {
		var writeErr *push.WriteError
		if !errors.As(err, &writeErr) {
			t.Fatalf("handler call %d got %T %v, want a *push.WriteError", i, err, err)
		}
		out = append(out, writeErr)
	}
	return out
}

// countLogEntries returns the number of log entries with message.
func countLogEntries(hook *test.Hook, message string) int {
	n := 0
	for _, entry := range hook.AllEntries() {
		if entry.Message == message {
			n++
		}
	}
	return n
}

// hasRetryReason reports whether hook logged a retried transaction that
// failed with reason.
func hasRetryReason(hook *test.Hook, reason string) bool {
	for _, entry := range hook.AllEntries() {
		if entry.Message == msgWillRetry && entry.Data["reason"] == reason {
			return true
		}
	}
	return false
}

// retryOptions returns options that keep retries fast: waits of 1 to 10ms
// between attempts for up to retryTimeout, with all jobs of the test in
// one batch of batchSize jobs.
func retryOptions(retryTimeout time.Duration, batchSize int) []push.Option {
	return []push.Option{
		push.WithRetryTimeout(retryTimeout),
		push.WithRetryBackoff(time.Millisecond, 10*time.Millisecond),
		push.WithWriteTimeout(2 * time.Second),
		push.WithBatchSize(batchSize),
		push.WithFlushInterval(time.Hour),
	}
}

// closeWithError closes p and returns Close's error, which a test of
// failed jobs expects.
func closeWithError(t testing.TB, p *push.Publisher) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), faultWaitTimeout)
	defer cancel()
	return p.Close(ctx)
}

// redisDialer returns a Dial function for addr with short timeouts.
func redisDialer(addr string) func() (redis.Conn, error) {
	return func() (redis.Conn, error) {
		return redis.Dial("tcp", addr,
			redis.DialConnectTimeout(time.Second),
			redis.DialReadTimeout(5*time.Second),
			redis.DialWriteTimeout(5*time.Second))
	}
}

func TestFaultsTransientReplies(t *testing.T) {
	replies := []string{
		loadingReply,
		"READONLY You can't write against a read only replica.",
		"MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
		"NOREPLICAS Not enough good replicas to write.",
		"TRYAGAIN Multiple keys request during rehashing of slot",
		"BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.",
		"CLUSTERDOWN The cluster is down",
		oomReply,
		"MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk.",
	}
	for _, reply := range replies {
		code, _, _ := strings.Cut(reply, " ")
		t.Run(code, func(t *testing.T) {
			m, pool := startMiniredis(t)
			m.SetError(reply)
			logger, hook := quietLogger()
			failures := &failureRecorder{}
			jobs := faultJobs(12)
			opts := append(retryOptions(time.Minute, len(jobs)),
				push.WithLogger(logger), push.WithErrorHandler(failures.handle))
			p := newPublisher(t, pool, opts...)

			pushEach(t, p, jobs)
			waitFor(t, faultWaitTimeout, "two retries", func() bool { return p.Stats().Retries >= 2 })
			if got := p.Stats().Written; got != 0 {
				t.Errorf("while Redis replies %s, Written = %d, want 0", code, got)
			}
			m.SetError("")
			waitFor(t, faultWaitTimeout, "all jobs written", func() bool {
				return p.Stats().Written == uint64(len(jobs))
			})
			closePublisher(t, p)

			stats := p.Stats()
			if stats.Retries == 0 {
				t.Errorf("Retries = 0, want > 0")
			}
			if stats.Failed != 0 {
				t.Errorf("Failed = %d (%v), want 0", stats.Failed, stats.FailedByReason)
			}
			if stats.Ambiguous != 0 {
				t.Errorf("Ambiguous = %d, want 0 for an error reply", stats.Ambiguous)
			}
			if n := failures.jobCount(); n != 0 {
				t.Errorf("error handler got %d jobs, want 0", n)
			}
			if !hasRetryReason(hook, code) {
				t.Errorf("no %q entry with reason %s was logged", msgWillRetry, code)
			}
			checkQueueLists(t, miniLists(t, m), queueLists(jobs))
			checkDrained(t, stats)
		})
	}
}

func TestFaultsPermanentReplies(t *testing.T) {
	cases := []struct {
		name   string
		reply  string
		reason string
	}{
		{"wrong type", wrongTypeReply, "WRONGTYPE"},
		{"wrong arity", "ERR wrong number of arguments for 'rpush' command", "ERR"},
		{"unknown error", "ERR unknown", "ERR"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, pool := startMiniredis(t)
			m.SetError(tc.reply)
			logger, _ := quietLogger()
			failures := &failureRecorder{}
			jobs := faultJobs(12)
			opts := append(retryOptions(time.Minute, len(jobs)),
				push.WithLogger(logger), push.WithErrorHandler(failures.handle))
			p := newPublisher(t, pool, opts...)

			pushEach(t, p, jobs)
			waitFor(t, faultWaitTimeout, "the handler to get every job", func() bool {
				return failures.jobCount() == len(jobs)
			})
			err := closeWithError(t, p)
			if err == nil {
				t.Errorf("Close returned nil, want an error counting %d failed jobs", len(jobs))
			} else if want := fmt.Sprintf("%d of %d", len(jobs), len(jobs)); !strings.Contains(err.Error(), want) {
				t.Errorf("Close error %q does not contain %q", err, want)
			}

			stats := p.Stats()
			if stats.Retries != 0 {
				t.Errorf("Retries = %d, want 0 for a permanent error", stats.Retries)
			}
			if stats.Batches != 1 {
				t.Errorf("Batches = %d, want 1", stats.Batches)
			}
			if stats.Written != 0 {
				t.Errorf("Written = %d, want 0", stats.Written)
			}
			if got := stats.FailedByReason[tc.reason]; got != uint64(len(jobs)) {
				t.Errorf("FailedByReason[%s] = %d (%v), want %d", tc.reason, got, stats.FailedByReason, len(jobs))
			}

			failed, _ := failures.calls()
			checkQueueLists(t, queueLists(failed), queueLists(jobs))
			for _, writeErr := range failures.writeErrors(t) {
				if writeErr.Reason != tc.reason {
					t.Errorf("WriteError.Reason = %q, want %q", writeErr.Reason, tc.reason)
				}
				if writeErr.Temporary {
					t.Errorf("WriteError.Temporary = true for %s, want false", tc.reason)
				}
				if writeErr.Attempts != 1 {
					t.Errorf("WriteError.Attempts = %d, want 1", writeErr.Attempts)
				}
				if writeErr.Command != "RPUSH" {
					t.Errorf("WriteError.Command = %q, want RPUSH", writeErr.Command)
				}
			}
			checkQueueLists(t, miniLists(t, m), nil)
			checkDrained(t, stats)
		})
	}
}

func TestFaultsMiniredisRestart(t *testing.T) {
	cases := []struct {
		name string
		// restart brings a server back on addr, the address of m, which
		// was closed, and returns it.
		restart func(t *testing.T, m *miniredis.Miniredis, addr string) *miniredis.Miniredis
		// keepsData is set when the restarted server still has what was
		// written before.
		keepsData bool
	}{
		{
			name: "restart",
			restart: func(t *testing.T, m *miniredis.Miniredis, _ string) *miniredis.Miniredis {
				if err := m.Restart(); err != nil {
					t.Fatalf("Restart: %v", err)
				}
				return m
			},
			keepsData: true,
		},
		{
			name: "new server",
			restart: func(t *testing.T, _ *miniredis.Miniredis, addr string) *miniredis.Miniredis {
				fresh := miniredis.NewMiniRedis()
				if err := fresh.StartAddr(addr); err != nil {
					t.Fatalf("starting miniredis on %s: %v", addr, err)
				}
				t.Cleanup(fresh.Close)
				return fresh
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, pool := startMiniredis(t)
			logger, hook := quietLogger()
			p := newPublisher(t, pool, push.WithLogger(logger), push.WithFlushInterval(0),
				push.WithRetryBackoff(time.Millisecond, 10*time.Millisecond),
				push.WithRetryTimeout(time.Minute), push.WithWriteTimeout(2*time.Second))
			jobs := faultJobs(90)
			before, during, after := jobs[:30], jobs[30:60], jobs[60:]

			pushEach(t, p, before)
			waitFor(t, faultWaitTimeout, "the first jobs written", func() bool {
				return p.Stats().Written == uint64(len(before))
			})

			// Nothing is in flight when the server goes away, so no job
			// can be applied twice, and every job must land exactly once.
			addr := m.Addr()
			m.Close()
			pushEach(t, p, during)
			waitFor(t, faultWaitTimeout, "a failed attempt while the server is down", func() bool {
				return countLogEntries(hook, msgWillRetry) > 0
			})
			server := tc.restart(t, m, addr)
			pushEach(t, p, after)
			closePublisher(t, p)

			stats := p.Stats()
			if stats.Retries == 0 {
				t.Errorf("Retries = 0, want > 0")
			}
			if stats.Written != uint64(len(jobs)) {
				t.Errorf("Written = %d, want %d", stats.Written, len(jobs))
			}
			want := jobs[30:]
			if tc.keepsData {
				want = jobs
			}
			checkQueueLists(t, miniLists(t, server), queueLists(want))
			checkDrained(t, stats)
		})
	}
}

func TestFaultsRetryTimeout(t *testing.T) {
	m, pool := startMiniredis(t)
	m.SetError(loadingReply)
	logger, _ := quietLogger()
	failures := &failureRecorder{}
	jobs := faultJobs(6)
	opts := append(retryOptions(200*time.Millisecond, len(jobs)),
		push.WithLogger(logger), push.WithErrorHandler(failures.handle))
	p := newPublisher(t, pool, opts...)

	pushEach(t, p, jobs)
	waitFor(t, faultWaitTimeout, "the handler to get every job", func() bool {
		return failures.jobCount() == len(jobs)
	})
	if err := closeWithError(t, p); err == nil {
		t.Errorf("Close returned nil, want an error counting the failed jobs")
	}

	stats := p.Stats()
	if got := stats.FailedByReason["LOADING"]; got != uint64(len(jobs)) {
		t.Errorf("FailedByReason[LOADING] = %d (%v), want %d", got, stats.FailedByReason, len(jobs))
	}
	if stats.Retries == 0 {
		t.Errorf("Retries = 0, want > 0 before giving up")
	}
	failed, _ := failures.calls()
	checkQueueLists(t, queueLists(failed), queueLists(jobs))
	for _, writeErr := range failures.writeErrors(t) {
		if writeErr.Reason != "LOADING" {
			t.Errorf("WriteError.Reason = %q, want LOADING", writeErr.Reason)
		}
		if !writeErr.Temporary {
			t.Errorf("WriteError.Temporary = false, want true for LOADING")
		}
		if writeErr.Attempts <= 1 {
			t.Errorf("WriteError.Attempts = %d, want > 1", writeErr.Attempts)
		}
	}
	checkQueueLists(t, miniLists(t, m), nil)
	checkDrained(t, stats)
}

func TestFaultsPoolExhausted(t *testing.T) {
	cases := []struct {
		name   string
		wait   bool
		reason string
	}{
		// With Wait, getting a connection blocks until the write timeout.
		{"wait", true, push.ReasonTimeout},
		{"no wait", false, push.ReasonPool},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := miniredis.RunT(t)
			pool := &redis.Pool{Dial: redisDialer(m.Addr()), MaxActive: 1, Wait: tc.wait}
			t.Cleanup(func() { pool.Close() })
			heldConn := pool.Get()
			if _, err := heldConn.Do("PING"); err != nil {
				t.Fatalf("PING on the held connection: %v", err)
			}

			logger, hook := quietLogger()
			jobs := faultJobs(9)
			p := newPublisher(t, pool, push.WithLogger(logger),
				push.WithWriteTimeout(50*time.Millisecond),
				push.WithRetryBackoff(time.Millisecond, 10*time.Millisecond),
				push.WithRetryTimeout(time.Minute),
				push.WithBatchSize(len(jobs)), push.WithFlushInterval(time.Hour))

			pushEach(t, p, jobs)
			// The attempt must end while the test holds the only
			// connection, or no warning would be logged.
			waitFor(t, faultWaitTimeout, "a retry with reason "+tc.reason, func() bool {
				return hasRetryReason(hook, tc.reason)
			})
			if got := p.Stats().Written; got != 0 {
				t.Errorf("while the pool is exhausted, Written = %d, want 0", got)
			}
			heldConn.Close()
			waitFor(t, faultWaitTimeout, "all jobs written", func() bool {
				return p.Stats().Written == uint64(len(jobs))
			})
			closePublisher(t, p)

			stats := p.Stats()
			if stats.Failed != 0 {
				t.Errorf("Failed = %d (%v), want 0", stats.Failed, stats.FailedByReason)
			}
			checkQueueLists(t, miniLists(t, m), queueLists(jobs))
			checkDrained(t, stats)
		})
	}
}

func TestFaultsFailedFlushesDiscardConnections(t *testing.T) {
	m := miniredis.RunT(t)
	var dials atomic.Int64
	dial := redisDialer(m.Addr())
	pool := &redis.Pool{
		Dial: func() (redis.Conn, error) {
			dials.Add(1)
			return dial()
		},
		MaxIdle: 2,
	}
	t.Cleanup(func() { pool.Close() })
	m.SetError(wrongTypeReply)

	logger, _ := quietLogger()
	failures := &failureRecorder{}
	p := newPublisher(t, pool, push.WithLogger(logger), push.WithFlushInterval(0),
		push.WithErrorHandler(failures.handle))

	// Each flush fails, so each must dial a fresh connection: a pool that
	// got a broken connection back would hand it out again.
	const flushes = 50
	jobs := faultJobs(flushes)
	for i := range jobs {
		pushEach(t, p, jobs[i:i+1])
		waitFor(t, faultWaitTimeout, "the failed job", func() bool { return failures.jobCount() == i+1 })
		if got := dials.Load(); got != int64(i+1) {
			t.Fatalf("after %d failed flushes, %d dials, want %d", i+1, got, i+1)
		}
	}
	stats := pool.Stats()
	if stats.ActiveCount > pool.MaxIdle {
		t.Errorf("after %d failed flushes, pool ActiveCount = %d, want at most MaxIdle = %d", flushes, stats.ActiveCount, pool.MaxIdle)
	}
	if stats.ActiveCount != 0 {
		t.Errorf("after %d failed flushes, pool ActiveCount = %d, want 0", flushes, stats.ActiveCount)
	}

	// After a success the connection goes back to the pool and is reused.
	m.SetError("")
	ok := faultJobs(2)
	pushEach(t, p, ok[:1])
	waitFor(t, faultWaitTimeout, "the first job written", func() bool { return p.Stats().Written == 1 })
	pushEach(t, p, ok[1:])
	waitFor(t, faultWaitTimeout, "the second job written", func() bool { return p.Stats().Written == 2 })
	if got := dials.Load(); got != flushes+1 {
		t.Errorf("after two successful flushes, %d dials, want %d", got, flushes+1)
	}
	if got := pool.Stats().ActiveCount; got != 1 {
		t.Errorf("after two successful flushes, pool ActiveCount = %d, want 1", got)
	}
	if err := closeWithError(t, p); err == nil {
		t.Errorf("Close returned nil, want an error counting %d failed jobs", flushes)
	}
	checkDrained(t, p.Stats())
}

func TestFaultsHandlerGetsFailedJobs(t *testing.T) {
	m, pool := startMiniredis(t)
	if err := m.Set(push.GroupQueue, "not a list"); err != nil {
		t.Fatalf("SET %s: %v", push.GroupQueue, err)
	}
	logger, _ := quietLogger()
	failures := &failureRecorder{}
	jobs := faultJobs(30)
	opts := append(retryOptions(time.Minute, len(jobs)),
		push.WithLogger(logger), push.WithErrorHandler(failures.handle))
	p := newPublisher(t, pool, opts...)

	var groupJobs, otherJobs []push.Push
	for _, job := range jobs {
		if job.Queue == push.GroupQueue {
			groupJobs = append(groupJobs, job)
		} else {
			otherJobs = append(otherJobs, job)
		}
	}
	pushEach(t, p, jobs)
	waitFor(t, faultWaitTimeout, "the handler to get the group jobs", func() bool {
		return failures.jobCount() == len(groupJobs)
	})
	if err := closeWithError(t, p); err == nil {
		t.Errorf("Close returned nil, want an error counting %d failed jobs", len(groupJobs))
	}

	failed, errs := failures.calls()
	if !reflect.DeepEqual(failed, groupJobs) {
		t.Errorf("error handler got %d jobs %q, want the %d group jobs %q", len(failed), failed, len(groupJobs), groupJobs)
	}
	if len(errs) != 1 {
		t.Errorf("error handler called %d times, want once", len(errs))
	}
	for _, writeErr := range failures.writeErrors(t) {
		if writeErr.Reason != "WRONGTYPE" {
			t.Errorf("WriteError.Reason = %q, want WRONGTYPE", writeErr.Reason)
		}
		if writeErr.Queue != push.GroupQueue {
			t.Errorf("WriteError.Queue = %q, want %q", writeErr.Queue, push.GroupQueue)
		}
		if writeErr.Jobs != len(groupJobs) {
			t.Errorf("WriteError.Jobs = %d, want %d", writeErr.Jobs, len(groupJobs))
		}
	}

	stats := p.Stats()
	if stats.Written != uint64(len(otherJobs)) {
		t.Errorf("Written = %d, want %d", stats.Written, len(otherJobs))
	}
	if stats.Retries != 0 {
		t.Errorf("Retries = %d, want 0", stats.Retries)
	}
	checkQueueLists(t, miniLists(t, m), queueLists(otherJobs))
	if got, _ := m.Get(push.GroupQueue); got != "not a list" {
		t.Errorf("%s = %q, want the string left unchanged", push.GroupQueue, got)
	}
	checkDrained(t, stats)
}

func TestFaultsHandlerPanic(t *testing.T) {
	m, pool := startMiniredis(t)
	if err := m.Set(push.GroupQueue, "not a list"); err != nil {
		t.Fatalf("SET %s: %v", push.GroupQueue, err)
	}
	logger, hook := quietLogger()
	var calls atomic.Int64
	p := newPublisher(t, pool, push.WithLogger(logger), push.WithFlushInterval(0),
		push.WithErrorHandler(func([]push.Push, error) {
			calls.Add(1)
			panic("handler bug")
		}))

	failing := []push.Push{{Queue: push.GroupQueue, Payload: []byte(`{"content":"fails"}`)}}
	pushEach(t, p, failing)
	waitFor(t, faultWaitTimeout, "the panic logged", func() bool { return countLogEntries(hook, msgHandlerPanic) == 1 })

	// The batcher survived the panic and keeps writing.
	written := []push.Push{{Queue: push.PeerQueue, Payload: []byte(`{"content":"after the panic"}`)}}
	pushEach(t, p, written)
	waitFor(t, faultWaitTimeout, "the next job written", func() bool { return p.Stats().Written == 1 })
	if err := closeWithError(t, p); err == nil {
		t.Errorf("Close returned nil, want an error counting the failed job")
	}

	if got := calls.Load(); got != 1 {
		t.Errorf("handler called %d times, want 1", got)
	}
	for _, entry := range hook.AllEntries() {
		if entry.Message != msgHandlerPanic {
			continue
		}
		if entry.Level != logrus.ErrorLevel {
			t.Errorf("panic logged at level %v, want error", entry.Level)
		}
		if entry.Data["panic"] != "handler bug" {
			t.Errorf("panic field = %v, want %q", entry.Data["panic"], "handler bug")
		}
	}
	stats := p.Stats()
	if stats.Failed != 1 {
		t.Errorf("Failed = %d, want 1", stats.Failed)
	}
	checkQueueLists(t, miniLists(t, m), queueLists(written))
	checkDrained(t, stats)
}

func TestFaultsCloseWaitsForHandler(t *testing.T) {
	m, pool := startMiniredis(t)
	if err := m.Set(push.GroupQueue, "not a list"); err != nil {
		t.Fatalf("SET %s: %v", push.GroupQueue, err)
	}
	logger, _ := quietLogger()
	entered := make(chan struct{})
	release := make(chan struct{})
	var finished atomic.Bool
	p := newPublisher(t, pool, push.WithLogger(logger), push.WithFlushInterval(0),
		push.WithErrorHandler(func([]push.Push, error) {
			close(entered)
			<-release
			finished.Store(true)
		}))

	pushEach(t, p, []push.Push{{Queue: push.GroupQueue, Payload: []byte(`{"content":"fails"}`)}})
	<-entered
	closed := make(chan error, 1)
	go func() { closed <- closeWithError(t, p) }()

	// Give a Close that does not wait a moment to return early. A correct
	// Close never returns here, however slow the machine is.
	select {
	case err := <-closed:
		t.Fatalf("Close returned %v while the error handler was running", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-closed; err == nil {
		t.Errorf("Close returned nil, want an error counting the failed job")
	}
	if !finished.Load() {
		t.Errorf("Close returned before the error handler did")
	}
	checkDrained(t, p.Stats())
}

func TestFaultsCloseExpiredContext(t *testing.T) {
	m, pool := startMiniredis(t)
	m.SetError(loadingReply)
	logger, hook := quietLogger()
	failures := &failureRecorder{}
	jobs := faultJobs(7)
	// Backoff and retry timeout of an hour: only Close's context can end
	// the wait after the first failed attempt. The test closes the
	// Publisher itself, because a cleanup that closed it would hang in the
	// failure this test looks for.
	p, err := push.NewPublisher(pool, push.WithLogger(logger), push.WithErrorHandler(failures.handle),
		push.WithRetryTimeout(time.Hour), push.WithRetryBackoff(time.Hour, time.Hour),
		push.WithBatchSize(len(jobs)), push.WithFlushInterval(time.Hour))
	if err != nil {
		t.Fatalf("NewPublisher: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		closed := make(chan struct{})
		go func() {
			_ = p.Close(ctx)
			close(closed)
		}()
		select {
		case <-closed:
		case <-time.After(faultWaitTimeout):
			t.Errorf("Close did not return within %v of its context ending", faultWaitTimeout)
		}
	})

	pushEach(t, p, jobs)
	waitFor(t, faultWaitTimeout, "the first failed attempt", func() bool { return countLogEntries(hook, msgWillRetry) > 0 })

	expired, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	closed := make(chan error, 1)
	go func() { closed <- p.Close(expired) }()
	select {
	case err = <-closed:
	case <-time.After(faultWaitTimeout):
		t.Fatalf("Close with an expired context did not return within %v", faultWaitTimeout)
	}

	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close error %v does not wrap context.DeadlineExceeded", err)
	}
	if want := fmt.Sprintf("%d of %d", len(jobs), len(jobs)); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Close error %v does not contain %q", err, want)
	}
	failed, _ := failures.calls()
	checkQueueLists(t, queueLists(failed), queueLists(jobs))
	for _, writeErr := range failures.writeErrors(t) {
		if writeErr.Reason != push.ReasonClosed {
			t.Errorf("WriteError.Reason = %q, want %q", writeErr.Reason, push.ReasonClosed)
		}
		if !errors.Is(writeErr, context.DeadlineExceeded) {
			t.Errorf("WriteError %v does not wrap context.DeadlineExceeded", writeErr)
		}
	}
	stats := p.Stats()
	if got := stats.FailedByReason[push.ReasonClosed]; got != uint64(len(jobs)) {
		t.Errorf("FailedByReason[closed] = %d (%v), want %d", got, stats.FailedByReason, len(jobs))
	}
	checkDrained(t, stats)
}

// stubCommand is one command sent on a stubConn, with its arguments as
// strings.
type stubCommand struct {
	Name string
	Args []string
}

// stubPool hands out stubConns, which record the commands sent on them and
// return the result of reply from Do(""), without a network. The Publisher
// reads a transaction's replies with Do(""), so reply decides how each
// attempt ends.
type stubPool struct {
	// reply returns what Do("") returns on the attempt-th connection
	// (counting from 1) for the commands sent on it. When reply is nil,
	// every transaction succeeds.
	reply func(attempt int, sent []stubCommand) (any, error)
	// sendErr, when set, returns the error of Send for a command on the
	// attempt-th connection.
	sendErr func(attempt int, command string) error
	// rpushes, when set, receives every RPUSH of a transaction once Do("")
	// has returned its replies.
	rpushes chan stubCommand
	// untracked, when set, makes the pool forget its connections, so that
	// a long run does not keep every command. sent, written and unclosed
	// then report nothing.
	untracked bool

	mu        sync.Mutex
	handedOut int
	conns     []*stubConn
}

func (s *stubPool) GetContext(ctx context.Context) (redis.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handedOut++
	conn := &stubConn{pool: s, attempt: s.handedOut}
	if !s.untracked {
		s.conns = append(s.conns, conn)
	}
	return conn, nil
}

// sent returns the commands sent on each connection, in the order the
// connections were handed out.
func (s *stubPool) sent() [][]stubCommand {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([][]stubCommand, len(s.conns))
	for i, conn := range s.conns {
		out[i] = slices.Clone(conn.commands)
	}
	return out
}

// written returns the RPUSH commands whose EXEC result was a list length,
// which are the ones that Redis would have applied.
func (s *stubPool) written() []stubCommand {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []stubCommand
	for _, conn := range s.conns {
		replies, ok := conn.reply.([]any)
		if !ok || len(replies) == 0 {
			continue
		}
		results, ok := replies[len(replies)-1].([]any)
		if !ok {
			continue
		}
		var rpushes []stubCommand
		for _, cmd := range conn.commands {
			if cmd.Name == "RPUSH" {
				rpushes = append(rpushes, cmd)
			}
		}
		for i, result := range results {
			if _, isLength := result.(int64); isLength && i < len(rpushes) {
				out = append(out, rpushes[i])
			}
		}
	}
	return out
}

// unclosed returns the attempts whose connection was not closed.
func (s *stubPool) unclosed() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var open []int
	for _, conn := range s.conns {
		if !conn.closed {
			open = append(open, conn.attempt)
		}
	}
	return open
}

// stubOKReply returns the replies of Redis to a transaction in which every
// command succeeded: OK for MULTI, QUEUED for each RPUSH, and the new list
// length of each RPUSH in the EXEC array.
func stubOKReply(sent []stubCommand) []any {
	var replies, results []any
	for _, cmd := range sent {
		switch cmd.Name {
		case "MULTI":
			replies = append(replies, "OK")
		case "RPUSH":
			replies = append(replies, "QUEUED")
			results = append(results, int64(len(cmd.Args)-1))
		}
	}
	return append(replies, results)
}

type stubConn struct {
	pool    *stubPool
	attempt int

	// Guarded by pool.mu.
	commands []stubCommand
	reply    any // the reply of Do(""), if it was called
	closed   bool
}

func (c *stubConn) Send(name string, args ...any) error {
	if c.pool.sendErr != nil {
		if err := c.pool.sendErr(c.attempt, name); err != nil {
			return err
		}
	}
	cmd := stubCommand{Name: name}
	for _, arg := range args {
		switch arg := arg.(type) {
		case string:
			cmd.Args = append(cmd.Args, arg)
		case []byte:
			cmd.Args = append(cmd.Args, string(arg))
		default:
			cmd.Args = append(cmd.Args, fmt.Sprint(arg))
		}
	}
	c.pool.mu.Lock()
	c.commands = append(c.commands, cmd)
	c.pool.mu.Unlock()
	return nil
}

func (c *stubConn) Do(name string, args ...any) (any, error) {
	if name != "" {
		return nil, fmt.Errorf("stub: Do(%q) is not supported, only Do(\"\")", name)
	}
	c.pool.mu.Lock()
	sent := slices.Clone(c.commands)
	c.pool.mu.Unlock()

	var reply any = stubOKReply(sent)
	var err error
	if c.pool.reply != nil {
		reply, err = c.pool.reply(c.attempt, sent)
	}
	c.pool.mu.Lock()
	c.reply = reply
	c.pool.mu.Unlock()
	if c.pool.rpushes != nil {
		for _, cmd := range sent {
			if cmd.Name == "RPUSH" {
				c.pool.rpushes <- cmd
			}
		}
	}
	return reply, err
}

func (c *stubConn) Close() error {
	c.pool.mu.Lock()
	defer c.pool.mu.Unlock()
	c.closed = true
	return nil
}

func (c *stubConn) Err() error            { return nil }
func (c *stubConn) Flush() error          { return nil }
func (c *stubConn) Receive() (any, error) { return nil, errors.New("stub: Receive is not supported") }

// stubJobs are two peer and two group jobs, interleaved. The Publisher
// sends them as RPUSH push_queue p0 p1, then RPUSH group_push_queue g0 g1.
var stubJobs = []push.Push{
	{Queue: push.PeerQueue, Payload: []byte(`{"content":"p0"}`)},
	{Queue: push.GroupQueue, Payload: []byte(`{"content":"g0"}`)},
	{Queue: push.PeerQueue, Payload: []byte(`{"content":"p1"}`)},
	{Queue: push.GroupQueue, Payload: []byte(`{"content":"g1"}`)},
}

var (
	rpushPeer  = stubCommand{Name: "RPUSH", Args: []string{push.PeerQueue, `{"content":"p0"}`, `{"content":"p1"}`}}
	rpushGroup = stubCommand{Name: "RPUSH", Args: []string{push.GroupQueue, `{"content":"g0"}`, `{"content":"g1"}`}}
)

// stubTransaction returns the commands of a MULTI/EXEC transaction around
// rpushes.
func stubTransaction(rpushes ...stubCommand) []stubCommand {
	cmds := []stubCommand{{Name: "MULTI"}}
	cmds = append(cmds, rpushes...)
	return append(cmds, stubCommand{Name: "EXEC"})
}

// runStub publishes stubJobs in one batch through a Publisher on pool,
// closes it, and returns its Stats, the handler's calls and Close's error.
func runStub(t *testing.T, pool *stubPool) (push.Stats, *failureRecorder, error) {
	t.Helper()
	logger, _ := quietLogger()
	failures := &failureRecorder{}
	opts := append(retryOptions(time.Minute, len(stubJobs)),
		push.WithLogger(logger), push.WithErrorHandler(failures.handle))
	p := newPublisher(t, pool, opts...)
	pushEach(t, p, stubJobs)
	err := closeWithError(t, p)
	stats := p.Stats()
	if open := pool.unclosed(); len(open) > 0 {
		t.Errorf("connections of attempts %v were not closed", open)
	}
	checkDrained(t, stats)
	return stats, failures, err
}

// checkStubSent compares the commands sent on each connection with want.
func checkStubSent(t *testing.T, pool *stubPool, want ...[]stubCommand) {
	t.Helper()
	got := pool.sent()
	if len(got) != len(want) {
		t.Errorf("%d connections used, want %d: %q", len(got), len(want), got)
		return
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("attempt %d sent %q, want %q", i+1, got[i], want[i])
		}
	}
}

func TestFaultsMalformedReplies(t *testing.T) {
	peerOnly := []push.Push{stubJobs[0], stubJobs[2]}
	cases := []struct {
		name string
		// first is the reply to the first transaction, of MULTI, one
		// RPUSH and EXEC.
		first   any
		retried bool
		reason  string
	}{
		{"nil EXEC", []any{"OK", "QUEUED", nil}, true, "EXEC"},
		{"status EXEC", []any{"OK", "QUEUED", "OK"}, false, push.ReasonProtocol},
		{"short EXEC array", []any{"OK", "QUEUED", []any{}}, false, push.ReasonProtocol},
		{"long EXEC array", []any{"OK", "QUEUED", []any{int64(2), int64(3)}}, false, push.ReasonProtocol},
		{"RPUSH result not a number", []any{"OK", "QUEUED", []any{"OK"}}, false, push.ReasonProtocol},
		{"too few replies", []any{"OK"}, false, push.ReasonProtocol},
		{"reply not an array", "OK", false, push.ReasonProtocol},
		{"nil reply", nil, false, push.ReasonProtocol},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pool := &stubPool{reply: func(attempt int, sent []stubCommand) (any, error) {
				if attempt == 1 {
					return tc.first, nil
				}
				return stubOKReply(sent), nil
			}}
			logger, hook := quietLogger()
			failures := &failureRecorder{}
			opts := append(retryOptions(time.Minute, len(peerOnly)),
				push.WithLogger(logger), push.WithErrorHandler(failures.handle))
			p := newPublisher(t, pool, opts...)
			pushEach(t, p, peerOnly)
			err := closeWithError(t, p)
			stats := p.Stats()

			if tc.retried {
				if err != nil {
					t.Errorf("Close: %v", err)
				}
				if stats.Written != 2 {
					t.Errorf("Written = %d, want 2", stats.Written)
				}
				if stats.Retries != 1 {
					t.Errorf("Retries = %d, want 1", stats.Retries)
				}
				if !hasRetryReason(hook, tc.reason) {
					t.Errorf("no %q entry with reason %s was logged", msgWillRetry, tc.reason)
				}
				checkStubSent(t, pool, stubTransaction(rpushPeer), stubTransaction(rpushPeer))
			} else {
				if err == nil {
					t.Errorf("Close returned nil, want an error counting the failed jobs")
				}
				if got := stats.FailedByReason[tc.reason]; got != 2 {
					t.Errorf("FailedByReason[%s] = %d (%v), want 2", tc.reason, got, stats.FailedByReason)
				}
				if stats.Retries != 0 {
					t.Errorf("Retries = %d, want 0", stats.Retries)
				}
				failed, _ := failures.calls()
				if !reflect.DeepEqual(failed, peerOnly) {
					t.Errorf("error handler got %q, want %q", failed, peerOnly)
				}
				for _, writeErr := range failures.writeErrors(t) {
					if writeErr.Temporary {
						t.Errorf("WriteError.Temporary = true for a malformed reply, want false")
					}
				}
				checkStubSent(t, pool, stubTransaction(rpushPeer))
			}
			if open := pool.unclosed(); len(open) > 0 {
				t.Errorf("connections of attempts %v were not closed", open)
			}
			checkDrained(t, stats)
		})
	}
}

func TestFaultsPartialSuccess(t *testing.T) {
	cases := []struct {
		name      string
		groupErr  redis.Error
		retried   bool
		reason    string
		wantSent  [][]stubCommand
		wantFails int
	}{
		{
			name:     "transient",
			groupErr: redis.Error(oomReply),
			retried:  true,
			reason:   "OOM",
			// The retry carries only the group jobs: the peer jobs were
			// written by the first EXEC.
			wantSent: [][]stubCommand{stubTransaction(rpushPeer, rpushGroup), stubTransaction(rpushGroup)},
		},
		{
			name:      "permanent",
			groupErr:  redis.Error(wrongTypeReply),
			reason:    "WRONGTYPE",
			wantSent:  [][]stubCommand{stubTransaction(rpushPeer, rpushGroup)},
			wantFails: 2,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var writtenAtRetry uint64
			var p *push.Publisher
			pool := &stubPool{reply: func(attempt int, sent []stubCommand) (any, error) {
				if attempt == 1 {
					return []any{"OK", "QUEUED", "QUEUED", []any{int64(2), tc.groupErr}}, nil
				}
				writtenAtRetry = p.Stats().Written
				return stubOKReply(sent), nil
			}}
			logger, _ := quietLogger()
			failures := &failureRecorder{}
			opts := append(retryOptions(time.Minute, len(stubJobs)),
				push.WithLogger(logger), push.WithErrorHandler(failures.handle))
			p = newPublisher(t, pool, opts...)
			pushEach(t, p, stubJobs)
			err := closeWithError(t, p)
			stats := p.Stats()

			checkStubSent(t, pool, tc.wantSent...)
			if tc.retried {
				if err != nil {
					t.Errorf("Close: %v", err)
				}
				if writtenAtRetry != 2 {
					t.Errorf("Written = %d during the retry, want the 2 peer jobs", writtenAtRetry)
				}
			} else if err == nil {
				t.Errorf("Close returned nil, want an error counting the failed jobs")
			}
			if stats.Written != uint64(len(stubJobs)-tc.wantFails) {
				t.Errorf("Written = %d, want %d", stats.Written, len(stubJobs)-tc.wantFails)
			}
			if got := stats.FailedByReason[tc.reason]; got != uint64(tc.wantFails) {
				t.Errorf("FailedByReason[%s] = %d (%v), want %d", tc.reason, got, stats.FailedByReason, tc.wantFails)
			}
			var wantFailed []push.Push
			if tc.wantFails > 0 {
				wantFailed = []push.Push{stubJobs[1], stubJobs[3]}
			}
			if failed, _ := failures.calls(); !reflect.DeepEqual(failed, wantFailed) {
				t.Errorf("error handler got %q, want %q", failed, wantFailed)
			}
			if stats.Ambiguous != 0 {
				t.Errorf("Ambiguous = %d, want 0", stats.Ambiguous)
			}
			checkDrained(t, stats)
		})
	}
}

func TestFaultsExecAbort(t *testing.T) {
	cases := []struct {
		name string
		// queuedErr is the error of the group RPUSH when it was queued.
		queuedErr redis.Error
		wantSent  [][]stubCommand
		reason    string
		wantFails int
	}{
		{
			// The group command fails for good, and the peer command,
			// discarded with it, is sent again alone.
			name:      "permanent",
			queuedErr: redis.Error(unknownCmdReply),
			wantSent:  [][]stubCommand{stubTransaction(rpushPeer, rpushGroup), stubTransaction(rpushPeer)},
			reason:    "ERR",
			wantFails: 2,
		},
		{
			name:      "transient",
			queuedErr: redis.Error(oomReply),
			wantSent:  [][]stubCommand{stubTransaction(rpushPeer, rpushGroup), stubTransaction(rpushPeer, rpushGroup)},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pool := &stubPool{reply: func(attempt int, sent []stubCommand) (any, error) {
				if attempt == 1 {
					return []any{"OK", "QUEUED", tc.queuedErr, redis.Error(execAbortReply)}, nil
				}
				return stubOKReply(sent), nil
			}}
			stats, failures, err := runStub(t, pool)

			checkStubSent(t, pool, tc.wantSent...)
			if stats.Written != uint64(len(stubJobs)-tc.wantFails) {
				t.Errorf("Written = %d, want %d", stats.Written, len(stubJobs)-tc.wantFails)
			}
			if stats.Failed != uint64(tc.wantFails) {
				t.Errorf("Failed = %d (%v), want %d", stats.Failed, stats.FailedByReason, tc.wantFails)
			}
			if stats.Retries != 1 {
				t.Errorf("Retries = %d, want 1", stats.Retries)
			}
			if tc.wantFails == 0 {
				if err != nil {
					t.Errorf("Close: %v", err)
				}
				return
			}
			if err == nil {
				t.Errorf("Close returned nil, want an error counting the failed jobs")
			}
			if got := stats.FailedByReason[tc.reason]; got != uint64(tc.wantFails) {
				t.Errorf("FailedByReason[%s] = %d (%v), want %d", tc.reason, got, stats.FailedByReason, tc.wantFails)
			}
			failed, _ := failures.calls()
			if want := []push.Push{stubJobs[1], stubJobs[3]}; !reflect.DeepEqual(failed, want) {
				t.Errorf("error handler got %q, want %q", failed, want)
			}
		})
	}
}

func TestFaultsAmbiguous(t *testing.T) {
	cases := []struct {
		name          string
		pool          *stubPool
		wantAmbiguous uint64
		wantSent      [][]stubCommand
	}{
		{
			// The connection broke after EXEC was sent: Redis may have
			// run the transaction, so the jobs are sent again and counted.
			name: "reply lost",
			pool: &stubPool{reply: func(attempt int, sent []stubCommand) (any, error) {
				if attempt == 1 {
					return nil, io.EOF
				}
				return stubOKReply(sent), nil
			}},
			wantAmbiguous: uint64(len(stubJobs)),
			wantSent:      [][]stubCommand{stubTransaction(rpushPeer, rpushGroup), stubTransaction(rpushPeer, rpushGroup)},
		},
		{
			// Redis discards a transaction whose EXEC it never got.
			name: "send failed",
			pool: &stubPool{sendErr: func(attempt int, command string) error {
				if attempt == 1 && command == "RPUSH" {
					return io.ErrClosedPipe
				}
				return nil
			}},
			wantSent: [][]stubCommand{{{Name: "MULTI"}}, stubTransaction(rpushPeer, rpushGroup)},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stats, failures, err := runStub(t, tc.pool)
			if err != nil {
				t.Errorf("Close: %v", err)
			}
			checkStubSent(t, tc.pool, tc.wantSent...)
			if stats.Ambiguous != tc.wantAmbiguous {
				t.Errorf("Ambiguous = %d, want %d", stats.Ambiguous, tc.wantAmbiguous)
			}
			if stats.Written != uint64(len(stubJobs)) {
				t.Errorf("Written = %d, want %d", stats.Written, len(stubJobs))
			}
			if stats.Retries != 1 {
				t.Errorf("Retries = %d, want 1", stats.Retries)
			}
			if n := failures.jobCount(); n != 0 {
				t.Errorf("error handler got %d jobs, want 0", n)
			}
		})
	}
}

func TestFaultsLogRateLimited(t *testing.T) {
	m, pool := startMiniredis(t)
	m.SetError(wrongTypeReply)
	logger, hook := quietLogger()
	failures := &failureRecorder{}
	p := newPublisher(t, pool, push.WithLogger(logger), push.WithFlushInterval(0),
		push.WithErrorHandler(failures.handle))

	// Twenty transactions of one job each fail with the same error. The
	// library logs a repeated error at most once per 5 seconds.
	const transactions = 20
	start := time.Now()
	jobs := make([]push.Push, transactions)
	for i := range jobs {
		jobs[i] = push.Push{Queue: push.PeerQueue, Payload: []byte(fmt.Sprintf(`{"content":"%d"}`, i))}
		pushEach(t, p, jobs[i:i+1])
		waitFor(t, faultWaitTimeout, "the failed job", func() bool { return failures.jobCount() == i+1 })
	}
	elapsed := time.Since(start)
	if err := closeWithError(t, p); err == nil {
		t.Errorf("Close returned nil, want an error counting the failed jobs")
	}

	lines := 0
	for _, entry := range hook.AllEntries() {
		if entry.Level <= logrus.ErrorLevel {
			lines++
		}
	}
	allowed := 1 + int(elapsed/(5*time.Second))
	if n := countLogEntries(hook, msgWriteFailed); n == 0 {
		t.Errorf("no %q line logged for %d failed transactions", msgWriteFailed, transactions)
	}
	if lines > allowed {
		t.Errorf("%d error lines for %d identical failures in %v, want at most %d", lines, transactions, elapsed, allowed)
	}
	if got := p.Stats().Batches; got != transactions {
		t.Errorf("Batches = %d, want %d", got, transactions)
	}
	checkDrained(t, p.Stats())
}

func TestFaultsLogRecoveredOnce(t *testing.T) {
	m, pool := startMiniredis(t)
	m.SetError(loadingReply)
	logger, hook := quietLogger()
	jobs := faultJobs(5)
	p := newPublisher(t, pool, push.WithLogger(logger), push.WithFlushInterval(0),
		push.WithRetryBackoff(time.Millisecond, 10*time.Millisecond),
		push.WithRetryTimeout(time.Minute))

	pushEach(t, p, jobs[:3])
	waitFor(t, faultWaitTimeout, "three retries", func() bool { return p.Stats().Retries >= 3 })
	if n := countLogEntries(hook, msgRecovered); n != 0 {
		t.Errorf("%d %q lines during the outage, want 0", n, msgRecovered)
	}
	m.SetError("")
	waitFor(t, faultWaitTimeout, "the jobs written", func() bool { return p.Stats().Written == 3 })

	// Later successful writes are not a recovery.
	for i := 3; i < len(jobs); i++ {
		pushEach(t, p, jobs[i:i+1])
		waitFor(t, faultWaitTimeout, "the next job written", func() bool { return p.Stats().Written == uint64(i+1) })
	}
	closePublisher(t, p)

	if n := countLogEntries(hook, msgRecovered); n != 1 {
		t.Errorf("%d %q lines, want 1", n, msgRecovered)
	}
	checkQueueLists(t, miniLists(t, m), queueLists(jobs))
	checkDrained(t, p.Stats())
}

func TestFaultsOutageBoundsMemory(t *testing.T) {
	const (
		maxBuffered = 4000
		maxPayload  = 1000
		maxBatch    = 2000
		payloadSize = 100
	)
	// Until unblocked, every EXEC fails with LOADING, so the accepted jobs
	// stay buffered.
	var blocked atomic.Bool
	blocked.Store(true)
	pool := &stubPool{reply: func(_ int, sent []stubCommand) (any, error) {
		if blocked.Load() {
			replies := stubOKReply(sent)
			replies[len(replies)-1] = redis.Error(loadingReply)
			return replies, nil
		}
		return stubOKReply(sent), nil
	}}
	logger, _ := quietLogger()
	p := newPublisher(t, pool, push.WithLogger(logger), push.WithFlushInterval(0),
		push.WithMaxBufferedBytes(maxBuffered), push.WithMaxPayloadBytes(maxPayload),
		push.WithMaxBatchBytes(maxBatch), push.WithBufferSize(1000),
		push.WithRetryBackoff(time.Millisecond, 10*time.Millisecond), push.WithRetryTimeout(time.Minute))

	if err := p.PushChan(push.PeerQueue, make([]byte, maxPayload+1)); !errors.Is(err, push.ErrPayloadTooLarge) {
		t.Errorf("PushChan of %d bytes returned %v, want ErrPayloadTooLarge", maxPayload+1, err)
	}

	// Fill the byte budget: 40 payloads of 100 bytes fit in 4000 bytes.
	var accepted []push.Push
	for i := 0; ; i++ {
		payload := fmt.Appendf(nil, `{"content":"%0*d"}`, payloadSize-len(`{"content":""}`), i)
		err := p.PushChan(push.PeerQueue, slices.Clone(payload))
		if errors.Is(err, push.ErrQueueFull) {
			break
		}
		if err != nil {
			t.Fatalf("PushChan of job %d: %v", i, err)
		}
		accepted = append(accepted, push.Push{Queue: push.PeerQueue, Payload: payload})
		if i > 2*maxBuffered/payloadSize {
			t.Fatalf("accepted %d jobs of %d bytes, more than WithMaxBufferedBytes(%d) allows", len(accepted), payloadSize, maxBuffered)
		}
	}
	stats := p.Stats()
	if want := maxBuffered / payloadSize; len(accepted) != want {
		t.Errorf("accepted %d jobs of %d bytes during the outage, want %d", len(accepted), payloadSize, want)
	}
	if stats.BufferedBytes > maxBuffered {
		t.Errorf("BufferedBytes = %d, want at most %d", stats.BufferedBytes, maxBuffered)
	}
	if stats.Dropped != 1 {
		t.Errorf("Dropped = %d, want 1", stats.Dropped)
	}
	if stats.Written != 0 {
		t.Errorf("Written = %d during the outage, want 0", stats.Written)
	}

	blocked.Store(false)
	waitFor(t, faultWaitTimeout, "all jobs written", func() bool { return p.Stats().Written == uint64(len(accepted)) })
	closePublisher(t, p)

	// Every transaction stays within the batch byte limit, and the
	// successful ones carry each job once, in order.
	var delivered []push.Push
	for i, cmds := range pool.sent() {
		bytes := 0
		for _, cmd := range cmds {
			if cmd.Name != "RPUSH" {
				continue
			}
			for _, payload := range cmd.Args[1:] {
				bytes += len(payload)
			}
		}
		if bytes > maxBatch {
			t.Errorf("transaction %d carries %d payload bytes, more than WithMaxBatchBytes(%d)", i+1, bytes, maxBatch)
		}
	}
	for _, cmd := range pool.written() {
		for _, payload := range cmd.Args[1:] {
			delivered = append(delivered, push.Push{Queue: cmd.Args[0], Payload: []byte(payload)})
		}
	}
	checkQueueLists(t, queueLists(delivered), queueLists(accepted))
	checkDrained(t, p.Stats())
}

// unreachablePool fails every GetContext, like a pool whose server is
// down.
type unreachablePool struct{}

func (unreachablePool) GetContext(context.Context) (redis.Conn, error) {
	return nil, errors.New("dial tcp 127.0.0.1:1: connect: connection refused")
}

func TestFaultsRateLimitMixedQueues(t *testing.T) {
	logger, hook := quietLogger()
	p := newPublisher(t, unreachablePool{}, push.WithLogger(logger), push.WithFlushInterval(0),
		push.WithRetryTimeout(0), push.WithBufferSize(1000), push.WithBatchSize(1))

	// Each batch holds one job, so the queues in the errors change from
	// batch to batch while the failure is the same.
	queues := []string{"push_queue", "group_push_queue", "system_push_queue", "customer_push_queue"}
	for i := range 200 {
		queue := queues[(i*7/3)%len(queues)]
		if err := p.PushChan(queue, []byte(fmt.Sprintf("job-%d", i))); err != nil {
			t.Fatalf("PushChan: %v", err)
		}
	}
	closeCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = p.Close(closeCtx)

	stats := p.Stats()
	if stats.Failed != 200 {
		t.Fatalf("Stats.Failed = %d, want 200", stats.Failed)
	}
	failedLines, gaveUpLines := 0, 0
	for _, entry := range hook.AllEntries() {
		switch entry.Message {
		case "push: Redis write failed", "push: Redis write failed, will retry":
			failedLines++
		case "push: gave up on jobs":
			gaveUpLines++
		}
	}
	// One line of each kind, and more only if the run took longer than
	// the repeat interval of five seconds.
	if failedLines < 1 || failedLines > 2 {
		t.Errorf("%d write-failure lines for one repeated failure, want 1 (2 if the run passed 5s)", failedLines)
	}
	if gaveUpLines < 1 || gaveUpLines > 2 {
		t.Errorf("%d give-up lines for one repeated failure, want 1 (2 if the run passed 5s)", gaveUpLines)
	}
}
