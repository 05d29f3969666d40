package push_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/imkit/push"
)

// These tests run against a real redis-server, whose MULTI/EXEC replies
// miniredis only imitates.

// redisList returns the entries of the list at key on s.
func redisList(t *testing.T, s *redisServer, key string) []string {
	t.Helper()
	entries, err := redis.Strings(s.TryDo("LRANGE", key, 0, -1))
	if err != nil {
		t.Fatalf("LRANGE %s: %v", key, err)
	}
	return entries
}

func redisListLen(t *testing.T, s *redisServer, key string) int64 {
	t.Helper()
	n, err := redis.Int64(s.TryDo("LLEN", key))
	if err != nil {
		t.Fatalf("LLEN %s: %v", key, err)
	}
	return n
}

func TestRedisBatching(t *testing.T) {
	const (
		jobs      = 5000
		batchSize = 500
	)
	s := startRedisServer(t)
	logger, _ := quietLogger()
	// With an hour's interval, only the batch size closes a batch, so 5000
	// jobs make exactly 10 transactions.
	p := newPublisher(t, newPool(t, s.Addr()), push.WithLogger(logger),
		push.WithBatchSize(batchSize), push.WithFlushInterval(time.Hour))

	want := make(map[string][]any) // expected payload structs by queue, in order
	for i := range jobs {
		h := publishHelpers[i%len(publishHelpers)]
		content := fmt.Sprintf(`{"text":"message %d","uuid":"u-%d"}`, i, i)
		appid := int64(1 + i%3)
		if err := h.publish(p, appid, content); err != nil {
			t.Fatalf("job %d (%s): %v", i, h.name, err)
		}
		want[h.queue] = append(want[h.queue], h.payload(appid, content))
	}
	waitFor(t, 30*time.Second, "every job to land", func() bool { return p.Stats().Written == jobs })

	for _, h := range publishHelpers {
		entries := redisList(t, s, h.queue)
		if len(entries) != len(want[h.queue]) {
			t.Errorf("%s has %d entries, want %d", h.queue, len(entries), len(want[h.queue]))
			continue
		}
		for i, entry := range entries {
			got, err := h.decode([]byte(entry))
			if err != nil {
				t.Fatalf("%s entry %d %s: %v", h.queue, i, entry, err)
			}
			if !reflect.DeepEqual(got, want[h.queue][i]) {
				t.Errorf("%s entry %d:\n got %#v\nwant %#v", h.queue, i, got, want[h.queue][i])
				break
			}
			if wantEntry := mustMarshal(t, want[h.queue][i]); entry != wantEntry {
				t.Errorf("%s entry %d:\n got %s\nwant %s", h.queue, i, entry, wantEntry)
				break
			}
		}
	}

	closePublisher(t, p)
	stats := p.Stats()
	if stats.Batches != jobs/batchSize {
		t.Errorf("Stats.Batches = %d, want %d", stats.Batches, jobs/batchSize)
	}
	if stats.Written != jobs {
		t.Errorf("Stats.Written = %d, want %d", stats.Written, jobs)
	}
	if stats.Failed != 0 {
		t.Errorf("Stats.Failed = %d, want 0", stats.Failed)
	}
	if stats.Retries != 0 {
		t.Errorf("Stats.Retries = %d, want 0", stats.Retries)
	}
}

func TestRedisCloseFlush(t *testing.T) {
	const jobs = 300
	s := startRedisServer(t)
	logger, _ := quietLogger()
	p := newPublisher(t, newPool(t, s.Addr()), push.WithLogger(logger), push.WithFlushInterval(time.Hour))

	want := numberedJobs(`{"n":`, jobs)
	for i := range want {
		want[i] += "}"
		mustPush(t, p, "pending_queue", want[i])
	}
	if n := redisListLen(t, s, "pending_queue"); n != 0 {
		t.Errorf("before Close, pending_queue has %d entries, want 0", n)
	}

	closePublisher(t, p)
	if got := redisList(t, s, "pending_queue"); !slices.Equal(got, want) {
		t.Errorf("pending_queue has %d entries, want the %d published in order", len(got), len(want))
	}
	stats := p.Stats()
	if stats.Batches != 1 {
		t.Errorf("Stats.Batches = %d, want 1", stats.Batches)
	}
	if stats.Written != jobs {
		t.Errorf("Stats.Written = %d, want %d", stats.Written, jobs)
	}
}

