package push

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// A Publisher buffers push jobs and writes them to Redis in the
// background. Make one with NewPublisher and call Close when done, or the
// batcher goroutine and the buffered jobs are never released. It is safe
// for concurrent use.
type Publisher struct {
	pool Pool
	cfg  config

	// jobs carries accepted jobs to the batcher. Only Close closes it,
	// after setting closed under mu.
	jobs chan Push
	// mu is held for reading by every enqueue and for writing once by
	// Close, so that no enqueue sends on the closed jobs channel.
	mu     sync.RWMutex
	closed bool
	// stopped is set when Close starts. PushChan and the Publish helpers
	// check it before they validate and encode, so that a publish after
	// Close returns ErrClosed whatever its input. The check of closed
	// under mu decides for a publish that races Close.
	stopped atomic.Bool
	// closing is closed when Close starts. It ends the waits of enqueues
	// that WithEnqueueTimeout lets wait for room.
	closing   chan struct{}
	closeOnce sync.Once

	// abort is canceled when a Close context ends. It ends backoff waits
	// and waits for a connection, and makes the batcher fail what is left.
	abort       context.Context
	cancelAbort context.CancelCauseFunc
	// done is closed by the batcher goroutine when it exits.
	done chan struct{}

	stats     counters
	drops     dropReporter
	limiter   logLimiter
	romQueues romQueues
}

// NewPublisher returns a Publisher that writes to Redis through pool and
// starts its batcher goroutine. The caller keeps ownership of pool, and
// must close it only after Close has returned. An option with a value out
// of range makes NewPublisher return an error wrapping ErrInvalidOption.
func NewPublisher(pool Pool, opts ...Option) (*Publisher, error) {
	if isNil(pool) {
		return nil, fmt.Errorf("%w: the Redis pool is nil", ErrInvalidOption)
	}
	cfg := defaultConfig()
	for i, opt := range opts {
		if opt == nil {
			return nil, fmt.Errorf("%w: option %d of %d is nil", ErrInvalidOption, i+1, len(opts))
		}
		if err := opt.apply(&cfg); err != nil {
			return nil, err
		}
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}

	abort, cancelAbort := context.WithCancelCause(context.Background())
	p := &Publisher{
		pool:        pool,
		cfg:         cfg,
		jobs:        make(chan Push, cfg.bufferSize),
		closing:     make(chan struct{}),
		abort:       abort,
		cancelAbort: cancelAbort,
		done:        make(chan struct{}),
	}
	go newBatcher(p).run()
	return p, nil
}

// isNil reports whether pool is nil, also when it holds a nil pointer such
// as a nil *redis.Pool, whose first use would panic in the batcher.
func isNil(pool Pool) bool {
	if pool == nil {
		return true
	}
	v := reflect.ValueOf(pool)
	return v.Kind() == reflect.Pointer && v.IsNil()
}

// PushChan hands one job to the batcher without waiting for Redis. It
// returns nil when the job was accepted, and from then on the job is
// either written or handed to the error handler.
//
// It returns an error wrapping ErrInvalidMessage for an empty queue name
// or payload, ErrPayloadTooLarge for a payload over the size limit,
// ErrQueueFull when the buffer is full, and ErrClosed once Close has
// started. It does not wait for Redis, nor for room in the buffer unless
// WithEnqueueTimeout is set. PushChan takes ownership of payload, which
// the caller must not modify afterwards.
func (p *Publisher) PushChan(queue string, payload []byte) error {
	if p.stopped.Load() {
		return p.rejectClosed()
	}
	if queue == "" {
		return p.invalid("the queue name is empty")
	}
	return p.enqueue(queue, payload)
}

// PublishPeerMessage enqueues a push for the receiver of a one-to-one
// message, on PeerQueue or, for a ROM app, its per-app variant.
func (p *Publisher) PublishPeerMessage(appid int64, m *PeerMessage) error {
	if p.stopped.Load() {
		return p.rejectClosed()
	}
	if m == nil {
		return p.invalid("the peer message is nil")
	}
	payload := PeerPayload{
		AppID:    appid,
		Content:  m.Content,
		Receiver: m.Receiver,
		Sender:   m.Sender,
	}
	return p.enqueue(p.queueFor(PeerQueue, appid), payload.encode())
}

