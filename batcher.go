package push

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/sirupsen/logrus"
)

// rpushMaxJobs is the maximum number of jobs in one RPUSH. A queue with
// more jobs in a batch gets several RPUSH commands in the same
// transaction, so no single command grows without bound.
const rpushMaxJobs = 4096

// batcher is the state of the goroutine that drains the jobs channel.
// Only that goroutine touches it.
type batcher struct {
	p     *Publisher
	timer *time.Timer // reused for every batch's flush interval

	carry    Push // a job that did not fit in the previous batch
	hasCarry bool

	// Two of each, so that a pipeline can collect and send one batch while
	// the transaction of the other is in flight.
	batches [2]batch
	txs     [2]txBuffers
	flights [2]inFlight

	retry retryState
}

// batch is a set of jobs collected for one transaction.
type batch struct {
	jobs  []Push
	bytes int
}

func (bt *batch) add(job Push) {
	bt.jobs = append(bt.jobs, job)
	bt.bytes += len(job.Payload)
}

// reset empties the batch and drops its references to the payloads.
func (bt *batch) reset() {
	clear(bt.jobs)
	bt.jobs = bt.jobs[:0]
	bt.bytes = 0
}

func newBatcher(p *Publisher) *batcher {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	b := &batcher{
		p:     p,
		timer: timer,
		retry: newRetryState(),
	}
	for i := range b.batches {
		b.batches[i].jobs = make([]Push, 0, p.cfg.batchSize)
		b.txs[i] = newTxBuffers()
	}
	return b
}

// run collects batches and writes them until Close has closed the jobs
// channel and every job is written or failed. It closes p.done on return.
func (b *batcher) run() {
	defer close(b.p.done)

	first := &b.batches[0]
	for {
		open := b.collect(first)
		if len(first.jobs) > 0 {
			if b.backlog() {
				b.pipeline()
			} else {
				b.p.deliver(first.jobs, &b.txs[0], &b.retry)
			}
			first.reset()
		}
		if !open {
			break
		}
	}

	b.p.drops.flush(b.p.cfg.logger)
}

// collect fills bt and reports whether the jobs channel is still open. It
// returns when the batch is full, when the next job would pass the batch
// byte limit, when the flush interval has passed since the batch's first
// job, or, in latency mode, when the channel is empty.
func (b *batcher) collect(bt *batch) (open bool) {
	if b.hasCarry {
		bt.add(b.carry)
		b.carry, b.hasCarry = Push{}, false
	} else {
		job, ok := <-b.p.jobs
		if !ok {
			return false
		}
		bt.add(job)
	}

	interval := b.p.cfg.flushInterval
	if interval > 0 {
		b.timer.Reset(interval)
		defer b.timer.Stop()
	}

	for len(bt.jobs) < b.p.cfg.batchSize {
		// A receive that cannot block costs far less than a select with the
		// timer, so the timer is consulted only when the channel is empty.
		var job Push
		var ok bool
		select {
		case job, ok = <-b.p.jobs:
		default:
			if interval == 0 {
				return true
			}
			select {
			case job, ok = <-b.p.jobs:
			case <-b.timer.C:
				return true
			}
		}
		if !ok {
			return false
		}

		if !b.fits(bt, job) {
			return true
		}
		bt.add(job)
	}
	return true
}

// collectWaiting fills bt with the jobs already in the channel, without
// waiting for more.
func (b *batcher) collectWaiting(bt *batch) {
	if b.hasCarry {
		bt.add(b.carry)
		b.carry, b.hasCarry = Push{}, false
	}
	for len(bt.jobs) < b.p.cfg.batchSize {
		select {
		case job, ok := <-b.p.jobs:
			if !ok || !b.fits(bt, job) {
				return
			}
			bt.add(job)
		default:
			return
		}
	}
}

// fits reports whether job fits in bt under the batch byte limit. A job
// that does not is kept for the next batch.
func (b *batcher) fits(bt *batch, job Push) bool {
	if len(bt.jobs) == 0 || bt.bytes+len(job.Payload) <= b.p.cfg.maxBatchBytes {
		return true
	}
	b.carry, b.hasCarry = job, true
	return false
}

// command is one RPUSH of a transaction. Its jobs are grouped[lo:hi] of
// the txBuffers that built it, all for the same queue.
type command struct {
	queue  string
	lo, hi int
}

