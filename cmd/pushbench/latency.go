package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/imkit/push"
)

// drainCount is the COUNT of the LPOP that empties each queue after a
// BLPOP returned, so that a batch of jobs is read in a few round trips
// and the consumer adds little delay of its own.
const drainCount = 1000

// latencyContent is the content of a latency job. TS is the wall-clock
// time of the publish call in Unix nanoseconds. Publisher and consumer
// run in one process, so they read the same clock.
type latencyContent struct {
	Seq  int    `json:"seq"`
	TS   int64  `json:"ts"`
	Text string `json:"text"`
}

// runLatency publishes cfg.rate jobs per second for cfg.duration through
// the four Publish helpers in turn and reports how long each job took
// from the publish call until a consumer popped it.
func runLatency(cfg config, pool *redis.Pool) error {
	if err := deleteQueues(pool); err != nil {
		return fmt.Errorf("deleting the queues before the run: %w", err)
	}
	if !cfg.keep {
		defer deleteQueues(pool)
	}

	total := int(int64(cfg.rate) * int64(cfg.duration) / int64(time.Second))
	if total < 1 {
		return fmt.Errorf("-rate %d for -duration %v publishes no job", cfg.rate, cfg.duration)
	}
	publisher, err := push.NewPublisher(pool,
		push.WithFlushInterval(cfg.interval),
		push.WithLogger(newLogger()),
	)
	if err != nil {
		return err
	}

	consumer := startConsumer(pool, total, cfg.duration+10*time.Second)
	stopProfile, err := startProfile(cfg.cpuProfile)
	if err != nil {
		return err
	}

	period := time.Second / time.Duration(cfg.rate)
	start := time.Now()
	var publishErr error
	for seq := range total {
		if wait := time.Until(start.Add(time.Duration(seq) * period)); wait > 0 {
			time.Sleep(wait)
		}
		if publishErr = publishLatencyJob(publisher, seq); publishErr != nil {
			break
		}
	}
	publishTime := time.Since(start)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	closeErr := publisher.Close(ctx)
	cancel()
	result := <-consumer
	stopProfile()

	if publishErr != nil {
		return fmt.Errorf("publish: %w", publishErr)
	}
	if closeErr != nil {
		return fmt.Errorf("Close: %w", closeErr)
	}
	if result.err != nil {
		return result.err
	}
	if len(result.latencies) != total || result.duplicates > 0 {
		return fmt.Errorf("the consumer popped %d distinct jobs and %d duplicates, want %d jobs and no duplicate",
			len(result.latencies), result.duplicates, total)
	}

	lat := result.latencies
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	p50, p90, p99, p999, maxLat := percentile(lat, 50), percentile(lat, 90), percentile(lat, 99), percentile(lat, 99.9), lat[len(lat)-1]
	stats := publisher.Stats()
	fmt.Printf("latency: flush interval %v, %d jobs at %.0f jobs/s in %d transactions\n",
		cfg.interval, total, float64(total)/publishTime.Seconds(), stats.Batches)
	fmt.Printf("latency: publish to pop: p50 %.3fms, p90 %.3fms, p99 %.3fms, p99.9 %.3fms, max %.3fms\n",
		ms(p50), ms(p90), ms(p99), ms(p999), ms(maxLat))
	fmt.Printf("RESULT mode=latency interval=%v jobs=%d rate=%.0f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f\n",
		cfg.interval, total, float64(total)/publishTime.Seconds(), ms(p50), ms(p90), ms(p99), ms(p999), ms(maxLat))
	return nil
}