func TestRedisWrongType(t *testing.T) {
	s := startRedisServer(t)
	s.Do("SET", push.GroupQueue, "not a list")
	logger, _ := quietLogger()
	failures := &failureLog{}
	p := newPublisher(t, newPool(t, s.Addr()), push.WithLogger(logger), push.WithFlushInterval(time.Hour),
		push.WithErrorHandler(failures.handle),
		push.WithRetryTimeout(2*time.Second), push.WithRetryBackoff(10*time.Millisecond, 50*time.Millisecond))

	peer, group := findHelper(t, "peer"), findHelper(t, "group")
	var wantPeer, wantGroup []string
	for i := range 10 {
		content := fmt.Sprintf("n%d", i)
		if err := peer.publish(p, 7, content); err != nil {
			t.Fatal(err)
		}
		if err := group.publish(p, 7, content); err != nil {
			t.Fatal(err)
		}
		wantPeer = append(wantPeer, mustMarshal(t, peer.payload(7, content)))
		wantGroup = append(wantGroup, mustMarshal(t, group.payload(7, content)))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := p.Close(ctx)
	if err == nil {
		t.Fatalf("Close = nil, want an error for the 10 group jobs")
	}
	if !strings.Contains(err.Error(), "10 of 20") {
		t.Errorf("Close error %q does not count 10 of 20 jobs not written", err)
	}
	if !strings.Contains(err.Error(), "WRONGTYPE: 10") {
		t.Errorf("Close error %q does not count 10 WRONGTYPE failures", err)
	}

	if got := redisList(t, s, push.PeerQueue); !slices.Equal(got, wantPeer) {
		t.Errorf("%s:\n got %q\nwant %q", push.PeerQueue, got, wantPeer)
	}
	got, err := redis.String(s.TryDo("GET", push.GroupQueue))
	if err != nil {
		t.Fatalf("GET %s: %v", push.GroupQueue, err)
	}
	if got != "not a list" {
		t.Errorf("%s = %q, want the string left alone", push.GroupQueue, got)
	}
	checkWrongTypeFailure(t, failures, push.GroupQueue, wantGroup)

	stats := p.Stats()
	if stats.Written != 10 {
		t.Errorf("Stats.Written = %d, want 10", stats.Written)
	}
	if stats.Failed != 10 {
		t.Errorf("Stats.Failed = %d, want 10", stats.Failed)
	}
	if want := map[string]uint64{"WRONGTYPE": 10}; !reflect.DeepEqual(stats.FailedByReason, want) {
		t.Errorf("Stats.FailedByReason = %v, want %v", stats.FailedByReason, want)
	}
	if stats.Retries != 0 {
		t.Errorf("Stats.Retries = %d, want 0", stats.Retries)
	}
	if stats.Batches != 1 {
		t.Errorf("Stats.Batches = %d, want 1", stats.Batches)
	}
}

// TestRedisPayloadBytes checks that real Redis stores the encoded bytes
// unchanged, awkward characters included.
func TestRedisPayloadBytes(t *testing.T) {
	s := startRedisServer(t)
	logger, _ := quietLogger()
	p := newPublisher(t, newPool(t, s.Addr()), push.WithLogger(logger), push.WithFlushInterval(time.Hour))

	peer := findHelper(t, "peer")
	for _, c := range awkwardContents {
		if err := peer.publish(p, 7, c.content); err != nil {
			t.Fatalf("publish %s: %v", c.name, err)
		}
	}
	closePublisher(t, p)

	entries := redisList(t, s, push.PeerQueue)
	if len(entries) != len(awkwardContents) {
		t.Fatalf("%s has %d entries, want %d", push.PeerQueue, len(entries), len(awkwardContents))
	}
	for i, c := range awkwardContents {
		t.Run(c.name, func(t *testing.T) {
			checkEntry(t, peer, 7, c.content, entries[i])
			var decoded map[string]any
			if err := json.Unmarshal([]byte(entries[i]), &decoded); err != nil {
				t.Errorf("entry is not valid JSON: %v", err)
			}
		})
	}
}
