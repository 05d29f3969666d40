package push_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/imkit/push"
)

// transactionsPerSession returns the number of MULTI commands each
// recorded connection carried.
func transactionsPerSession(sessions [][]recordedCommand) []int {
	counts := make([]int, len(sessions))
	for i, session := range sessions {
		for _, c := range session {
			if c.Name == "MULTI" {
				counts[i]++
			}
		}
	}
	return counts
}

func TestPipelineUnderLoad(t *testing.T) {
	server, pool := startMiniredis(t)
	rec := &recordingPool{inner: pool}
	gate := newGatedPool(rec)
	t.Cleanup(gate.release)
	logger, _ := quietLogger()
	p := newPublisher(t, gate, push.WithLogger(logger), push.WithBatchSize(10),
		push.WithFlushInterval(time.Hour), push.WithBufferSize(1000))

	want := make(map[string][]string)
	for i := range 300 {
		queue := fmt.Sprintf("q%d", i%3)
		job := fmt.Sprintf("job-%03d", i)
		want[queue] = append(want[queue], job)
		mustPush(t, p, queue, job)
	}
	gate.release()
	closePublisher(t, p)

	for queue, jobs := range want {
		if got := listEntries(t, server, queue); !slices.Equal(got, jobs) {
			t.Errorf("%s = %q, want %q", queue, got, jobs)
		}
	}
	stats := p.Stats()
	if stats.Written != 300 {
		t.Errorf("Stats.Written = %d, want 300", stats.Written)
	}
	if stats.Batches != 30 {
		t.Errorf("Stats.Batches = %d, want 30", stats.Batches)
	}
	if got := slices.Max(transactionsPerSession(rec.Sessions())); got < 2 {
		t.Errorf("the most transactions on one connection = %d, want at least 2 (pipelined)", got)
	}
}

func TestPipelineWrongType(t *testing.T) {
	server, pool := startMiniredis(t)
	if err := server.Set("bad", "a string"); err != nil {
		t.Fatalf("Set: %v", err)
	}
	gate := newGatedPool(pool)
	t.Cleanup(gate.release)
	logger, _ := quietLogger()

	var mu sync.Mutex
	var failed []string
	handler := func(jobs []push.Push, err error) {
		var werr *push.WriteError
		if !errors.As(err, &werr) || werr.Reason != "WRONGTYPE" {
			t.Errorf("error handler got %v, want a WRONGTYPE *WriteError", err)
		}
		mu.Lock()
		defer mu.Unlock()
		for _, job := range jobs {
			failed = append(failed, string(job.Payload))
		}
	}
	p := newPublisher(t, gate, push.WithLogger(logger), push.WithBatchSize(10),
		push.WithFlushInterval(time.Hour), push.WithErrorHandler(handler))

	var wantGood, wantBad []string
	for i := range 100 {
		job := fmt.Sprintf("job-%03d", i)
		if i%4 == 0 {
			wantBad = append(wantBad, job)
			mustPush(t, p, "bad", job)
		} else {
			wantGood = append(wantGood, job)
			mustPush(t, p, "good", job)
		}
	}
	gate.release()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Close(ctx); err == nil {
		t.Error("Close returned nil, want an error counting the WRONGTYPE failures")
	}

	if got := listEntries(t, server, "good"); !slices.Equal(got, wantGood) {
		t.Errorf("good = %q, want %q", got, wantGood)
	}
	mu.Lock()
	slices.Sort(failed)
	mu.Unlock()
	if !slices.Equal(failed, wantBad) {
		t.Errorf("error handler got %q, want %q", failed, wantBad)
	}
	stats := p.Stats()
	if stats.Retries != 0 {
		t.Errorf("Stats.Retries = %d, want 0 for a permanent error", stats.Retries)
	}
	if stats.Written != uint64(len(wantGood)) {
		t.Errorf("Stats.Written = %d, want %d", stats.Written, len(wantGood))
	}
	if stats.FailedByReason["WRONGTYPE"] != uint64(len(wantBad)) {
		t.Errorf("Stats.FailedByReason[WRONGTYPE] = %d, want %d", stats.FailedByReason["WRONGTYPE"], len(wantBad))
	}
}