// txBuffers is the scratch space for building and reading one
// transaction. The batcher keeps two, one for each transaction a pipeline
// can have in flight, and reuses them for every batch.
type txBuffers struct {
	groupOf  map[string]int // queue → group index
	queues   []string       // queue of each group
	sizes    []int          // jobs in each group, then the next free slot
	groupIdx []int          // group index of each job

	grouped  []Push // the jobs, grouped by queue in their original order
	commands []command
	args     []any // arguments of one RPUSH
}

func newTxBuffers() txBuffers {
	return txBuffers{groupOf: make(map[string]int)}
}

// group orders jobs by queue, keeping each queue's order, into t.grouped
// and splits each queue's jobs into RPUSH commands.
func (t *txBuffers) group(jobs []Push) {
	clear(t.groupOf)
	t.queues = t.queues[:0]
	t.sizes = t.sizes[:0]
	t.groupIdx = t.groupIdx[:0]

	// Count the jobs of each queue. Consecutive jobs often share a queue,
	// which skips the map.
	lastQueue, lastGroup := "", -1
	for i := range jobs {
		queue := jobs[i].Queue
		if lastGroup < 0 || queue != lastQueue {
			g, ok := t.groupOf[queue]
			if !ok {
				g = len(t.queues)
				t.groupOf[queue] = g
				t.queues = append(t.queues, queue)
				t.sizes = append(t.sizes, 0)
			}
			lastQueue, lastGroup = queue, g
		}
		t.sizes[lastGroup]++
		t.groupIdx = append(t.groupIdx, lastGroup)
	}

	// Turn the counts into the start of each group, then place the jobs.
	start := 0
	for g, size := range t.sizes {
		t.sizes[g] = start
		start += size
	}
	t.grouped = append(t.grouped[:0], make([]Push, len(jobs))...)
	for i := range jobs {
		g := t.groupIdx[i]
		t.grouped[t.sizes[g]] = jobs[i]
		t.sizes[g]++
	}

	// After placing, sizes[g] is the end of group g.
	t.commands = t.commands[:0]
	lo := 0
	for g, queue := range t.queues {
		end := t.sizes[g]
		for ; lo < end; lo += rpushMaxJobs {
			t.commands = append(t.commands, command{queue: queue, lo: lo, hi: min(lo+rpushMaxJobs, end)})
		}
		lo = end
	}
}

// queueList returns the queues of the last grouped batch, sorted and
// separated by commas, for errors of a whole transaction.
func (t *txBuffers) queueList() string {
	return sortedList(slices.Clone(t.queues))
}

// sortedList sorts queues and joins them with commas, so that the same
// set of queues always reads the same in errors and logs.
func sortedList(queues []string) string {
	slices.Sort(queues)
	return strings.Join(queues, ",")
}

// release drops the references to the jobs of the last transaction.
func (t *txBuffers) release() {
	clear(t.grouped)
	clear(t.args)
}

// txResult is the outcome of one transaction attempt.
type txResult struct {
	jobs     []Push        // grouped by queue
	commands []command     // the RPUSH commands, indexing jobs
	errs     []*WriteError // per command; nil when its jobs were written
	// ambiguous is set when the connection failed after EXEC was sent, so
	// whether Redis applied the transaction is unknown.
	ambiguous bool
	duration  time.Duration
}

func newTxResult(tx *txBuffers) txResult {
	return txResult{
		jobs:     tx.grouped,
		commands: tx.commands,
		errs:     make([]*WriteError, len(tx.commands)),
	}
}

func (r *txResult) failAll(err *WriteError) {
	for i := range r.errs {
		r.errs[i] = err
	}
}

// fail fails every command with err. When the connection failed after
// EXEC may have been sent, the whole result is ambiguous.
func (r *txResult) fail(err *WriteError) {
	r.failAll(err)
	r.ambiguous = err.OutcomeUnknown
}

// ok reports whether every job was written.
func (r *txResult) ok() bool {
	for _, err := range r.errs {
		if err != nil {
			return false
		}
	}
	return true
}

// err joins the distinct errors of the result, or returns nil when every
// job was written.
func (r *txResult) err() error {
	var errs []error
	var last *WriteError
	for _, err := range r.errs {
		if err != nil && err != last {
			errs = append(errs, err)
			last = err
		}
	}
	return errors.Join(errs...)
}

