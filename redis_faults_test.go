package push_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/imkit/push"
)

// These tests break a real redis-server in ways miniredis cannot imitate:
// a killed process, a read-only replica, maxmemory, request size limits
// and paused clients. Each skips when redis-server is not installed,
// unless PUSH_REQUIRE_REDIS=1.

// lrange returns the entries of the list at key on s, or nil when there is
// no such list.
func lrange(t *testing.T, s *redisServer, key string) []string {
	t.Helper()
	entries, err := redis.Strings(s.TryDo("LRANGE", key, 0, -1))
	if err != nil {
		t.Fatalf("LRANGE %s: %v", key, err)
	}
	return entries
}

// redisQueueLists returns the lists in s of the queues that jobs use.
func redisQueueLists(t *testing.T, s *redisServer, jobs []push.Push) map[string][]string {
	t.Helper()
	lists := make(map[string][]string)
	for _, job := range jobs {
		if _, seen := lists[job.Queue]; seen {
			continue
		}
		lists[job.Queue] = lrange(t, s, job.Queue)
	}
	for key, entries := range lists {
		if len(entries) == 0 {
			delete(lists, key)
		}
	}
	return lists
}

// peerContent returns the content of a PeerQueue entry.
func peerContent(t *testing.T, entry string) string {
	t.Helper()
	var payload push.PeerPayload
	if err := json.Unmarshal([]byte(entry), &payload); err != nil {
		t.Fatalf("decoding entry %q: %v", entry, err)
	}
	return payload.Content
}

func TestRedisFaultsWrongType(t *testing.T) {
	srv := startRedisServer(t)
	srv.Do("SET", push.GroupQueue, "not a list")
	logger, _ := quietLogger()
	failures := &failureRecorder{}
	const perKind = 10
	opts := append(retryOptions(time.Minute, 2*perKind),
		push.WithLogger(logger), push.WithErrorHandler(failures.handle))
	p := newPublisher(t, newPool(t, srv.Addr()), opts...)

	var wantPeer []string
	var wantGroup []push.Push
	for i := range perKind {
		content := fmt.Sprintf(`{"text":"message %d"}`, i)
		peer := &push.PeerMessage{Sender: 1, Receiver: int64(100 + i), Content: content}
		if err := p.PublishPeerMessage(7, peer); err != nil {
			t.Fatalf("PublishPeerMessage %d: %v", i, err)
		}
		group := &push.GroupMessage{Sender: 1, GroupID: 55, Content: content}
		receivers := []int64{int64(200 + i), int64(300 + i)}
		if err := p.PublishGroupMessage(7, receivers, group); err != nil {
			t.Fatalf("PublishGroupMessage %d: %v", i, err)
		}

		peerBytes, _ := json.Marshal(push.PeerPayload{AppID: 7, Content: content, Receiver: peer.Receiver, Sender: 1})
		wantPeer = append(wantPeer, string(peerBytes))
		groupBytes, _ := json.Marshal(push.GroupPayload{AppID: 7, Content: content, GroupID: 55, Receivers: receivers, Sender: 1})
		wantGroup = append(wantGroup, push.Push{Queue: push.GroupQueue, Payload: groupBytes})
	}
	waitFor(t, faultWaitTimeout, "the handler to get the group jobs", func() bool {
		return failures.jobCount() == perKind
	})
	if err := closeWithError(t, p); err == nil {
		t.Errorf("Close returned nil, want an error counting %d failed jobs", perKind)
	}

	if got := lrange(t, srv, push.PeerQueue); !slices.Equal(got, wantPeer) {
		t.Errorf("%s contains %q, want each peer job once: %q", push.PeerQueue, got, wantPeer)
	}
	failed, _ := failures.calls()
	checkQueueLists(t, queueLists(failed), queueLists(wantGroup))
	for _, writeErr := range failures.writeErrors(t) {
		if writeErr.Reason != "WRONGTYPE" {
			t.Errorf("WriteError.Reason = %q, want WRONGTYPE", writeErr.Reason)
		}
		if writeErr.Temporary {
			t.Errorf("WriteError.Temporary = true, want false for WRONGTYPE")
		}
	}
	stats := p.Stats()
	if stats.Retries != 0 {
		t.Errorf("Retries = %d, want 0", stats.Retries)
	}
	if stats.Written != perKind {
		t.Errorf("Written = %d, want %d", stats.Written, perKind)
	}
	if got := stats.FailedByReason["WRONGTYPE"]; got != perKind {
		t.Errorf("FailedByReason[WRONGTYPE] = %d (%v), want %d", got, stats.FailedByReason, perKind)
	}
	checkDrained(t, stats)
}

