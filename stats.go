package push

import (
	"sync"
	"sync/atomic"
)

// Stats is a snapshot of a Publisher's counters. Every count is cumulative
// since NewPublisher, except Buffered and BufferedBytes, which are current.
//
// Written, Failed and Buffered count jobs accepted by PushChan and the
// Publish helpers, so Published == Written + Failed + Buffered. Jobs that a
// caller writes with PushQueue directly appear only in Batches and
// SlowWrites.
type Stats struct {
	Published uint64 // jobs accepted by PushChan and the Publish helpers
	Dropped   uint64 // jobs rejected with ErrQueueFull
	Invalid   uint64 // jobs rejected as invalid, ErrPayloadTooLarge included
	TooLarge  uint64 // jobs rejected with ErrPayloadTooLarge, also in Invalid
	Rejected  uint64 // jobs rejected with ErrClosed

	Written uint64 // accepted jobs that are in Redis
	Failed  uint64 // accepted jobs given up and handed to the error handler

	// FailedByReason splits Failed by WriteError.Reason, for example
	// "WRONGTYPE", "OOM", "timeout" or "closed". It is a fresh map.
	FailedByReason map[string]uint64

	Batches    uint64 // transactions sent, retries included
	Retries    uint64 // attempts made again for jobs that hit transient errors
	Ambiguous  uint64 // jobs sent again because a transaction's outcome was unknown
	SlowWrites uint64 // transactions slower than the slow-write threshold

	Buffered      uint64 // accepted jobs not yet written or failed
	BufferedBytes uint64 // payload bytes of the Buffered jobs
}

// cacheLinePad keeps counters that the publishing goroutines update off
// the cache line of counters that the batcher updates.
type cacheLinePad [64]byte

// counters are the live values behind Stats.
type counters struct {
	// Updated on every publish.
	published     atomic.Uint64
	bufferedBytes atomic.Int64
	_             cacheLinePad

	// Updated only when a publish is rejected.
	dropped  atomic.Uint64
	invalid  atomic.Uint64
	tooLarge atomic.Uint64
	rejected atomic.Uint64
	_        cacheLinePad

	// Updated by the batcher, once a batch.
	written    atomic.Uint64
	failed     atomic.Uint64
	batches    atomic.Uint64
	retries    atomic.Uint64
	ambiguous  atomic.Uint64
	slowWrites atomic.Uint64

	mu             sync.Mutex
	failedByReason map[string]uint64
	// closedJobs counts the jobs failed because a Close context ended.
	closedJobs uint64
}

// reserve adds n payload bytes to the buffered total unless that would
// pass max, and reports whether it did.
func (c *counters) reserve(n, max int64) bool {
	if c.bufferedBytes.Add(n) <= max {
		return true
	}
	c.bufferedBytes.Add(-n)
	return false
}

// release removes the payload bytes of jobs that left the buffer.
func (c *counters) release(jobs []Push) {
	var n int64
	for i := range jobs {
		n += int64(len(jobs[i].Payload))
	}
	c.bufferedBytes.Add(-n)
}

// addFailed counts jobs given up for reason.
func (c *counters) addFailed(jobs int, reason string) {
	c.mu.Lock()
	if c.failedByReason == nil {
		c.failedByReason = make(map[string]uint64)
	}
	c.failedByReason[reason] += uint64(jobs)
	if reason == ReasonClosed {
		c.closedJobs += uint64(jobs)
	}
	c.mu.Unlock()

	c.failed.Add(uint64(jobs))
}

func (c *counters) closedJobCount() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closedJobs
}

func (c *counters) snapshot() Stats {
	// Load the outcomes before Published: a job is counted as published
	// before it can be written or failed, so Buffered never underflows.
	written := c.written.Load()
	failed := c.failed.Load()
	published := c.published.Load()

	s := Stats{
		Published:  published,
		Dropped:    c.dropped.Load(),
		Invalid:    c.invalid.Load(),
		TooLarge:   c.tooLarge.Load(),
		Rejected:   c.rejected.Load(),
		Written:    written,
		Failed:     failed,
		Batches:    c.batches.Load(),
		Retries:    c.retries.Load(),
		Ambiguous:  c.ambiguous.Load(),
		SlowWrites: c.slowWrites.Load(),
		Buffered:   published - written - failed,
	}
	if n := c.bufferedBytes.Load(); n > 0 {
		s.BufferedBytes = uint64(n)
	}

	c.mu.Lock()
	s.FailedByReason = make(map[string]uint64, len(c.failedByReason))
	for reason, n := range c.failedByReason {
		s.FailedByReason[reason] = n
	}
	c.mu.Unlock()
	return s
}