// lossyPool hands out connections whose next reply read fails as if the
// connection broke after the server had received the transactions.
type lossyPool struct {
	inner      push.Pool
	failReads  atomic.Int32 // number of reply reads still to fail
	failedOnce atomic.Bool
}

func (l *lossyPool) GetContext(ctx context.Context) (redis.Conn, error) {
	conn, err := l.inner.GetContext(ctx)
	if err != nil {
		return nil, err
	}
	return &lossyConn{Conn: conn, pool: l}, nil
}

type lossyConn struct {
	redis.Conn
	pool *lossyPool
}

var (
	_ redis.ConnWithContext = (*lossyConn)(nil)
	_ redis.ConnWithTimeout = (*lossyConn)(nil)
)

func (c *lossyConn) DoContext(ctx context.Context, cmd string, args ...any) (any, error) {
	return redis.DoContext(c.Conn, ctx, cmd, args...)
}

func (c *lossyConn) DoWithTimeout(timeout time.Duration, cmd string, args ...any) (any, error) {
	return redis.DoWithTimeout(c.Conn, timeout, cmd, args...)
}

func (c *lossyConn) ReceiveContext(ctx context.Context) (any, error) {
	return redis.ReceiveContext(c.Conn, ctx)
}

// ReceiveWithTimeout breaks the real connection before failing, so that
// later reads on it fail too, as on a connection that really broke.
func (c *lossyConn) ReceiveWithTimeout(timeout time.Duration) (any, error) {
	if c.pool.failReads.Add(-1) >= 0 {
		c.pool.failedOnce.Store(true)
		expired, cancel := context.WithDeadline(context.Background(), time.Unix(0, 0))
		defer cancel()
		_, _ = redis.DoContext(c.Conn, expired, "")
		return nil, io.ErrUnexpectedEOF
	}
	return redis.ReceiveWithTimeout(c.Conn, timeout)
}

func TestPipelineLostReplies(t *testing.T) {
	server, pool := startMiniredis(t)
	lossy := &lossyPool{inner: pool}
	lossy.failReads.Store(1)
	gate := newGatedPool(lossy)
	t.Cleanup(gate.release)
	logger, _ := quietLogger()
	p := newPublisher(t, gate, push.WithLogger(logger), push.WithBatchSize(10),
		push.WithFlushInterval(time.Hour), push.WithRetryBackoff(time.Millisecond, 10*time.Millisecond))

	var want []string
	for i := range 100 {
		job := fmt.Sprintf("job-%03d", i)
		want = append(want, job)
		mustPush(t, p, "q", job)
	}
	gate.release()
	closePublisher(t, p)

	if !lossy.failedOnce.Load() {
		t.Fatal("no reply read failed, so the batcher never read replies one by one (nothing was pipelined)")
	}
	stats := p.Stats()
	// Two transactions were in flight when the read failed, and whether
	// the server applied them is unknown, so both are sent again.
	if stats.Ambiguous != 20 {
		t.Errorf("Stats.Ambiguous = %d, want 20", stats.Ambiguous)
	}
	if stats.Written != 100 || stats.Failed != 0 {
		t.Errorf("Stats.Written, Failed = %d, %d, want 100, 0", stats.Written, stats.Failed)
	}

	got := listEntries(t, server, "q")
	var firstSeen []string
	seen := make(map[string]bool)
	for _, job := range got {
		if !seen[job] {
			seen[job] = true
			firstSeen = append(firstSeen, job)
		}
	}
	if !slices.Equal(firstSeen, want) {
		t.Errorf("q without repeats = %q, want %q", firstSeen, want)
	}
	if extra := len(got) - len(want); uint64(extra) > stats.Ambiguous {
		t.Errorf("q has %d extra entries, more than Stats.Ambiguous = %d", extra, stats.Ambiguous)
	}
}