// PublishGroupMessage enqueues one push for the offline receivers of a
// group message, on GroupQueue or, for a ROM app, its per-app variant.
// receivers must not be empty. The slice is encoded before the call
// returns and not kept.
func (p *Publisher) PublishGroupMessage(appid int64, receivers []int64, m *GroupMessage) error {
	if p.stopped.Load() {
		return p.rejectClosed()
	}
	if m == nil {
		return p.invalid("the group message is nil")
	}
	if len(receivers) == 0 {
		return p.invalid("the group message has no receivers")
	}
	payload := GroupPayload{
		AppID:     appid,
		Content:   m.Content,
		GroupID:   m.GroupID,
		Receivers: receivers,
		Sender:    m.Sender,
	}
	return p.enqueue(p.queueFor(GroupQueue, appid), payload.encode())
}

// PublishCustomerMessage enqueues a push for the receiver of a customer
// service message on CustomerQueue. command is the message's IM command
// code, passed on to the push service.
func (p *Publisher) PublishCustomerMessage(appid, receiver int64, m *CustomerMessage, command int) error {
	if p.stopped.Load() {
		return p.rejectClosed()
	}
	if m == nil {
		return p.invalid("the customer message is nil")
	}
	payload := CustomerPayload{
		AppID:         appid,
		Command:       command,
		Content:       m.Content,
		CustomerID:    m.CustomerID,
		CustomerAppID: m.CustomerAppID,
		Receiver:      receiver,
		SellerID:      m.SellerID,
		StoreID:       m.StoreID,
	}
	return p.enqueue(CustomerQueue, payload.encode())
}

// PublishCustomerMessageV2 enqueues a push for the receiver of a customer
// service message on CustomerQueueV2 or, for a ROM app, its per-app
// variant.
func (p *Publisher) PublishCustomerMessageV2(appid int64, m *CustomerMessageV2) error {
	if p.stopped.Load() {
		return p.rejectClosed()
	}
	if m == nil {
		return p.invalid("the customer message is nil")
	}
	payload := CustomerPayloadV2{
		AppID:         appid,
		Content:       m.Content,
		Receiver:      m.Receiver,
		ReceiverAppID: m.ReceiverAppID,
		Sender:        m.Sender,
		SenderAppID:   m.SenderAppID,
	}
	return p.enqueue(p.queueFor(CustomerQueueV2, appid), payload.encode())
}

// PublishSystemMessage enqueues a system notification for receiver on
// SystemQueue.
func (p *Publisher) PublishSystemMessage(appid, receiver int64, content string) error {
	if p.stopped.Load() {
		return p.rejectClosed()
	}
	payload := SystemPayload{
		AppID:    appid,
		Content:  content,
		Receiver: receiver,
	}
	return p.enqueue(SystemQueue, payload.encode())
}

// IsROMApp reports whether appid is a ROM app, whose peer, group and
// customer V2 jobs go to per-app queues. It calls the WithROMApps function
// and is false for every app without one.
func (p *Publisher) IsROMApp(appid int64) bool {
	return p.cfg.isROM(appid)
}

// Stats returns a snapshot of the counters. It takes no lock that a
// publish takes, so it is cheap enough to call every second.
func (p *Publisher) Stats() Stats {
	return p.stats.snapshot()
}

// Close shuts the Publisher down in this order:
//
//  1. It stops accepting jobs: PushChan and the Publish helpers return
//     ErrClosed, and those waiting for room return ErrClosed at once.
//  2. The batcher writes every accepted job, with the usual retries.
//  3. Close waits for the batcher goroutine to exit.
//
// If ctx ends before that, the batcher stops retrying and fails every job
// not yet written with ReasonClosed, through the error handler. A
// transaction already sent is still awaited, for at most the write
// timeout, so that its outcome is known. If even that wait times out, its
// jobs fail with WriteError.OutcomeUnknown set.
//
// Close returns nil when every accepted job was written. Otherwise it
// returns an error that counts the jobs not written, and that wraps
// ctx.Err() when ctx ended first. It is safe to call more than once and
// from several goroutines: every call waits for the same shutdown and
// returns the same result. A closed Publisher cannot be reused.
func (p *Publisher) Close(ctx context.Context) error {
	p.closeOnce.Do(p.stopAccepting)

	select {
	case <-p.done:
	case <-ctx.Done():
		p.cancelAbort(ctx.Err())
		<-p.done
	}
	return p.closeError()
}

// stopAccepting makes every later enqueue return ErrClosed, waits for the
// enqueues in progress, and closes the jobs channel, which makes the
// batcher drain it and exit.
func (p *Publisher) stopAccepting() {
	p.stopped.Store(true)
	close(p.closing)

	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()

	close(p.jobs)
}

