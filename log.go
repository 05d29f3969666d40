package push

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
)

// logRepeatInterval is the minimum time between two log lines for the
// same error. Lines in between are counted and the count is logged with
// the next line.
const logRepeatInterval = 5 * time.Second

// logLimiter rate-limits log lines by key. It is safe for concurrent use
// because PushQueue logs from callers' goroutines.
type logLimiter struct {
	mu      sync.Mutex
	entries map[string]*limitEntry
}

type limitEntry struct {
	last       time.Time
	suppressed int
}

// allow reports whether a line with key may be logged at now, and how many
// lines with that key it suppressed since the last one it allowed.
func (l *logLimiter) allow(key string, now time.Time) (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()

	if l.entries == nil {
		l.entries = make(map[string]*limitEntry)
	}
	e, seen := l.entries[key]
	if seen && now.Sub(e.last) < logRepeatInterval {
		e.suppressed++
		return false, 0
	}

	if !seen {
		// Keys carry error texts, which may contain addresses or counts, so
		// forget old keys before the map grows.
		if len(l.entries) >= 64 {
			l.prune(now)
		}
		e = &limitEntry{}
		l.entries[key] = e
	}
	suppressed = e.suppressed
	e.last, e.suppressed = now, 0
	return true, suppressed
}

func (l *logLimiter) prune(now time.Time) {
	for key, e := range l.entries {
		if now.Sub(e.last) >= logRepeatInterval {
			delete(l.entries, key)
		}
	}
}

// logResult logs one line for a transaction: at Debug level when every
// job was written, otherwise a warning when all failed jobs will be
// retried and an error when some failed for good.
func (p *Publisher) logResult(result *txResult, attempt int) {
	var failedJobs, commands int
	var first *WriteError
	var queues []string
	permanent := false
	for i, err := range result.errs {
		if err == nil {
			continue
		}
		cmd := result.commands[i]
		failedJobs += cmd.hi - cmd.lo
		commands++
		if first == nil {
			first = err
		}
		if !slices.Contains(queues, cmd.queue) {
			queues = append(queues, cmd.queue)
		}
		if !err.Temporary {
			permanent = true
		}
	}

	if first == nil {
		p.cfg.logger.WithFields(logrus.Fields{
			"jobs":     len(result.jobs),
			"commands": len(result.commands),
			"attempt":  attempt,
			"duration": result.duration,
		}).Debug("push: wrote batch")
		return
	}

	ok, suppressed := p.limiter.allow(repeatKey(first), time.Now())
	if !ok {
		return
	}
	entry := p.cfg.logger.WithFields(logrus.Fields{
		"queue":    strings.Join(queues, ","),
		"jobs":     failedJobs,
		"commands": commands,
		"attempt":  attempt,
		"duration": result.duration,
		"reason":   first.Reason,
		"error":    first.Error(),
	})
	if suppressed > 0 {
		entry = entry.WithField("suppressed", suppressed)
	}
	if result.ambiguous {
		entry = entry.WithField("ambiguous", true)
	}
	if permanent {
		entry.Error("push: Redis write failed")
	} else {
		entry.Warn("push: Redis write failed, will retry")
	}
}

// logGiveUp logs jobs that the batcher stops trying to write.
func (p *Publisher) logGiveUp(err *WriteError) {
	ok, suppressed := p.limiter.allow("give up "+repeatKey(err), time.Now())
	if !ok {
		return
	}
	entry := p.cfg.logger.WithFields(logrus.Fields{
		"queue":    err.Queue,
		"jobs":     err.Jobs,
		"attempts": err.Attempts,
		"reason":   err.Reason,
		"error":    err.Error(),
	})
	if suppressed > 0 {
		entry = entry.WithField("suppressed", suppressed)
	}
	entry.Error("push: gave up on jobs")
}

// repeatKey returns the key by which repeats of err are rate-limited. Error
// texts of I/O errors carry local ports and job counts. The queues of a
// whole transaction change from batch to batch. So a repeat is recognised
// by the command and the reason, and by the queue only for one RPUSH.
func repeatKey(err *WriteError) string {
	if err.Command == "RPUSH" {
		return "RPUSH " + err.Queue + " " + err.Reason
	}
	return err.Command + " " + err.Reason
}

// outage tracks a run of transactions that hit transient errors, so that
// the recovery is logged once.
type outage struct {
	since    time.Time
	attempts int
}

func (o *outage) begin() {
	if o.attempts == 0 {
		o.since = time.Now()
	}
	o.attempts++
}

func (o *outage) end(logger logrus.FieldLogger) {
	if o.attempts == 0 {
		return
	}
	logger.WithFields(logrus.Fields{
		"duration":        time.Since(o.since),
		"failed_attempts": o.attempts,
	}).Info("push: Redis writes recovered")
	*o = outage{}
}

// dropReporter counts jobs rejected with ErrQueueFull and logs a warning
// at most once a second with the number dropped since the last warning,
// plus one last warning for the rest when the batcher exits.
type dropReporter struct {
	sinceWarning atomic.Uint64
	lastWarning  atomic.Int64 // Unix nanoseconds
}

func (d *dropReporter) record(logger logrus.FieldLogger) {
	d.sinceWarning.Add(1)

	now := time.Now().UnixNano()
	last := d.lastWarning.Load()
	if now-last < int64(time.Second) || !d.lastWarning.CompareAndSwap(last, now) {
		return
	}
	d.warn(logger)
}

// flush logs the drops not yet reported, when the batcher exits.
func (d *dropReporter) flush(logger logrus.FieldLogger) {
	d.warn(logger)
}

func (d *dropReporter) warn(logger logrus.FieldLogger) {
	n := d.sinceWarning.Swap(0)
	if n == 0 {
		return
	}
	logger.WithField("dropped", n).Warn("push: buffer full, jobs dropped")
}