// PushQueue writes batch to Redis in one transaction: MULTI, one RPUSH per
// queue (more for very large groups) with the queue's jobs in order, and
// EXEC, all on one connection. It returns after reading the EXEC reply,
// and it always closes the connection.
//
// PushQueue makes one attempt and does not retry. It returns nil when
// every job was written. Otherwise it returns the *WriteError of each
// failed command, joined with errors.Join. Jobs of the other commands were
// written: EXEC runs every queued command and rolls nothing back. ctx and
// the write timeout bound the attempt.
//
// The batcher writes through the same code. PushQueue may be called
// concurrently with it and after Close, and it does not change the job
// counts in Stats.
func (p *Publisher) PushQueue(ctx context.Context, batch []Push) error {
	for i := range batch {
		if batch[i].Queue == "" {
			return fmt.Errorf("%w: job %d of the batch has an empty queue name", ErrInvalidMessage, i)
		}
	}
	if len(batch) == 0 {
		return nil
	}

	tx := newTxBuffers()
	result := p.transact(ctx, ctx, batch, &tx)
	p.logResult(&result, 1)
	return result.err()
}

// transact sends jobs as one MULTI/EXEC transaction and maps the reply to
// the jobs. getCtx bounds getting the connection, and execCtx bounds the
// rest. Both are further bounded by the write timeout.
func (p *Publisher) transact(getCtx, execCtx context.Context, jobs []Push, tx *txBuffers) (result txResult) {
	start := time.Now()
	tx.group(jobs)
	result = newTxResult(tx)
	defer func() { result.duration = time.Since(start) }()

	// One deadline bounds the whole attempt.
	deadline := start.Add(p.cfg.writeTimeout)
	conn, err := p.getConn(getCtx, deadline)
	if err != nil {
		result.failAll(newWriteError("GET", tx.queueList(), len(jobs), err))
		return result
	}
	defer func() { closeConn(conn, !result.ok()) }()
	p.stats.batches.Add(1)

	if werr := p.sendTransaction(conn, tx, false); werr != nil {
		result.fail(werr)
		return result
	}

	execCtx, cancelExec := context.WithDeadline(execCtx, deadline)
	defer cancelExec()
	replies, err := flushAndReceive(execCtx, conn)
	if err != nil {
		result.fail(execError(tx, err))
		return result
	}

	p.readReplies(replies, tx, &result)
	p.checkSlow(len(jobs), time.Since(start))
	return result
}

// getConn gets a connection from the pool, waiting until ctx ends or the
// deadline passes.
func (p *Publisher) getConn(ctx context.Context, deadline time.Time) (redis.Conn, error) {
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	return p.pool.GetContext(ctx)
}

// sendTransaction writes MULTI, the RPUSH commands of tx and EXEC to
// conn's buffer, and with flush set, to the socket.
//
// Until EXEC is sent, Redis discards the queued commands when the
// connection fails, so an error before it leaves nothing applied. An error
// while sending EXEC or flushing leaves the outcome unknown.
func (p *Publisher) sendTransaction(conn redis.Conn, tx *txBuffers, flush bool) *WriteError {
	if err := p.sendCommands(conn, tx); err != nil {
		return newWriteError("MULTI", tx.queueList(), len(tx.grouped), err)
	}
	err := conn.Send("EXEC")
	if err == nil && flush {
		err = conn.Flush()
	}
	if err != nil {
		return execError(tx, err)
	}
	return nil
}

// execError returns the error of a transaction whose EXEC may have reached
// Redis.
func execError(tx *txBuffers, err error) *WriteError {
	werr := newWriteError("EXEC", tx.queueList(), len(tx.grouped), err)
	werr.OutcomeUnknown = true
	return werr
}

// sendCommands buffers MULTI and the RPUSH commands on conn. redigo writes
// to the socket when its buffer fills.
func (p *Publisher) sendCommands(conn redis.Conn, tx *txBuffers) error {
	if err := conn.Send("MULTI"); err != nil {
		return err
	}
	for _, cmd := range tx.commands {
		args := append(tx.args[:0], cmd.queue)
		for i := cmd.lo; i < cmd.hi; i++ {
			args = append(args, tx.grouped[i].Payload)
		}
		tx.args = args
		if err := conn.Send("RPUSH", args...); err != nil {
			return err
		}
	}
	return nil
}

