// Package push hands offline push notifications from an instant-messaging
// server to a push service through Redis lists.
//
// When the receiver of a message is offline, the server's message handler
// calls one of the Publish helpers of a [Publisher]. The helper encodes a
// small JSON job and hands it to a buffered channel without blocking and
// without touching Redis. One background goroutine, the batcher, drains the
// channel and appends the jobs to Redis lists in MULTI / RPUSH / EXEC
// transactions. A separate push service pops those lists and sends the
// APNs, FCM and vendor notifications.
//
// # Usage
//
//	pool := &redis.Pool{
//		Dial: func() (redis.Conn, error) {
//			return redis.Dial("tcp", "127.0.0.1:6379",
//				redis.DialReadTimeout(5*time.Second),
//				redis.DialWriteTimeout(5*time.Second))
//		},
//		MaxIdle: 4,
//	}
//	publisher, err := push.NewPublisher(pool)
//	if err != nil {
//		return err
//	}
//	defer publisher.Close(shutdownCtx)
//
//	err = publisher.PublishPeerMessage(appid, &push.PeerMessage{
//		Sender: 1001, Receiver: 1002, Content: `{"text":"hi"}`,
//	})
//
// # Queues and payloads
//
// Each helper writes to a fixed list: [PeerQueue], [GroupQueue],
// [CustomerQueue], [CustomerQueueV2] and [SystemQueue]. Peer, group and
// customer V2 jobs of an app for which the WithROMApps function returns
// true go to the per-app list instead, named by appending "_" and the app
// id, for example "push_queue_7". Each list entry is one JSON object, with
// the bytes that encoding/json produces for a map of the same keys: keys
// sorted, no spaces, "<", ">", "&", U+2028 and U+2029 escaped, and invalid
// UTF-8 replaced by U+FFFD. The payload types, such as [PeerPayload],
// decode those objects.
//
// # Batching
//
// The batcher closes a batch when it holds the batch size (1000 jobs by
// default) or when adding the next job would pass the batch byte limit. It
// also closes it when the flush interval (500ms by default) has passed
// since the batch's first job arrived, and when Close runs. Within a batch, jobs are grouped by
// queue, keeping each queue's order, and each queue gets one variadic RPUSH.
// A flush interval of zero selects latency mode: the batcher writes as soon
// as it has drained the channel, and the next batch fills while a
// transaction is in flight.
//
// Under load, when a full batch is already waiting (any job in latency
// mode) and Redis is healthy, the batcher pipelines: it sends the next
// transaction on the same connection before reading the previous one's
// replies, with at most two in flight. Redis runs them in the order sent,
// so each queue keeps its order, except that jobs retried after a
// transient error land after the jobs of a transaction that was already
// in flight.
//
// # Delivery
//
// For every job that PushChan or a Publish helper accepted (returned nil),
// exactly one of these happens, and [Stats] shows which: the job is written
// to Redis (Written), or it is handed to the error handler and counted as
// Failed with a reason. After Close returns, no job is pending.
//
// Connection errors, timeouts, an exhausted pool and the replies LOADING,
// READONLY, MASTERDOWN, NOREPLICAS, TRYAGAIN, BUSY, CLUSTERDOWN, OOM and
// MISCONF are transient: the jobs they hit are retried with exponential
// backoff until the batch's retry timeout is spent. Other error replies,
// such as WRONGTYPE, fail the jobs of the command they hit at once. EXEC
// runs every queued command and rolls nothing back, so jobs of commands
// that succeeded are counted as written and never sent again.
//
// Delivery is at-least-once in one case only: when the connection breaks
// after EXEC was sent, the library cannot know whether Redis applied the
// transaction. It sends those jobs again and counts them in
// Stats.Ambiguous, so a job may then be in Redis twice. For the same
// reason, a job given up after such an attempt may be in Redis although
// it is counted as Failed, and so may a job failed because Redis sent a
// reply that cannot be mapped to the jobs (reason "protocol"). The
// WriteError of such jobs has OutcomeUnknown set.
//
// # Concurrency
//
// A Publisher is safe for concurrent use. PushChan and the Publish helpers
// never wait for Redis and never take a connection. They return
// [ErrQueueFull] when the buffer is full, unless WithEnqueueTimeout lets
// them wait for room.
//
// # Shutdown
//
// Close stops accepting jobs, flushes every accepted job, and waits for the
// batcher to exit. When its context ends first, the jobs still unwritten
// are failed with the reason "closed" and Close reports how many.
//
// # Errors
//
// Input errors wrap [ErrInvalidMessage] and payloads over the size limit
// return [ErrPayloadTooLarge]. Jobs that could not be written reach the
// error handler with a [*WriteError] that names the command, the queue and
// the reason.
//
// # Logging
//
// The library logs only what it cannot return: failed and retried
// transactions, slow writes, recovery after an outage, and dropped jobs,
// through a logrus.FieldLogger with fields. Repeats of the same error are
// rate-limited, and successful writes log at Debug level.
package push

import (
	"context"
	"errors"
	"fmt"

	"github.com/gomodule/redigo/redis"
)

// Queue names read by the push service.
const (
	PeerQueue       = "push_queue"
	GroupQueue      = "group_push_queue"
	CustomerQueue   = "customer_push_queue"
	CustomerQueueV2 = "customer_push_queue_v2"
	SystemQueue     = "system_push_queue"
)

// Push is one job: a JSON payload to append to a Redis list.
type Push struct {
	Queue   string
	Payload []byte
}

// Pool hands out Redis connections. A *redis.Pool satisfies it.
//
// The Publisher closes every connection it gets. After an error, it makes
// a redigo connection unusable before closing it, so that the pool discards
// it and the next attempt dials a fresh one.
type Pool interface {
	GetContext(ctx context.Context) (redis.Conn, error)
}

var (
	// ErrClosed is returned by PushChan and the Publish helpers after Close
	// has started.
	ErrClosed = errors.New("push: publisher closed")

	// ErrQueueFull is returned by PushChan and the Publish helpers when the
	// buffer holds its maximum number of jobs or payload bytes. The job is
	// dropped and counted in Stats.Dropped.
	ErrQueueFull = errors.New("push: buffer full")

	// ErrInvalidMessage is wrapped by the errors that PushChan, PushQueue and
	// the Publish helpers return for bad input. Nothing is enqueued.
	ErrInvalidMessage = errors.New("push: invalid message")

	// ErrPayloadTooLarge is returned for a payload over the limit set by
	// WithMaxPayloadBytes. It wraps ErrInvalidMessage.
	ErrPayloadTooLarge = fmt.Errorf("%w: payload too large", ErrInvalidMessage)

	// ErrInvalidOption is wrapped by the errors NewPublisher returns for
	// option values out of range.
	ErrInvalidOption = errors.New("push: invalid option")
)
