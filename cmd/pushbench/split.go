package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/imkit/push"
)

// splitPool wraps the pool that the Publisher writes through and adds up
// the time the batcher spends in each connection call. Only the batcher
// goroutine takes connections from it, and the totals are read after
// Close has returned, so they need no lock.
//
// The calls split a transaction this way. Send buffers MULTI and each
// RPUSH, and writes to the socket whenever redigo's 4 KiB buffer fills, so
// it holds most of the socket writes. When the batcher waits for each
// transaction's reply, Do("") writes the rest and then waits for the
// replies. When it pipelines, Flush writes the rest, and
// ReceiveWithTimeout waits for each reply of the transaction sent before.
// What is left of the wall time is the batcher's own work outside
// connection calls (collecting the batch, grouping, counting) plus any
// time it waited for jobs.
type splitPool struct {
	pool    *redis.Pool
	get     time.Duration
	send    time.Duration
	flush   time.Duration
	receive time.Duration
	do      time.Duration
	close   time.Duration
}

func (s *splitPool) GetContext(ctx context.Context) (redis.Conn, error) {
	start := time.Now()
	conn, err := s.pool.GetContext(ctx)
	s.get += time.Since(start)
	if err != nil {
		return nil, err
	}
	return &timedConn{conn: conn, split: s}, nil
}

func (s *splitPool) print(elapsed time.Duration, batches uint64) {
	inCalls := s.get + s.send + s.flush + s.receive + s.do + s.close
	share := func(d time.Duration) string {
		return fmt.Sprintf("%v (%.1f%%)", d.Round(time.Millisecond), 100*d.Seconds()/elapsed.Seconds())
	}
	perBatch := func(d time.Duration) time.Duration {
		if batches == 0 {
			return 0
		}
		return (d / time.Duration(batches)).Round(time.Microsecond)
	}
	fmt.Printf("split: of %v wall time, the batcher spent:\n", elapsed.Round(time.Millisecond))
	fmt.Printf("split:   GetContext           %s\n", share(s.get))
	fmt.Printf("split:   Send (MULTI, RPUSH)  %s, %v per transaction\n", share(s.send), perBatch(s.send))
	fmt.Printf("split:   Flush                %s, %v per transaction\n", share(s.flush), perBatch(s.flush))
	fmt.Printf("split:   Receive (wait)       %s, %v per transaction\n", share(s.receive), perBatch(s.receive))
	fmt.Printf("split:   Do (flush, wait)     %s, %v per transaction\n", share(s.do), perBatch(s.do))
	fmt.Printf("split:   Close                %s\n", share(s.close))
	fmt.Printf("split:   outside those calls  %s, %v per transaction\n", share(elapsed-inCalls), perBatch(elapsed-inCalls))
	fmt.Printf("SPLIT get_s=%.3f send_s=%.3f flush_s=%.3f receive_s=%.3f do_s=%.3f close_s=%.3f other_s=%.3f\n",
		s.get.Seconds(), s.send.Seconds(), s.flush.Seconds(), s.receive.Seconds(), s.do.Seconds(), s.close.Seconds(), (elapsed - inCalls).Seconds())
}

// timedConn passes every call to conn and adds the time of Send, Flush,
// the receives, Do and Close to split. It implements
// redis.ConnWithContext and redis.ConnWithTimeout, as the pool's
// connections do, so the Publisher takes the same code paths through it,
// the pipelined one included.
type timedConn struct {
	conn  redis.Conn
	split *splitPool
}

var (
	_ redis.ConnWithContext = (*timedConn)(nil)
	_ redis.ConnWithTimeout = (*timedConn)(nil)
)

func (c *timedConn) Send(cmd string, args ...any) error {
	start := time.Now()
	err := c.conn.Send(cmd, args...)
	c.split.send += time.Since(start)
	return err
}

func (c *timedConn) Do(cmd string, args ...any) (any, error) {
	start := time.Now()
	reply, err := c.conn.Do(cmd, args...)
	c.split.do += time.Since(start)
	return reply, err
}

func (c *timedConn) DoContext(ctx context.Context, cmd string, args ...any) (any, error) {
	start := time.Now()
	reply, err := redis.DoContext(c.conn, ctx, cmd, args...)
	c.split.do += time.Since(start)
	return reply, err
}

func (c *timedConn) DoWithTimeout(timeout time.Duration, cmd string, args ...any) (any, error) {
	start := time.Now()
	reply, err := redis.DoWithTimeout(c.conn, timeout, cmd, args...)
	c.split.do += time.Since(start)
	return reply, err
}

func (c *timedConn) Close() error {
	start := time.Now()
	err := c.conn.Close()
	c.split.close += time.Since(start)
	return err
}

func (c *timedConn) Err() error { return c.conn.Err() }

func (c *timedConn) Flush() error {
	start := time.Now()
	err := c.conn.Flush()
	c.split.flush += time.Since(start)
	return err
}

func (c *timedConn) Receive() (any, error) {
	start := time.Now()
	reply, err := c.conn.Receive()
	c.split.receive += time.Since(start)
	return reply, err
}

func (c *timedConn) ReceiveContext(ctx context.Context) (any, error) {
	start := time.Now()
	reply, err := redis.ReceiveContext(c.conn, ctx)
	c.split.receive += time.Since(start)
	return reply, err
}

func (c *timedConn) ReceiveWithTimeout(timeout time.Duration) (any, error) {
	start := time.Now()
	reply, err := redis.ReceiveWithTimeout(c.conn, timeout)
	c.split.receive += time.Since(start)
	return reply, err
}

// fillSampler records how full the Publisher's buffer is every
// millisecond. A buffer that is full in most samples means the batcher
// and Redis set the pace, and the publishing goroutines wait for room.
type fillSampler struct {
	publisher *push.Publisher
	capacity  int

	samples int
	full    int // samples with at least 90% of capacity buffered
	sum     uint64

	done chan struct{}
	wg   sync.WaitGroup
}

func startFillSampler(publisher *push.Publisher, capacity int) *fillSampler {
	s := &fillSampler{publisher: publisher, capacity: capacity, done: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ticker := time.NewTicker(time.Millisecond)
		defer ticker.Stop()
		for {
			select {
			case <-s.done:
				return
			case <-ticker.C:
			}
			buffered := s.publisher.Stats().Buffered
			s.samples++
			s.sum += buffered
			if buffered*10 >= uint64(s.capacity)*9 {
				s.full++
			}
		}
	}()
	return s
}

func (s *fillSampler) stop() {
	close(s.done)
	s.wg.Wait()
}

func (s *fillSampler) print() {
	if s.samples == 0 {
		return
	}
	fmt.Printf("split: buffer fill over %d samples: mean %.0f of %d jobs, at least 90%% full in %.1f%% of samples\n",
		s.samples, float64(s.sum)/float64(s.samples), s.capacity, 100*float64(s.full)/float64(s.samples))
}
