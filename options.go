package push

import (
	"fmt"
	"time"

	"github.com/sirupsen/logrus"
)

// Defaults of the options.
const (
	DefaultBatchSize          = 1000
	DefaultFlushInterval      = 500 * time.Millisecond
	DefaultBufferSize         = 10000
	DefaultSlowWriteThreshold = 300 * time.Millisecond
	DefaultWriteTimeout       = 5 * time.Second
	DefaultRetryTimeout       = 30 * time.Second
	DefaultRetryBackoffMin    = 50 * time.Millisecond
	DefaultRetryBackoffMax    = 2 * time.Second
	DefaultMaxBufferedBytes   = 64 << 20
	DefaultMaxPayloadBytes    = 512 << 10
	DefaultMaxBatchBytes      = 8 << 20
)

// config is the Publisher's settings after the options were applied.
type config struct {
	batchSize          int
	flushInterval      time.Duration
	bufferSize         int
	slowWriteThreshold time.Duration
	writeTimeout       time.Duration
	retryTimeout       time.Duration
	retryBackoffMin    time.Duration
	retryBackoffMax    time.Duration
	maxBufferedBytes   int64
	maxPayloadBytes    int
	maxBatchBytes      int
	enqueueTimeout     time.Duration
	logger             logrus.FieldLogger
	isROM              func(appid int64) bool
	errorHandler       func(failed []Push, err error)
}

func defaultConfig() config {
	return config{
		batchSize:          DefaultBatchSize,
		flushInterval:      DefaultFlushInterval,
		bufferSize:         DefaultBufferSize,
		slowWriteThreshold: DefaultSlowWriteThreshold,
		writeTimeout:       DefaultWriteTimeout,
		retryTimeout:       DefaultRetryTimeout,
		retryBackoffMin:    DefaultRetryBackoffMin,
		retryBackoffMax:    DefaultRetryBackoffMax,
		maxBufferedBytes:   DefaultMaxBufferedBytes,
		maxPayloadBytes:    DefaultMaxPayloadBytes,
		maxBatchBytes:      DefaultMaxBatchBytes,
		logger:             logrus.StandardLogger(),
		isROM:              func(int64) bool { return false },
	}
}

// validate checks the limits that depend on each other.
func (c *config) validate() error {
	if int64(c.maxPayloadBytes) > c.maxBufferedBytes {
		return fmt.Errorf("%w: WithMaxPayloadBytes(%d) is larger than WithMaxBufferedBytes(%d), so such a payload could never be buffered",
			ErrInvalidOption, c.maxPayloadBytes, c.maxBufferedBytes)
	}
	if c.maxPayloadBytes > c.maxBatchBytes {
		return fmt.Errorf("%w: WithMaxPayloadBytes(%d) is larger than WithMaxBatchBytes(%d), so such a payload could never be written",
			ErrInvalidOption, c.maxPayloadBytes, c.maxBatchBytes)
	}
	return nil
}

// An Option configures a Publisher. NewPublisher applies options in order,
// so a later option overrides an earlier one of the same kind.
type Option interface {
	apply(*config) error
}

type optionFunc func(*config) error

func (f optionFunc) apply(c *config) error { return f(c) }

func invalidOption(name string, value any, rule string) error {
	return fmt.Errorf("%w: %s(%v): %s", ErrInvalidOption, name, value, rule)
}

// WithBatchSize sets the maximum number of jobs in one transaction. The
// default is DefaultBatchSize (1000). n must be at least 1.
func WithBatchSize(n int) Option {
	return optionFunc(func(c *config) error {
		if n < 1 {
			return invalidOption("WithBatchSize", n, "must be at least 1")
		}
		c.batchSize = n
		return nil
	})
}

// WithFlushInterval sets the maximum time a job waits in an unfinished
// batch, counted from the arrival of the batch's first job. The default is
// DefaultFlushInterval (500ms).
//
// Zero selects latency mode: the batcher writes as soon as it has drained
// the channel, and the next batch fills while a transaction is in flight.
// A lone job then reaches Redis after one round trip, and heavy load still
// forms full batches. Choose it when push latency matters more than the
// number of transactions Redis serves. d must not be negative.
func WithFlushInterval(d time.Duration) Option {
	return optionFunc(func(c *config) error {
		if d < 0 {
			return invalidOption("WithFlushInterval", d, "must not be negative")
		}
		c.flushInterval = d
		return nil
	})
}

// WithBufferSize sets the capacity of the channel between the Publish
// helpers and the batcher, in jobs. The default is DefaultBufferSize
// (10000). n must be at least 1.
func WithBufferSize(n int) Option {
	return optionFunc(func(c *config) error {
		if n < 1 {
			return invalidOption("WithBufferSize", n, "must be at least 1")
		}
		c.bufferSize = n
		return nil
	})
}

// WithSlowWriteThreshold sets the transaction duration above which the
// batcher logs a warning and counts Stats.SlowWrites. The default is
// DefaultSlowWriteThreshold (300ms). Zero turns the warning off, and d must
// not be negative.
func WithSlowWriteThreshold(d time.Duration) Option {
	return optionFunc(func(c *config) error {
		if d < 0 {
			return invalidOption("WithSlowWriteThreshold", d, "must not be negative")
		}
		c.slowWriteThreshold = d
		return nil
	})
}