// closeError summarises the jobs that were not written, after the batcher
// has exited.
func (p *Publisher) closeError() error {
	stats := p.stats.snapshot()
	if stats.Failed == 0 {
		return nil
	}

	reasons := make([]string, 0, len(stats.FailedByReason))
	for reason, n := range stats.FailedByReason {
		reasons = append(reasons, reason+": "+strconv.FormatUint(n, 10))
	}
	sort.Strings(reasons)
	summary := fmt.Sprintf("push: close: %d of %d accepted jobs were not written (%s)",
		stats.Failed, stats.Published, strings.Join(reasons, ", "))

	if p.stats.closedJobCount() > 0 {
		return fmt.Errorf("%s: %w", summary, context.Cause(p.abort))
	}
	return errors.New(summary)
}

// enqueue hands a job to the batcher, or returns why it cannot.
func (p *Publisher) enqueue(queue string, payload []byte) error {
	if len(payload) == 0 {
		return p.invalid("the payload is empty")
	}
	if len(payload) > p.cfg.maxPayloadBytes {
		p.stats.invalid.Add(1)
		p.stats.tooLarge.Add(1)
		return fmt.Errorf("%w: %d bytes on queue %s, the limit is %d (WithMaxPayloadBytes)",
			ErrPayloadTooLarge, len(payload), queue, p.cfg.maxPayloadBytes)
	}
	job := Push{Queue: queue, Payload: payload}
	size := int64(len(payload))

	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return p.rejectClosed()
	}

	// Count the job as published before the batcher can see it, so that
	// Stats never shows more jobs written than published.
	if p.stats.reserve(size, p.cfg.maxBufferedBytes) {
		p.stats.published.Add(1)
		select {
		case p.jobs <- job:
			return nil
		default:
		}
		p.stats.published.Add(^uint64(0))
		p.stats.bufferedBytes.Add(-size)
	}

	if p.cfg.enqueueTimeout > 0 {
		return p.enqueueWait(job, size)
	}
	return p.drop()
}

// enqueueWait waits up to the enqueue timeout for the byte budget and a
// slot in the jobs channel. Close ends the wait with ErrClosed.
func (p *Publisher) enqueueWait(job Push, size int64) error {
	timeout := time.NewTimer(p.cfg.enqueueTimeout)
	defer timeout.Stop()

	// The byte budget has no wake-up signal of its own, so it is polled.
	// This path runs only while the buffer is full.
	for !p.stats.reserve(size, p.cfg.maxBufferedBytes) {
		poll := time.NewTimer(time.Millisecond)
		select {
		case <-poll.C:
		case <-timeout.C:
			return p.drop()
		case <-p.closing:
			poll.Stop()
			return p.rejectClosed()
		}
	}

	p.stats.published.Add(1)
	select {
	case p.jobs <- job:
		return nil
	case <-timeout.C:
	case <-p.closing:
	}
	p.stats.published.Add(^uint64(0))
	p.stats.bufferedBytes.Add(-size)

	select {
	case <-p.closing:
		return p.rejectClosed()
	default:
		return p.drop()
	}
}

func (p *Publisher) rejectClosed() error {
	p.stats.rejected.Add(1)
	return ErrClosed
}

func (p *Publisher) drop() error {
	p.stats.dropped.Add(1)
	p.drops.record(p.cfg.logger)
	return ErrQueueFull
}

func (p *Publisher) invalid(reason string) error {
	p.stats.invalid.Add(1)
	return fmt.Errorf("%w: %s", ErrInvalidMessage, reason)
}

// queueFor returns the queue for a job of appid: base, or for a ROM app,
// base followed by "_" and the app id.
func (p *Publisher) queueFor(base string, appid int64) string {
	if !p.cfg.isROM(appid) {
		return base
	}
	return p.romQueues.name(base, appid)
}

// romQueues caches the per-app queue names, so that a publish for a ROM
// app does not allocate one. Readers load an immutable map without a
// lock, and a new name replaces the map with a copy.
type romQueues struct {
	mu    sync.Mutex
	names atomic.Pointer[map[romQueueKey]string]
}

type romQueueKey struct {
	base  string
	appid int64
}

// maxCachedROMQueues bounds the cache. Names past it are built on every
// publish.
const maxCachedROMQueues = 4096

func (r *romQueues) name(base string, appid int64) string {
	key := romQueueKey{base: base, appid: appid}
	if names := r.names.Load(); names != nil {
		if name, ok := (*names)[key]; ok {
			return name
		}
	}

	name := base + "_" + strconv.FormatInt(appid, 10)

	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.names.Load()
	if old != nil && len(*old) >= maxCachedROMQueues {
		return name
	}
	names := make(map[romQueueKey]string)
	if old != nil {
		for k, v := range *old {
			names[k] = v
		}
	}
	names[key] = name
	r.names.Store(&names)
	return name
}