// TestRedisFaultsKill kills redis-server with SIGKILL in the middle of a
// steady stream of jobs and starts it again on the same port.
//
// The server keeps nothing across the kill, so the jobs it had applied
// before are gone, and that loss is the kill's doing, not the library's.
// To tell them apart, the test pauses writes (CLIENT PAUSE WRITE) right
// before the kill and reads the lists then. With writes paused, nothing
// can be applied between that read and the kill, so the read returns
// exactly what the old server applied. Every accepted job must be in that read or
// in the lists of the new server. A job in both, or twice in one, was sent
// twice, which the library may do only for transactions whose outcome was
// unknown, so the duplicates are bounded by Stats.Ambiguous.
func TestRedisFaultsKill(t *testing.T) {
	srv := startRedisServer(t)
	logger, hook := quietLogger()
	p := newPublisher(t, newPool(t, srv.Addr()), push.WithLogger(logger), push.WithFlushInterval(0),
		push.WithRetryBackoff(5*time.Millisecond, 50*time.Millisecond),
		push.WithRetryTimeout(time.Minute), push.WithWriteTimeout(2*time.Second))

	// The stream publishes one job a millisecond until stop is closed.
	stop := make(chan struct{})
	var streamed sync.WaitGroup
	var mu sync.Mutex
	var accepted []string
	acceptedCount := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(accepted)
	}
	streamed.Add(1)
	go func() {
		defer streamed.Done()
		ticker := time.NewTicker(time.Millisecond)
		defer ticker.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-ticker.C:
			}
			content := fmt.Sprintf("job-%d", i)
			err := p.PublishPeerMessage(1, &push.PeerMessage{Sender: 1, Receiver: 2, Content: content})
			if err != nil {
				t.Errorf("PublishPeerMessage %s: %v", content, err)
				return
			}
			mu.Lock()
			accepted = append(accepted, content)
			mu.Unlock()
		}
	}()
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		streamed.Wait()
	}()

	waitFor(t, faultWaitTimeout, "200 jobs written", func() bool { return p.Stats().Written >= 200 })
	srv.Do("CLIENT", "PAUSE", 60000, "WRITE")
	beforeKill := lrange(t, srv, push.PeerQueue)
	srv.Kill()
	acceptedAtKill := acceptedCount()

	waitFor(t, faultWaitTimeout, "a failed attempt after the kill", func() bool {
		return countLogEntries(hook, msgWillRetry) > 0
	})
	srv.Start()
	waitFor(t, faultWaitTimeout, "200 jobs accepted after the kill", func() bool {
		return acceptedCount() >= acceptedAtKill+200
	})
	close(stop)
	streamed.Wait()
	closePublisher(t, p)

	afterRestart := lrange(t, srv, push.PeerQueue)
	seen := make(map[string]int)
	for _, entry := range slices.Concat(beforeKill, afterRestart) {
		seen[peerContent(t, entry)]++
	}
	duplicates := 0
	for _, content := range accepted {
		switch n := seen[content]; {
		case n == 0:
			t.Errorf("accepted job %s is in Redis neither before the kill nor after the restart", content)
		case n > 1:
			duplicates += n - 1
		}
		delete(seen, content)
	}
	for content := range seen {
		t.Errorf("Redis contains %s, which was never accepted", content)
	}

	stats := p.Stats()
	t.Logf("%d jobs accepted, %d in Redis before the kill, %d after the restart, %d duplicates, Ambiguous = %d, Retries = %d",
		len(accepted), len(beforeKill), len(afterRestart), duplicates, stats.Ambiguous, stats.Retries)
	if uint64(duplicates) > stats.Ambiguous {
		t.Errorf("%d jobs written twice, more than Stats.Ambiguous = %d", duplicates, stats.Ambiguous)
	}
	if stats.Published != uint64(len(accepted)) {
		t.Errorf("Published = %d, want the %d accepted jobs", stats.Published, len(accepted))
	}
	if stats.Failed != 0 {
		t.Errorf("Failed = %d (%v), want 0", stats.Failed, stats.FailedByReason)
	}
	if stats.Retries == 0 {
		t.Errorf("Retries = 0, want > 0 after the kill")
	}
	if len(beforeKill) == 0 || len(afterRestart) == 0 {
		t.Errorf("%d entries before the kill and %d after the restart, want some in both", len(beforeKill), len(afterRestart))
	}
	checkDrained(t, stats)
}

