package push

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/gomodule/redigo/redis"
)

// Under load, waiting for each transaction's reply before sending the
// next leaves Redis idle while the batcher collects and sends, and the
// batcher idle while Redis executes. The pipeline below overlaps the two
// on one connection: it sends the next batch before it reads the replies
// of the previous one, with at most two transactions in flight. Redis runs
// the transactions of one connection in the order they were sent, so
// each queue keeps its order.

// inFlight is a transaction sent on the pipeline's connection whose
// replies have not been read yet.
type inFlight struct {
	start time.Time
	err   *WriteError // set when sending failed, so there are no replies to read
}

// backlog reports whether enough jobs are waiting to send another batch
// at once, and whether pipelining is safe: no outage is under way and
// Close's context has not ended. In latency mode any waiting job is
// enough. Otherwise a full batch must be waiting, so that pipelining
// never sends a batch earlier than the flush interval would.
func (b *batcher) backlog() bool {
	if b.retry.outage.attempts > 0 || b.p.abort.Err() != nil {
		return false
	}
	if b.hasCarry {
		return true
	}
	waiting := len(b.p.jobs)
	if b.p.cfg.flushInterval == 0 {
		return waiting > 0
	}
	return waiting >= b.p.cfg.batchSize
}

// pipeline writes b.batches[0], then keeps sending the next batch while
// the previous transaction is in flight, as long as the backlog lasts and
// every transaction succeeds. After the first failure it sends nothing
// more, reads the replies in flight, and retries the failed jobs of both
// transactions as deliver does, oldest first.
//
// NOTE: when a transaction fails with a transient error while the next
// one succeeds, the retried jobs land after the next one's jobs of the
// same queue. This is the one case in which a queue's order is not kept.
func (b *batcher) pipeline() {
	p := b.p
	rs := &b.retry
	rs.reset()

	first := &b.batches[0]
	conn, err := p.getConn(p.abort, time.Now().Add(p.cfg.writeTimeout))
	if err != nil {
		p.deliver(first.jobs, &b.txs[0], rs)
		return
	}
	if _, ok := conn.(redis.ConnWithTimeout); !ok {
		// Reading replies one at a time needs a read timeout per reply.
		conn.Close()
		p.deliver(first.jobs, &b.txs[0], rs)
		return
	}

	var retryStart time.Time
	current := 0
	healthy := b.send(conn, current)
	for {
		next := 1 - current
		sentNext := false
		if healthy && b.backlog() {
			b.collectWaiting(&b.batches[next])
			if len(b.batches[next].jobs) > 0 {
				healthy = b.send(conn, next)
				sentNext = true
			}
		}

		hadRetries := len(rs.jobs) > 0
		if !b.finish(conn, current) {
			healthy = false
		}
		if !hadRetries && len(rs.jobs) > 0 {
			retryStart = b.flights[current].start
		}

		if !sentNext {
			break
		}
		current = next
	}

	closeConn(conn, !healthy)
	if len(rs.jobs) > 0 {
		p.retry(&b.txs[0], rs, retryStart.Add(p.cfg.retryTimeout), 1)
	} else {
		rs.outage.end(p.cfg.logger)
	}
}

// send groups batch i and writes its transaction to conn. It reports
// whether the write succeeded. The batch is emptied, because the
// transaction's buffers keep the jobs from here on.
func (b *batcher) send(conn redis.Conn, i int) bool {
	flight := &b.flights[i]
	tx := &b.txs[i]

	flight.start = time.Now()
	tx.group(b.batches[i].jobs)
	b.batches[i].reset()
	b.p.stats.batches.Add(1)
	flight.err = b.p.sendTransaction(conn, tx, true)
	return flight.err == nil
}

// finish reads the replies of transaction i, then counts, fails and
// queues for retry its jobs as settle does. It reports whether every job
// was written.
func (b *batcher) finish(conn redis.Conn, i int) bool {
	p := b.p
	flight := &b.flights[i]
	tx := &b.txs[i]
	result := newTxResult(tx)

	if flight.err != nil {
		result.fail(flight.err)
	} else {
		replies, err := receiveReplies(conn, len(tx.commands)+2, flight.start.Add(p.cfg.writeTimeout))
		if err != nil {
			result.fail(execError(tx, err))
		} else {
			p.readReplies(replies, tx, &result)
			p.checkSlow(len(result.jobs), time.Since(flight.start))
		}
	}
	result.duration = time.Since(flight.start)

	p.logResult(&result, 1)
	p.settle(&result, &b.retry)
	tx.release()
	return result.ok()
}

// receiveReplies reads n replies from conn, each within the time left
// until deadline. An error reply is returned in its place, as flushing
// with Do("") would return it.
func receiveReplies(conn redis.Conn, n int, deadline time.Time) ([]any, error) {
	replies := make([]any, n)
	for i := range replies {
		remaining := time.Until(deadline)
		if remaining <= 0 {
			return nil, fmt.Errorf("reading reply %d of %d: %w", i+1, n, os.ErrDeadlineExceeded)
		}

		reply, err := redis.ReceiveWithTimeout(conn, remaining)
		var replyErr redis.Error
		if errors.As(err, &replyErr) {
			replies[i] = replyErr
			continue
		}
		if err != nil {
			return nil, err
		}
		replies[i] = reply
	}
	return replies, nil
}