// flushAndReceive writes the buffered commands and reads one reply for
// each, without turning error replies into errors.
func flushAndReceive(ctx context.Context, conn redis.Conn) (any, error) {
	if _, ok := conn.(redis.ConnWithContext); ok {
		return redis.DoContext(conn, ctx, "")
	}
	return conn.Do("")
}

// readReplies maps the replies of MULTI, each RPUSH and EXEC to the
// commands of result.
func (p *Publisher) readReplies(replies any, tx *txBuffers, result *txResult) {
	all, ok := replies.([]any)
	if !ok || len(all) != len(tx.commands)+2 {
		err := fmt.Errorf("%w: got %T with %d elements for %d commands", errMalformedReply, replies, len(all), len(tx.commands)+2)
		result.failAll(newWriteError("EXEC", tx.queueList(), len(result.jobs), err))
		return
	}
	queued := all[1 : len(all)-1]

	if multiErr, failed := all[0].(redis.Error); failed {
		// Without MULTI, Redis ran each RPUSH on its own, so each reply is
		// the command's result.
		for i, reply := range queued {
			result.errs[i] = p.commandError(tx.commands[i], reply, multiErr)
		}
		return
	}

	switch exec := all[len(all)-1].(type) {
	case []any:
		if len(exec) != len(tx.commands) {
			err := fmt.Errorf("%w: EXEC returned %d results for %d commands", errMalformedReply, len(exec), len(tx.commands))
			result.failAll(newWriteError("EXEC", tx.queueList(), len(result.jobs), err))
			return
		}
		for i, reply := range exec {
			result.errs[i] = p.commandError(tx.commands[i], reply, nil)
		}

	case redis.Error:
		// EXECABORT: nothing ran. A command rejected when it was queued
		// fails with its own error, and the others with EXEC's.
		for i, reply := range queued {
			if reply, failed := reply.(redis.Error); failed {
				result.errs[i] = p.commandError(tx.commands[i], reply, nil)
			} else {
				result.errs[i] = newWriteError("EXEC", tx.commands[i].queue, tx.commands[i].hi-tx.commands[i].lo, exec)
			}
		}

	case nil:
		result.failAll(newWriteError("EXEC", tx.queueList(), len(result.jobs), errExecNil))

	default:
		err := fmt.Errorf("%w: EXEC returned %T", errMalformedReply, exec)
		result.failAll(newWriteError("EXEC", tx.queueList(), len(result.jobs), err))
	}
}

// commandError returns the error for one RPUSH reply, or nil when the
// reply is the list's new length. multiErr is the error MULTI returned,
// if any, for context in the message.
func (p *Publisher) commandError(cmd command, reply any, multiErr error) *WriteError {
	jobs := cmd.hi - cmd.lo
	switch reply := reply.(type) {
	case int64:
		return nil
	case redis.Error:
		return newWriteError("RPUSH", cmd.queue, jobs, reply)
	}
	err := fmt.Errorf("%w: RPUSH returned %T", errMalformedReply, reply)
	if multiErr != nil {
		err = fmt.Errorf("%w after MULTI failed with %q", err, multiErr.Error())
	}
	return newWriteError("RPUSH", cmd.queue, jobs, err)
}

// checkSlow counts and logs a transaction slower than the threshold.
func (p *Publisher) checkSlow(jobs int, duration time.Duration) {
	if p.cfg.slowWriteThreshold <= 0 || duration < p.cfg.slowWriteThreshold {
		return
	}
	p.stats.slowWrites.Add(1)
	p.cfg.logger.WithFields(logrus.Fields{
		"jobs":      jobs,
		"duration":  duration,
		"threshold": p.cfg.slowWriteThreshold,
	}).Warn("push: slow Redis write")
}

// closeConn returns conn to its pool. After an error it first makes a
// redigo connection unusable, so that the pool discards it and the next
// attempt dials a fresh one, which may reach a new primary.
func closeConn(conn redis.Conn, failed bool) {
	if failed {
		if _, ok := conn.(redis.ConnWithContext); ok {
			// redigo's DoContext closes the connection when the context's
			// deadline has passed, without sending anything.
			expired, cancel := context.WithDeadline(context.Background(), time.Unix(0, 0))
			_, _ = redis.DoContext(conn, expired, "")
			cancel()
		}
	}
	_ = conn.Close()
}