// publishLatencyJob publishes job seq with the helper of kind seq%4, with
// the current time in its content.
func publishLatencyJob(p *push.Publisher, seq int) error {
	id := int64(10_000_000 + seq)
	var buf []byte
	buf = append(buf, `{"seq":`...)
	buf = strconv.AppendInt(buf, int64(seq), 10)
	buf = append(buf, `,"text":"明天见","ts":`...)
	buf = strconv.AppendInt(buf, time.Now().UnixNano(), 10)
	content := string(append(buf, '}'))

	switch seq % 4 {
	case 0:
		return p.PublishPeerMessage(7, &push.PeerMessage{Sender: id + 1, Receiver: id, Content: content})
	case 1:
		return p.PublishGroupMessage(7, []int64{id, id + 1, id + 2}, &push.GroupMessage{Sender: id + 3, GroupID: 50_001, Content: content})
	case 2:
		return p.PublishCustomerMessageV2(7, &push.CustomerMessageV2{SenderAppID: 8, Sender: id + 1, ReceiverAppID: 7, Receiver: id, Content: content})
	default:
		return p.PublishSystemMessage(7, id, content)
	}
}

// consumerResult is the outcome of a consumer: one latency per distinct
// job, the number of jobs seen twice, and the error that stopped it.
type consumerResult struct {
	latencies  []time.Duration
	duplicates int
	err        error
}

// startConsumer pops jobs from every queue on its own connection until it
// has want distinct jobs or the timeout passes, and sends the result on
// the returned channel.
func startConsumer(pool *redis.Pool, want int, timeout time.Duration) <-chan consumerResult {
	results := make(chan consumerResult, 1)
	conn := pool.Get()
	go func() {
		defer conn.Close()
		results <- consume(conn, want, time.Now().Add(timeout))
	}()
	return results
}

func consume(conn redis.Conn, want int, deadline time.Time) consumerResult {
	var result consumerResult
	seen := make([]bool, want)

	record := func(entry []byte, popped time.Time) error {
		var payload struct {
			Content string `json:"content"`
		}
		if err := json.Unmarshal(entry, &payload); err != nil {
			return fmt.Errorf("decoding a job: %w: %q", err, entry)
		}
		var content latencyContent
		if err := json.Unmarshal([]byte(payload.Content), &content); err != nil {
			return fmt.Errorf("decoding the content of a job: %w: %q", err, payload.Content)
		}
		if content.Seq < 0 || content.Seq >= want {
			return fmt.Errorf("a job has seq %d, outside 0..%d", content.Seq, want-1)
		}
		if seen[content.Seq] {
			result.duplicates++
			return nil
		}
		seen[content.Seq] = true
		result.latencies = append(result.latencies, popped.Sub(time.Unix(0, content.TS)))
		return nil
	}

	blpop := make([]any, 0, len(allQueues)+1)
	for _, q := range allQueues {
		blpop = append(blpop, q)
	}
	blpop = append(blpop, 1) // seconds

	for len(result.latencies) < want {
		if time.Now().After(deadline) {
			result.err = fmt.Errorf("timed out with %d of %d jobs popped", len(result.latencies), want)
			return result
		}
		reply, err := redis.ByteSlices(conn.Do("BLPOP", blpop...))
		popped := time.Now()
		if err == redis.ErrNil {
			continue
		}
		if err != nil {
			result.err = fmt.Errorf("BLPOP: %w", err)
			return result
		}
		if err := record(reply[1], popped); err != nil {
			result.err = err
			return result
		}

		// Jobs arrive in batches, so read what else is there at once
		// instead of paying one round trip per job.
		for _, q := range allQueues {
			if err := conn.Send("LPOP", q, drainCount); err != nil {
				result.err = fmt.Errorf("LPOP: %w", err)
				return result
			}
		}
		replies, err := redis.Values(conn.Do(""))
		popped = time.Now()
		if err != nil {
			result.err = fmt.Errorf("LPOP: %w", err)
			return result
		}
		for _, r := range replies {
			entries, err := redis.ByteSlices(r, nil)
			if err == redis.ErrNil {
				continue
			}
			if err != nil {
				result.err = fmt.Errorf("LPOP: %w", err)
				return result
			}
			for _, entry := range entries {
				if err := record(entry, popped); err != nil {
					result.err = err
					return result
				}
			}
		}
	}
	return result
}

// percentile returns the p-th percentile of sorted, by the nearest-rank
// method.
func percentile(sorted []time.Duration, p float64) time.Duration {
	rank := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(0, min(rank, len(sorted)-1))]
}