func TestRedisFaultsReadOnly(t *testing.T) {
	srv := startRedisServer(t)
	// A replica of a primary that is not there rejects every write with
	// READONLY until it is promoted again.
	srv.Do("REPLICAOF", "127.0.0.1", freePort(t))
	logger, hook := quietLogger()
	jobs := faultJobs(12)
	opts := append(retryOptions(time.Minute, len(jobs)), push.WithLogger(logger))
	p := newPublisher(t, newPool(t, srv.Addr()), opts...)

	pushEach(t, p, jobs)
	waitFor(t, faultWaitTimeout, "a retry after READONLY", func() bool {
		return p.Stats().Retries >= 1 && hasRetryReason(hook, "READONLY")
	})
	if got := p.Stats().Written; got != 0 {
		t.Errorf("while the server is read-only, Written = %d, want 0", got)
	}
	srv.Do("REPLICAOF", "NO", "ONE")
	waitFor(t, faultWaitTimeout, "all jobs written", func() bool { return p.Stats().Written == uint64(len(jobs)) })
	closePublisher(t, p)

	stats := p.Stats()
	if stats.Failed != 0 {
		t.Errorf("Failed = %d (%v), want 0", stats.Failed, stats.FailedByReason)
	}
	checkQueueLists(t, redisQueueLists(t, srv, jobs), queueLists(jobs))
	checkDrained(t, stats)
}

func TestRedisFaultsOutOfMemory(t *testing.T) {
	srv := startRedisServer(t, "--maxmemory-policy", "noeviction")
	// Fill the server first, then lower maxmemory below what it uses, so
	// that every RPUSH is rejected with OOM.
	srv.Do("SET", "filler", strings.Repeat("x", 4<<20))
	srv.Do("CONFIG", "SET", "maxmemory", "3mb")

	logger, hook := quietLogger()
	failures := &failureRecorder{}
	jobs := faultJobs(9)
	opts := append(retryOptions(300*time.Millisecond, len(jobs)),
		push.WithLogger(logger), push.WithErrorHandler(failures.handle))
	p := newPublisher(t, newPool(t, srv.Addr()), opts...)

	pushEach(t, p, jobs)
	waitFor(t, faultWaitTimeout, "the handler to get every job", func() bool {
		return failures.jobCount() == len(jobs)
	})
	if !hasRetryReason(hook, "OOM") {
		t.Errorf("no %q entry with reason OOM was logged", msgWillRetry)
	}
	failed, _ := failures.calls()
	checkQueueLists(t, queueLists(failed), queueLists(jobs))
	for _, writeErr := range failures.writeErrors(t) {
		if writeErr.Reason != "OOM" {
			t.Errorf("WriteError.Reason = %q, want OOM", writeErr.Reason)
		}
		if !writeErr.Temporary {
			t.Errorf("WriteError.Temporary = false, want true for OOM")
		}
		if writeErr.Attempts <= 1 {
			t.Errorf("WriteError.Attempts = %d, want > 1", writeErr.Attempts)
		}
	}

	// With room again, new jobs land.
	srv.Do("DEL", "filler")
	later := faultJobs(15)[len(jobs):]
	pushEach(t, p, later)
	if err := closeWithError(t, p); err == nil {
		t.Errorf("Close returned nil, want an error counting %d failed jobs", len(jobs))
	}

	stats := p.Stats()
	if got := stats.FailedByReason["OOM"]; got != uint64(len(jobs)) {
		t.Errorf("FailedByReason[OOM] = %d (%v), want %d", got, stats.FailedByReason, len(jobs))
	}
	if stats.Written != uint64(len(later)) {
		t.Errorf("Written = %d, want %d", stats.Written, len(later))
	}
	if stats.Retries == 0 {
		t.Errorf("Retries = 0, want > 0")
	}
	checkQueueLists(t, redisQueueLists(t, srv, jobs), queueLists(later))
	checkDrained(t, stats)
}