// WithWriteTimeout sets the maximum duration of one write attempt: getting
// a connection from the pool, then sending the transaction and reading its
// reply. The default is DefaultWriteTimeout (5s). d must be positive.
//
// Commands are written to the socket before the reply is awaited, and a
// write that blocks there is bounded only by the connection's own write
// timeout, so dial with redis.DialWriteTimeout.
func WithWriteTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) error {
		if d <= 0 {
			return invalidOption("WithWriteTimeout", d, "must be positive")
		}
		c.writeTimeout = d
		return nil
	})
}

// WithRetryTimeout sets how long the batcher retries the jobs of a batch
// that hit transient errors, counted from the batch's first attempt. The
// default is DefaultRetryTimeout (30s). Zero means one attempt and no
// retry, and d must not be negative.
func WithRetryTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) error {
		if d < 0 {
			return invalidOption("WithRetryTimeout", d, "must not be negative")
		}
		c.retryTimeout = d
		return nil
	})
}

// WithRetryBackoff sets the wait before the first retry and the maximum
// wait between retries. The wait doubles after each attempt, and each wait
// is drawn at random from its upper half. The defaults are
// DefaultRetryBackoffMin (50ms) and DefaultRetryBackoffMax (2s). min must
// be positive and max at least min.
func WithRetryBackoff(min, max time.Duration) Option {
	return optionFunc(func(c *config) error {
		args := min.String() + ", " + max.String()
		if min <= 0 {
			return invalidOption("WithRetryBackoff", args, "the minimum must be positive")
		}
		if max < min {
			return invalidOption("WithRetryBackoff", args, "the maximum must be at least the minimum")
		}
		c.retryBackoffMin = min
		c.retryBackoffMax = max
		return nil
	})
}

// WithMaxBufferedBytes sets the maximum total size of the payloads that
// were accepted and are not yet written or failed. Past it, PushChan
// returns ErrQueueFull. The default is DefaultMaxBufferedBytes (64 MiB).
// n must be positive.
func WithMaxBufferedBytes(n int64) Option {
	return optionFunc(func(c *config) error {
		if n <= 0 {
			return invalidOption("WithMaxBufferedBytes", n, "must be positive")
		}
		c.maxBufferedBytes = n
		return nil
	})
}

// WithMaxPayloadBytes sets the maximum size of one payload. A larger one
// is rejected with ErrPayloadTooLarge. The default is
// DefaultMaxPayloadBytes (512 KiB). n must be positive and not larger than
// the buffered-bytes or batch-bytes limit.
//
// NOTE: keep n below the server's proto-max-bulk-len (512 MB by default in
// Redis 7). A larger payload makes Redis close the connection in the
// middle of the transaction, so the whole batch fails with an unknown
// outcome and is retried until the retry timeout.
func WithMaxPayloadBytes(n int) Option {
	return optionFunc(func(c *config) error {
		if n <= 0 {
			return invalidOption("WithMaxPayloadBytes", n, "must be positive")
		}
		c.maxPayloadBytes = n
		return nil
	})
}

// WithMaxBatchBytes sets the maximum total payload size of one
// transaction. A batch closes early when adding the next job would pass
// it, which keeps each transaction well below Redis's request size limits.
// The default is DefaultMaxBatchBytes (8 MiB). n must be positive.
func WithMaxBatchBytes(n int) Option {
	return optionFunc(func(c *config) error {
		if n <= 0 {
			return invalidOption("WithMaxBatchBytes", n, "must be positive")
		}
		c.maxBatchBytes = n
		return nil
	})
}

// WithEnqueueTimeout makes PushChan and the Publish helpers wait up to d
// for room in the buffer before they return ErrQueueFull. The default, 0,
// never waits. Close ends every wait at once with ErrClosed. d must not be
// negative.
func WithEnqueueTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) error {
		if d < 0 {
			return invalidOption("WithEnqueueTimeout", d, "must not be negative")
		}
		c.enqueueTimeout = d
		return nil
	})
}

// WithLogger sets the logger for background failures, slow writes and
// drops. The default is logrus.StandardLogger(). A nil logger discards
// every line.
func WithLogger(l logrus.FieldLogger) Option {
	return optionFunc(func(c *config) error {
		if l == nil {
			discard := logrus.New()
			discard.Out = nopWriter{}
			discard.Level = logrus.PanicLevel
			l = discard
		}
		c.logger = l
		return nil
	})
}

// WithROMApps sets the function that IsROMApp reports. Peer, group and
// customer V2 jobs of such an app go to per-app queues, for example
// "push_queue_7". The function is called on every peer, group and
// customer V2 publish, from the caller's goroutine, so it must be fast and
// safe for concurrent use. The
// default, also chosen by nil, treats no app as a ROM app.
func WithROMApps(isROM func(appid int64) bool) Option {
	return optionFunc(func(c *config) error {
		if isROM == nil {
			isROM = func(int64) bool { return false }
		}
		c.isROM = isROM
		return nil
	})
}

// WithErrorHandler sets a function that receives the jobs the batcher gave
// up on, and why, as a *WriteError. That includes jobs that Close could not
// write before its context ended.
//
// The batcher goroutine calls it, so it must not block, and the next batch
// waits until it returns. It must not call Close, which waits for every
// call. A panic in it is recovered and logged. The handler owns the failed slice. The default,
// also chosen by nil, only logs and counts the failures.
func WithErrorHandler(handle func(failed []Push, err error)) Option {
	return optionFunc(func(c *config) error {
		c.errorHandler = handle
		return nil
	})
}

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }
