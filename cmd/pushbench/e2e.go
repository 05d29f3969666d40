package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/imkit/push"
)

// jobVariants is the number of distinct pre-encoded jobs of each kind.
// The e2e workers cycle through them.
const jobVariants = 1024

// runE2E publishes cfg.jobs pre-encoded jobs with PushChan and reports
// the rate from the first PushChan call until Close has returned.
func runE2E(cfg config, pool *redis.Pool) error {
	jobs, err := buildJobs(cfg.jobSize, jobVariants)
	if err != nil {
		return err
	}
	if err := deleteQueues(pool); err != nil {
		return fmt.Errorf("deleting the queues before the run: %w", err)
	}
	if !cfg.keep {
		defer deleteQueues(pool)
	}

	var target push.Pool = pool
	var split *splitPool
	if cfg.split {
		split = &splitPool{pool: pool}
		target = split
	}
	publishers := make([]*push.Publisher, cfg.publishers)
	for i := range publishers {
		publishers[i], err = push.NewPublisher(target,
			push.WithBatchSize(cfg.batchSize),
			push.WithBufferSize(cfg.bufferSize),
			// Waiting for room is the backpressure: the workers publish as
			// fast as the batcher drains the buffer, and no job is dropped.
			push.WithEnqueueTimeout(time.Minute),
			push.WithLogger(newLogger()),
		)
		if err != nil {
			return err
		}
	}

	var sampler *fillSampler
	if cfg.split {
		sampler = startFillSampler(publishers[0], cfg.bufferSize)
	}
	redisBefore, err := redisCPU(pool)
	if err != nil {
		return err
	}
	stopProfile, err := startProfile(cfg.cpuProfile)
	if err != nil {
		return err
	}

	var failed atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	begin := make(chan struct{})
	for w := range cfg.workers {
		publisher := publishers[w%len(publishers)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-begin
			for i := w; i < cfg.jobs; i += cfg.workers {
				job := jobs[i%len(jobs)]
				if err := publisher.PushChan(job.Queue, job.Payload); err != nil {
					failed.Add(1)
					errOnce.Do(func() { firstErr = err })
				}
			}
		}()
	}

	cpuBefore := processCPU()
	start := time.Now()
	close(begin)
	wg.Wait()
	published := time.Since(start)
	closeErrs := closeAll(publishers)
	elapsed := time.Since(start)
	cpu := processCPU() - cpuBefore
	stopProfile()

	if sampler != nil {
		sampler.stop()
	}
	redisAfter, err := redisCPU(pool)
	if err != nil {
		return err
	}
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("%d PushChan calls failed, the first with: %w", n, firstErr)
	}
	if closeErrs != nil {
		return fmt.Errorf("Close: %w", closeErrs)
	}
	total, err := queueTotal(pool)
	if err != nil {
		return err
	}
	var written, batches uint64
	for _, p := range publishers {
		stats := p.Stats()
		written += stats.Written
		batches += stats.Batches
	}
	if total != int64(cfg.jobs) || written != uint64(cfg.jobs) {
		return fmt.Errorf("the queues hold %d jobs and Stats.Written adds up to %d, want %d of each", total, written, cfg.jobs)
	}

	rate := float64(cfg.jobs) / elapsed.Seconds()
	fmt.Printf("e2e: %d jobs of %d bytes from %d goroutines, %d Publisher(s), in %v (all PushChan calls returned after %v)\n",
		cfg.jobs, cfg.jobSize, cfg.workers, cfg.publishers, elapsed.Round(time.Millisecond), published.Round(time.Millisecond))
	fmt.Printf("e2e: %d transactions, %.0f jobs each on average; LLEN total %d\n",
		batches, float64(written)/float64(batches), total)
	fmt.Printf("e2e: CPU used: pushbench %.2f cores, redis-server %.2f cores\n",
		cpu.Seconds()/elapsed.Seconds(), (redisAfter-redisBefore).Seconds()/elapsed.Seconds())
	if split != nil {
		split.print(elapsed, batches)
		sampler.print()
	}
	fmt.Printf("RESULT mode=e2e jobs=%d seconds=%.3f jobs_per_s=%.0f batches=%d\n",
		cfg.jobs, elapsed.Seconds(), rate, batches)
	return nil
}

// closeAll closes every publisher, concurrently so that each one's last
// batch is written at once, and joins their errors.
func closeAll(publishers []*push.Publisher) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	errs := make([]error, len(publishers))
	var wg sync.WaitGroup
	for i, p := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = p.Close(ctx)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// runRoundTrip writes cfg.jobs jobs with one RPUSH each on one
// connection, waiting for each reply before sending the next command.
func runRoundTrip(cfg config, pool *redis.Pool) error {
	jobs, err := buildJobs(cfg.jobSize, jobVariants)
	if err != nil {
		return err
	}
	if err := deleteQueues(pool); err != nil {
		return fmt.Errorf("deleting the queues before the run: %w", err)
	}
	if !cfg.keep {
		defer deleteQueues(pool)
	}

	conn := pool.Get()
	defer conn.Close()
	stopProfile, err := startProfile(cfg.cpuProfile)
	if err != nil {
		return err
	}

	start := time.Now()
	for i := range cfg.jobs {
		job := jobs[i%len(jobs)]
		if _, err := redis.Int64(conn.Do("RPUSH", job.Queue, job.Payload)); err != nil {
			stopProfile()
			return fmt.Errorf("RPUSH %s, job %d: %w", job.Queue, i, err)
		}
	}
	elapsed := time.Since(start)
	stopProfile()

	total, err := queueTotal(pool)
	if err != nil {
		return err
	}
	if total != int64(cfg.jobs) {
		return fmt.Errorf("the queues hold %d jobs, want %d", total, cfg.jobs)
	}

	rate := float64(cfg.jobs) / elapsed.Seconds()
	fmt.Printf("roundtrip: %d jobs of %d bytes, one RPUSH each, in %v; LLEN total %d\n",
		cfg.jobs, cfg.jobSize, elapsed.Round(time.Millisecond), total)
	fmt.Printf("RESULT mode=roundtrip jobs=%d seconds=%.3f jobs_per_s=%.0f\n", cfg.jobs, elapsed.Seconds(), rate)
	return nil
}

// processCPU returns the user and system CPU time of this process.
func processCPU() time.Duration {
	var usage syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &usage); err != nil {
		return 0
	}
	return time.Duration(usage.Utime.Nano() + usage.Stime.Nano())
}

// redisCPU returns the user and system CPU time of the Redis server, from
// INFO cpu.
func redisCPU(pool *redis.Pool) (time.Duration, error) {
	conn := pool.Get()
	defer conn.Close()
	info, err := redis.String(conn.Do("INFO", "cpu"))
	if err != nil {
		return 0, fmt.Errorf("INFO cpu: %w", err)
	}

	var total float64
	found := 0
	for _, line := range strings.Split(info, "\r\n") {
		key, value, ok := strings.Cut(line, ":")
		if !ok || (key != "used_cpu_user" && key != "used_cpu_sys") {
			continue
		}
		seconds, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return 0, fmt.Errorf("INFO cpu: %s: %w", key, err)
		}
		total += seconds
		found++
	}
	if found != 2 {
		return 0, errors.New("INFO cpu: used_cpu_user or used_cpu_sys is missing")
	}
	return time.Duration(total * float64(time.Second)), nil
}