func TestRedisFaultsBulkLimit(t *testing.T) {
	// 1mb is the lowest proto-max-bulk-len Redis accepts. The default
	// payload limit of 512 KiB keeps every argument below it.
	srv := startRedisServer(t, "--proto-max-bulk-len", "1mb")
	logger, _ := quietLogger()
	p := newPublisher(t, newPool(t, srv.Addr()), push.WithLogger(logger), push.WithFlushInterval(0))

	jobs := faultJobs(6)
	largest := push.Push{Queue: push.PeerQueue, Payload: []byte(`"` + strings.Repeat("x", push.DefaultMaxPayloadBytes-2) + `"`)}
	pushEach(t, p, jobs[:3])
	err := p.PushChan(push.PeerQueue, []byte(strings.Repeat("x", 2<<20)))
	if !errors.Is(err, push.ErrPayloadTooLarge) {
		t.Errorf("PushChan of 2 MiB returned %v, want ErrPayloadTooLarge", err)
	}
	if !errors.Is(err, push.ErrInvalidMessage) {
		t.Errorf("PushChan of 2 MiB returned %v, want an error wrapping ErrInvalidMessage", err)
	}
	pushEach(t, p, []push.Push{largest})
	pushEach(t, p, jobs[3:])
	closePublisher(t, p)

	want := slices.Concat(jobs[:3], []push.Push{largest}, jobs[3:])
	checkQueueLists(t, redisQueueLists(t, srv, want), queueLists(want))
	stats := p.Stats()
	if stats.TooLarge != 1 {
		t.Errorf("TooLarge = %d, want 1", stats.TooLarge)
	}
	if stats.Written != uint64(len(want)) {
		t.Errorf("Written = %d, want %d", stats.Written, len(want))
	}
	checkDrained(t, stats)
}

func TestRedisFaultsClientPause(t *testing.T) {
	srv := startRedisServer(t)
	logger, hook := quietLogger()
	const threshold = 100 * time.Millisecond
	jobs := faultJobs(20)
	p := newPublisher(t, newPool(t, srv.Addr()), push.WithLogger(logger), push.WithFlushInterval(0),
		push.WithSlowWriteThreshold(threshold), push.WithWriteTimeout(30*time.Second))

	srv.Do("CLIENT", "PAUSE", 30000, "WRITE")
	pushEach(t, p, jobs)
	// Once a transaction has its connection, it is blocked until the
	// pause ends. Holding the pause for three thresholds after that makes
	// the transaction slow however fast the machine is.
	waitFor(t, faultWaitTimeout, "a transaction started", func() bool { return p.Stats().Batches >= 1 })
	time.Sleep(3 * threshold)
	srv.Do("CLIENT", "UNPAUSE")
	waitFor(t, faultWaitTimeout, "all jobs written", func() bool { return p.Stats().Written == uint64(len(jobs)) })
	closePublisher(t, p)

	stats := p.Stats()
	if stats.SlowWrites == 0 {
		t.Errorf("SlowWrites = 0, want > 0")
	}
	if n := countLogEntries(hook, msgSlowWrite); n == 0 {
		t.Errorf("no %q line logged", msgSlowWrite)
	}
	if stats.Failed != 0 {
		t.Errorf("Failed = %d (%v), want 0", stats.Failed, stats.FailedByReason)
	}
	checkQueueLists(t, redisQueueLists(t, srv, jobs), queueLists(jobs))
	checkDrained(t, stats)
}

