package push_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/imkit/push"
)

// publishStressJob publishes a job whose content is id with one of the
// Publish helpers, or with PushChan, chosen by n. Odd app ids are ROM apps,
// so peer, group and customer V2 jobs spread over per-app queues too.
func publishStressJob(p *push.Publisher, n int, id string) error {
	appid := int64(n % 4)
	switch n % 6 {
	case 0:
		return p.PublishPeerMessage(appid, &push.PeerMessage{Sender: 1, Receiver: 2, Content: id})
	case 1:
		return p.PublishGroupMessage(appid, []int64{2, 3}, &push.GroupMessage{Sender: 1, GroupID: 9, Content: id})
	case 2:
		return p.PublishCustomerMessage(appid, 2, &push.CustomerMessage{CustomerAppID: 1, CustomerID: 1, SellerID: 3, StoreID: 4, Content: id}, 25)
	case 3:
		return p.PublishCustomerMessageV2(appid, &push.CustomerMessageV2{SenderAppID: 1, Sender: 1, ReceiverAppID: 2, Receiver: 2, Content: id})
	case 4:
		return p.PublishSystemMessage(appid, 2, id)
	default:
		payload, _ := json.Marshal(map[string]string{"content": id})
		return p.PushChan("stress_queue", payload)
	}
}

// stressOutcome is what one publishing goroutine saw: the ids of its jobs
// by the result of their publish call.
type stressOutcome struct {
	accepted []string
	full     []string // ErrQueueFull
	closed   []string // ErrClosed
}

// flakyPool fails every second request for a connection. Counting calls
// rather than time makes the failures independent of how the scheduler
// runs the test.
type flakyPool struct {
	inner push.Pool
	calls atomic.Int64
}

func (f *flakyPool) GetContext(ctx context.Context) (redis.Conn, error) {
	if f.calls.Add(1)%2 == 0 {
		return nil, redis.ErrPoolExhausted
	}
	return f.inner.GetContext(ctx)
}

// TestStressPublishClose publishes from 16 goroutines while the pool fails
// every second request and two goroutines call Close. Every accepted job must be
// in Redis exactly once and no rejected one at all.
func TestStressPublishClose(t *testing.T) {
	const (
		workers = 16
		// maxJobs bounds each goroutine in case Close never rejects it.
		maxJobs = 4000
	)
	m, pool := startMiniredis(t)
	flaky := &flakyPool{inner: pool}
	logger, _ := quietLogger()
	p := newPublisher(t, flaky, push.WithLogger(logger),
		push.WithFlushInterval(time.Millisecond), push.WithBatchSize(100), push.WithBufferSize(256),
		// Publishers wait a little for room, so that they are not all
		// dropped while a batch is retried, but some still are.
		push.WithEnqueueTimeout(5*time.Millisecond),
		push.WithROMApps(func(appid int64) bool { return appid%2 == 1 }),
		push.WithRetryBackoff(time.Millisecond, 5*time.Millisecond), push.WithRetryTimeout(time.Minute))

	// The pool fails every second request, so batches are retried while
	// jobs arrive and while Close drains them. A failure to get a
	// connection is never ambiguous, so no job may be written twice.

	outcomes := make([]stressOutcome, workers)
	start := make(chan struct{})
	var published sync.WaitGroup
	for w := range workers {
		published.Add(1)
		go func() {
			defer published.Done()
			<-start
			out := &outcomes[w]
			for n := range maxJobs {
				id := fmt.Sprintf("w%d-n%d", w, n)
				err := publishStressJob(p, n, id)
				switch {
				case err == nil:
					out.accepted = append(out.accepted, id)
				case errors.Is(err, push.ErrQueueFull):
					out.full = append(out.full, id)
				case errors.Is(err, push.ErrClosed):
					out.closed = append(out.closed, id)
					return
				default:
					t.Errorf("publishing %s: %v, want nil, ErrQueueFull or ErrClosed", id, err)
					return
				}
			}
		}()
	}
	close(start)
	waitFor(t, faultWaitTimeout, "20000 published jobs", func() bool { return p.Stats().Published >= 20000 })

	closeErrs := make(chan error, 2)
	for range 2 {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			closeErrs <- p.Close(ctx)
		}()
	}
	published.Wait()
	for range 2 {
		if err := <-closeErrs; err != nil {
			t.Errorf("Close: %v", err)
		}
	}

	// Count every job in Redis by its content.
	inRedis := make(map[string]int)
	for key, entries := range miniLists(t, m) {
		for _, entry := range entries {
			var payload struct{ Content string }
			if err := json.Unmarshal([]byte(entry), &payload); err != nil {
				t.Fatalf("decoding %s entry %q: %v", key, entry, err)
			}
			inRedis[payload.Content]++
		}
	}
	var accepted, full, closed int
	for _, out := range outcomes {
		accepted += len(out.accepted)
		full += len(out.full)
		closed += len(out.closed)
		for _, id := range out.accepted {
			if n := inRedis[id]; n != 1 {
				t.Errorf("accepted job %s is in Redis %d times, want once", id, n)
			}
			delete(inRedis, id)
		}
		for _, id := range append(out.full, out.closed...) {
			if n := inRedis[id]; n != 0 {
				t.Errorf("rejected job %s is in Redis %d times, want 0", id, n)
			}
		}
	}
	for id, n := range inRedis {
		t.Errorf("Redis contains job %s %d times, but its publish was not accepted", id, n)
	}

	stats := p.Stats()
	t.Logf("%d accepted, %d rejected as full, %d rejected as closed, %d transactions, %d retries",
		accepted, full, closed, stats.Batches, stats.Retries)
	if stats.Retries == 0 {
		t.Errorf("Retries = 0, want some while the pool fails")
	}
	if stats.Published != uint64(accepted) {
		t.Errorf("Published = %d, want the %d accepted jobs", stats.Published, accepted)
	}
	if stats.Written != uint64(accepted) {
		t.Errorf("Written = %d, want the %d accepted jobs", stats.Written, accepted)
	}
	if stats.Failed != 0 {
		t.Errorf("Failed = %d (%v), want 0", stats.Failed, stats.FailedByReason)
	}
	if stats.Dropped != uint64(full) {
		t.Errorf("Dropped = %d, want the %d ErrQueueFull results", stats.Dropped, full)
	}
	if stats.Rejected != uint64(closed) {
		t.Errorf("Rejected = %d, want the %d ErrClosed results", stats.Rejected, closed)
	}
	checkDrained(t, stats)
}
