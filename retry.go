package push

import (
	"context"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/sirupsen/logrus"
)

// retryState is the batcher's scratch space for jobs to send again.
type retryState struct {
	jobs   []Push
	ranges []failedRange // the last error of each run of jobs
	// ambiguous counts the jobs whose last transaction had an unknown
	// outcome. They are counted in Stats.Ambiguous when sent again.
	ambiguous int
	// outcomeUnknown is set once a transaction of the batch had an unknown
	// outcome, and marks every job still to retry as possibly written. For
	// one batch that is exact, because its retry set only shrinks. When a
	// pipeline merged the failures of two transactions, it may also mark
	// jobs of the one whose outcome was known.
	outcomeUnknown bool

	timer  *time.Timer // reused for every backoff wait
	outage outage
}

// failedRange is a run of retryState.jobs that failed with one error.
type failedRange struct {
	lo, hi int
	err    *WriteError
}

func newRetryState() retryState {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	return retryState{timer: timer}
}

// reset prepares rs for a new batch.
func (rs *retryState) reset() {
	rs.clearPending()
	rs.outcomeUnknown = false
}

// clearPending empties the set of jobs to retry before an attempt refills
// it. The backing array is kept.
func (rs *retryState) clearPending() {
	rs.jobs = rs.jobs[:0]
	rs.ranges = rs.ranges[:0]
	rs.ambiguous = 0
}

// deliver writes jobs to Redis, retrying the jobs that hit transient
// errors with backoff until the retry timeout, counted from the first
// attempt. Every job ends up written or handed to fail. When Close's
// context ends, the remaining jobs fail at once with ReasonClosed.
func (p *Publisher) deliver(jobs []Push, tx *txBuffers, rs *retryState) {
	deadline := time.Now().Add(p.cfg.retryTimeout)
	rs.reset()
	if p.abort.Err() != nil {
		p.failClosed(jobs, 0, rs)
		return
	}

	p.attempt(jobs, tx, rs, 1)
	p.retry(tx, rs, deadline, 1)
}

// attempt sends jobs in one transaction and settles the result into rs.
func (p *Publisher) attempt(jobs []Push, tx *txBuffers, rs *retryState, attempt int) {
	// Getting a connection ends when Close's context ends, but a
	// transaction already sent is awaited, within the write timeout, so
	// its outcome is known.
	result := p.transact(p.abort, context.Background(), jobs, tx)
	p.logResult(&result, attempt)
	p.settle(&result, rs)
	tx.release()
}

// retry sends the jobs left in rs again, with backoff, until they are
// written or failed, the deadline passes, or Close's context ends.
// attempts is the number of attempts already made.
func (p *Publisher) retry(tx *txBuffers, rs *retryState, deadline time.Time, attempts int) {
	for len(rs.jobs) > 0 {
		rs.outage.begin()

		remaining := time.Until(deadline)
		if remaining <= 0 {
			p.giveUp(rs, attempts)
			return
		}
		if !rs.sleep(min(p.backoff(attempts), remaining), p.abort.Done()) || p.abort.Err() != nil {
			p.failClosed(rs.jobs, attempts, rs)
			return
		}

		attempts++
		p.stats.retries.Add(1)
		p.stats.ambiguous.Add(uint64(rs.ambiguous))

		// The transaction copies the jobs before settle refills rs.jobs.
		jobs := rs.jobs
		rs.clearPending()
		p.attempt(jobs, tx, rs, attempts)
	}
	rs.outage.end(p.cfg.logger)
}

// settle counts the written jobs of result, fails the jobs of commands
// with permanent errors, and adds the jobs to retry to rs.
func (p *Publisher) settle(result *txResult, rs *retryState) {
	if result.ambiguous {
		rs.outcomeUnknown = true
	}

	for i, cmd := range result.commands {
		jobs := result.jobs[cmd.lo:cmd.hi]
		err := result.errs[i]
		switch {
		case err == nil:
			p.stats.release(jobs)
			p.stats.written.Add(uint64(len(jobs)))
		case err.Temporary:
			lo := len(rs.jobs)
			rs.jobs = append(rs.jobs, jobs...)
			rs.ranges = append(rs.ranges, failedRange{lo: lo, hi: len(rs.jobs), err: err})
			if result.ambiguous {
				rs.ambiguous += len(jobs)
			}
		default:
			p.fail(jobs, err)
		}
	}
}

// giveUp fails the jobs left in rs after the retry timeout, each run with
// its last error.
func (p *Publisher) giveUp(rs *retryState, attempts int) {
	for _, r := range rs.ranges {
		err := *r.err
		err.Attempts = attempts
		err.OutcomeUnknown = err.OutcomeUnknown || rs.outcomeUnknown
		p.logGiveUp(&err)
		p.fail(rs.jobs[r.lo:r.hi], &err)
	}
}

// failClosed fails jobs that Close's context left no time to write.
func (p *Publisher) failClosed(jobs []Push, attempts int, rs *retryState) {
	err := &WriteError{
		Queue:          queueList(jobs),
		Jobs:           len(jobs),
		Reason:         ReasonClosed,
		Attempts:       attempts,
		OutcomeUnknown: attempts > 0 && rs.outcomeUnknown,
		Err:            context.Cause(p.abort),
	}
	p.logGiveUp(err)
	p.fail(jobs, err)
}

// fail counts jobs as failed and hands a copy of them to the error
// handler.
func (p *Publisher) fail(jobs []Push, err *WriteError) {
	p.stats.release(jobs)
	p.stats.addFailed(len(jobs), err.Reason)
	if p.cfg.errorHandler != nil {
		p.callErrorHandler(slices.Clone(jobs), err)
	}
}

func (p *Publisher) callErrorHandler(jobs []Push, err error) {
	defer func() {
		if r := recover(); r != nil {
			p.cfg.logger.WithFields(logrus.Fields{
				"jobs":  len(jobs),
				"panic": r,
			}).Error("push: error handler panicked")
		}
	}()
	p.cfg.errorHandler(jobs, err)
}

// backoff returns the wait before the retry that follows attempt: the
// minimum doubled for each earlier attempt, capped at the maximum, and
// drawn at random from its upper half so that publishers restarted
// together do not retry in step.
func (p *Publisher) backoff(attempt int) time.Duration {
	wait := p.cfg.retryBackoffMax
	if shift := attempt - 1; shift < 32 {
		if d := p.cfg.retryBackoffMin << shift; d > 0 && d < wait {
			wait = d
		}
	}
	half := wait / 2
	return half + rand.N(wait-half+1)
}

// sleep waits for d and reports whether it did, or returns false as soon
// as stop is closed.
func (rs *retryState) sleep(d time.Duration, stop <-chan struct{}) bool {
	rs.timer.Reset(d)
	defer rs.timer.Stop()
	select {
	case <-rs.timer.C:
		return true
	case <-stop:
		return false
	}
}

// queueList returns the distinct queues of jobs, sorted and separated by
// commas.
func queueList(jobs []Push) string {
	var queues []string
	for i := range jobs {
		if !slices.Contains(queues, jobs[i].Queue) {
			queues = append(queues, jobs[i].Queue)
		}
	}
	return sortedList(queues)
}