func TestRedisFaultsStartedLate(t *testing.T) {
	srv := startRedisServer(t)
	srv.Kill()
	logger, hook := quietLogger()
	jobs := faultJobs(12)
	opts := append(retryOptions(30*time.Second, len(jobs)), push.WithLogger(logger))
	p := newPublisher(t, newPool(t, srv.Addr()), opts...)

	pushEach(t, p, jobs)
	waitFor(t, faultWaitTimeout, "a failed connection attempt", func() bool {
		return hasRetryReason(hook, push.ReasonConnection)
	})
	srv.Start()
	waitFor(t, 20*time.Second, "all jobs written", func() bool { return p.Stats().Written == uint64(len(jobs)) })
	closePublisher(t, p)

	stats := p.Stats()
	if stats.Failed != 0 {
		t.Errorf("Failed = %d (%v), want 0", stats.Failed, stats.FailedByReason)
	}
	if stats.Retries == 0 {
		t.Errorf("Retries = 0, want > 0")
	}
	checkQueueLists(t, redisQueueLists(t, srv, jobs), queueLists(jobs))
	checkDrained(t, stats)
}

func TestRedisFaultsCloseDuringPause(t *testing.T) {
	srv := startRedisServer(t)
	logger, _ := quietLogger()
	failures := &failureRecorder{}
	jobs := faultJobs(6)
	const writeTimeout = 500 * time.Millisecond
	p := newPublisher(t, newPool(t, srv.Addr()), push.WithLogger(logger), push.WithErrorHandler(failures.handle),
		push.WithWriteTimeout(writeTimeout), push.WithRetryTimeout(time.Hour),
		push.WithRetryBackoff(time.Millisecond, 10*time.Millisecond),
		push.WithBatchSize(len(jobs)), push.WithFlushInterval(time.Hour))

	// The transaction is sent and then blocked by the pause. Close's
	// context ends at once, and Close still waits for the transaction,
	// but only up to the write timeout.
	srv.Do("CLIENT", "PAUSE", 60000, "WRITE")
	pushEach(t, p, jobs)
	waitFor(t, faultWaitTimeout, "a transaction started", func() bool { return p.Stats().Batches >= 1 })
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	closed := make(chan error, 1)
	go func() { closed <- p.Close(ctx) }()
	var err error
	select {
	case err = <-closed:
	case <-time.After(faultWaitTimeout):
		t.Fatalf("Close did not return within %v while Redis was paused for a minute", faultWaitTimeout)
	}
	srv.Do("CLIENT", "UNPAUSE")

	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close error %v does not wrap context.DeadlineExceeded", err)
	}
	failed, _ := failures.calls()
	checkQueueLists(t, queueLists(failed), queueLists(jobs))
	for _, writeErr := range failures.writeErrors(t) {
		if writeErr.Reason != push.ReasonClosed {
			t.Errorf("WriteError.Reason = %q, want %q", writeErr.Reason, push.ReasonClosed)
		}
	}
	// The timed-out connection was closed before Redis ran the
	// transaction, so the failed jobs are not in Redis either.
	checkQueueLists(t, redisQueueLists(t, srv, jobs), nil)
	stats := p.Stats()
	if got := stats.FailedByReason[push.ReasonClosed]; got != uint64(len(jobs)) {
		t.Errorf("FailedByReason[closed] = %d (%v), want %d", got, stats.FailedByReason, len(jobs))
	}
	checkDrained(t, stats)
}
