package push_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gomodule/redigo/redis"

	"github.com/imkit/push"
)

// The publish benchmarks measure what a message handler pays per call:
// encoding the payload and handing it to the batcher. The Publisher writes
// to benchPool, an in-memory stand-in for Redis, so that the batcher
// drains the buffer at memory speed and Redis never sets the pace. Each
// benchmark checks every returned error and, after Close, that every job
// reached the stand-in, so a publish that fails cannot look fast.
//
// Run them with:
//
//	go test -run '^$' -bench 'Publish|JSONMarshalMap|UTF8ValidString|PushChan' -benchmem
//
// BENCHMARKS.md records the figures and the machine they came from.

// benchSizes are the content sizes of the publish benchmarks, in bytes.
var benchSizes = []struct {
	name string
	size int
}{
	{"100B", 100},
	{"2KB", 2048},
}

// benchGroupReceivers is the receiver list of the group benchmarks: 20
// offline members of a group.
var benchGroupReceivers = func() []int64 {
	ids := make([]int64, 20)
	for i := range ids {
		ids[i] = 10_000_000 + int64(i)*7919
	}
	return ids
}()

// benchContent returns a chat message body of exactly size bytes: a small
// JSON document whose text is mostly Chinese, so that the encoder copies
// multi-byte runes and escapes the document's quotes.
func benchContent(size int) string {
	const head = `{"type":"text","msgid":"5f1c2a7e-0b4d-4c8e-9a61-3d2f7b9e0c11","text":"`
	const tail = `"}`
	const sentence = "明天下午三点在会议室开会，请带上季度报告。收到请回复，谢谢！See you at 3pm. "
	if size < len(head)+len(tail) {
		panic(fmt.Sprintf("benchContent: size %d is below the frame of %d bytes", size, len(head)+len(tail)))
	}

	var b strings.Builder
	b.WriteString(head)
	room := size - len(head) - len(tail)
	for room > 0 {
		for _, r := range sentence {
			n := len(string(r))
			if n > room {
				// A rune that does not fit is replaced by ASCII padding.
				b.WriteString(strings.Repeat(".", room))
				room = 0
				break
			}
			b.WriteRune(r)
			room -= n
			if room == 0 {
				break
			}
		}
	}
	b.WriteString(tail)
	return b.String()
}

// benchConn is an in-memory redis.Conn that accepts the transactions the
// batcher sends: MULTI, RPUSH and EXEC. Do("") replies OK to MULTI, QUEUED
// to each RPUSH and an array of one list length per RPUSH to EXEC. It
// counts the jobs it received and, when capture is set, keeps copies of
// them.
type benchConn struct {
	mu      sync.Mutex
	replies []any // replies of the commands sent since the last Do("")
	rpushes int   // RPUSH commands since the last MULTI
	jobs    int   // jobs received in all RPUSH commands
	capture bool
	pushed  []push.Push
	err     error // the first unexpected command
}

// benchListLen is the reply to every RPUSH inside EXEC. It is boxed once
// so that building the EXEC reply allocates only the array.
var benchListLen any = int64(1)

func (c *benchConn) Send(cmd string, args ...any) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch cmd {
	case "MULTI":
		c.rpushes = 0
		c.replies = append(c.replies[:0], "OK")
	case "RPUSH":
		if len(args) < 2 {
			return c.fail(fmt.Errorf("benchConn: RPUSH with %d arguments, want a queue and at least one job", len(args)))
		}
		queue, ok := args[0].(string)
		if !ok {
			return c.fail(fmt.Errorf("benchConn: RPUSH queue is %T, want string", args[0]))
		}
		c.rpushes++
		c.jobs += len(args) - 1
		if c.capture {
			for _, arg := range args[1:] {
				payload, ok := arg.([]byte)
				if !ok {
					return c.fail(fmt.Errorf("benchConn: RPUSH job is %T, want []byte", arg))
				}
				c.pushed = append(c.pushed, push.Push{Queue: queue, Payload: bytes.Clone(payload)})
			}
		}
		c.replies = append(c.replies, "QUEUED")
	case "EXEC":
		exec := make([]any, c.rpushes)
		for i := range exec {
			exec[i] = benchListLen
		}
		c.replies = append(c.replies, exec)
	default:
		return c.fail(fmt.Errorf("benchConn: unexpected command %q", cmd))
	}
	return nil
}

func (c *benchConn) fail(err error) error {
	if c.err == nil {
		c.err = err
	}
	return err
}

func (c *benchConn) Do(cmd string, args ...any) (any, error) {
	if cmd != "" {
		if err := c.Send(cmd, args...); err != nil {
			return nil, err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// The batcher reads the reply before it sends the next transaction,
	// so the slice can be reused.
	replies := c.replies
	c.replies = c.replies[len(c.replies):]
	return replies, nil
}

func (c *benchConn) Close() error {
	c.mu.Lock()
	c.replies = c.replies[:0]
	c.mu.Unlock()
	return nil
}

func (c *benchConn) Err() error   { return nil }
func (c *benchConn) Flush() error { return nil }

func (c *benchConn) Receive() (any, error) {
	return nil, errors.New("benchConn: Receive is not supported")
}

func (c *benchConn) received() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.jobs
}

func (c *benchConn) firstError() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *benchConn) capturedJobs() []push.Push {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pushed
}

// benchPool hands out its one benchConn. Only the batcher takes
// connections, one at a time.
type benchPool struct{ conn *benchConn }

func (p *benchPool) GetContext(context.Context) (redis.Conn, error) { return p.conn, nil }

// newBenchPublisher returns a Publisher that writes to a new benchConn.
// The buffer holds 100,000 jobs and 1 GiB, and a full buffer makes a
// publish wait, so ErrQueueFull cannot cut a loop short.
func newBenchPublisher(b *testing.B, capture bool) (*push.Publisher, *benchConn) {
	b.Helper()
	conn := &benchConn{capture: capture}
	p, err := push.NewPublisher(&benchPool{conn: conn},
		push.WithBufferSize(100_000),
		push.WithMaxBufferedBytes(1<<30),
		push.WithEnqueueTimeout(10*time.Second),
		push.WithLogger(nil),
	)
	if err != nil {
		b.Fatalf("NewPublisher: %v", err)
	}
	return p, conn
}

// closeBenchPublisher closes p outside the timed region and fails the
// benchmark unless every one of the published jobs reached conn.
func closeBenchPublisher(b *testing.B, p *push.Publisher, conn *benchConn, published int) {
	b.Helper()
	b.StopTimer()
	defer b.StartTimer()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		b.Fatalf("Close: %v", err)
	}
	if err := conn.firstError(); err != nil {
		b.Fatalf("stand-in connection: %v", err)
	}
	stats := p.Stats()
	if stats.Published != uint64(published) {
		b.Fatalf("Stats.Published = %d, want %d", stats.Published, published)
	}
	if stats.Written != uint64(published) {
		b.Fatalf("Stats.Written = %d, want %d", stats.Written, published)
	}
	if stats.Dropped != 0 {
		b.Fatalf("Stats.Dropped = %d, want 0", stats.Dropped)
	}
	if got := conn.received(); got != published {
		b.Fatalf("stand-in connection received %d jobs, want %d", got, published)
	}
}

// benchHelper is one Publish helper with the same message as a map of
// the JSON keys, the shape a handler would build for json.Marshal.
type benchHelper struct {
	queue   string
	publish func(p *push.Publisher, content string) error
	asMap   func(content string) map[string]any
}

var (
	benchPeer = benchHelper{
		queue: push.PeerQueue,
		publish: func(p *push.Publisher, content string) error {
			return p.PublishPeerMessage(7, &push.PeerMessage{Sender: 10_000_001, Receiver: 10_000_002, Content: content})
		},
		asMap: func(content string) map[string]any {
			return map[string]any{"appid": int64(7), "content": content, "receiver": int64(10_000_002), "sender": int64(10_000_001)}
		},
	}
	benchGroup = benchHelper{
		queue: push.GroupQueue,
		publish: func(p *push.Publisher, content string) error {
			return p.PublishGroupMessage(7, benchGroupReceivers, &push.GroupMessage{Sender: 10_000_001, GroupID: 50_001, Content: content})
		},
		asMap: func(content string) map[string]any {
			return map[string]any{"appid": int64(7), "content": content, "group_id": int64(50_001), "receivers": benchGroupReceivers, "sender": int64(10_000_001)}
		},
	}
	benchCustomer = benchHelper{
		queue: push.CustomerQueue,
		publish: func(p *push.Publisher, content string) error {
			m := &push.CustomerMessage{CustomerAppID: 8, CustomerID: 20_000_001, SellerID: 30_001, StoreID: 401, Content: content}
			return p.PublishCustomerMessage(7, 20_000_001, m, 24)
		},
		asMap: func(content string) map[string]any {
			return map[string]any{"appid": int64(7), "command": 24, "content": content, "customer": int64(20_000_001),
				"customer_appid": int64(8), "receiver": int64(20_000_001), "seller": int64(30_001), "store": int64(401)}
		},
	}
	benchCustomerV2 = benchHelper{
		queue: push.CustomerQueueV2,
		publish: func(p *push.Publisher, content string) error {
			m := &push.CustomerMessageV2{SenderAppID: 8, Sender: 20_000_001, ReceiverAppID: 7, Receiver: 10_000_002, Content: content}
			return p.PublishCustomerMessageV2(7, m)
		},
		asMap: func(content string) map[string]any {
			return map[string]any{"appid": int64(7), "content": content, "receiver": int64(10_000_002),
				"receiver_appid": int64(7), "sender": int64(20_000_001), "sender_appid": int64(8)}
		},
	}
	benchSystem = benchHelper{
		queue: push.SystemQueue,
		publish: func(p *push.Publisher, content string) error {
			return p.PublishSystemMessage(7, 10_000_002, content)
		},
		asMap: func(content string) map[string]any {
			return map[string]any{"appid": int64(7), "content": content, "receiver": int64(10_000_002)}
		},
	}
)

// checkBenchEncoding publishes one message through h and fails the
// benchmark unless the stand-in received json.Marshal's bytes for the
// map, on h's queue. It makes the comparison with BenchmarkJSONMarshalMap
// one of equal outputs.
func checkBenchEncoding(b *testing.B, h benchHelper, content string) {
	b.Helper()
	want, err := json.Marshal(h.asMap(content))
	if err != nil {
		b.Fatalf("json.Marshal: %v", err)
	}

	p, conn := newBenchPublisher(b, true)
	if err := h.publish(p, content); err != nil {
		b.Fatalf("publish: %v", err)
	}
	closeBenchPublisher(b, p, conn, 1)

	jobs := conn.capturedJobs()
	if len(jobs) != 1 {
		b.Fatalf("stand-in connection captured %d jobs, want 1", len(jobs))
	}
	if jobs[0].Queue != h.queue {
		b.Fatalf("queue = %q, want %q", jobs[0].Queue, h.queue)
	}
	if !bytes.Equal(jobs[0].Payload, want) {
		b.Fatalf("payload differs from json.Marshal of the map\n got: %s\nwant: %s", jobs[0].Payload, want)
	}
}

// runPublishBench runs the serial and parallel sub-benchmarks of h for
// each content size.
func runPublishBench(b *testing.B, h benchHelper) {
	for _, size := range benchSizes {
		content := benchContent(size.size)
		b.Run(size.name, func(b *testing.B) {
			checkBenchEncoding(b, h, content)

			b.Run("serial", func(b *testing.B) {
				p, conn := newBenchPublisher(b, false)
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					if err := h.publish(p, content); err != nil {
						b.Fatalf("publish: %v", err)
					}
				}
				closeBenchPublisher(b, p, conn, b.N)
			})

			b.Run("parallel", func(b *testing.B) {
				p, conn := newBenchPublisher(b, false)
				b.ReportAllocs()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := h.publish(p, content); err != nil {
							// Fatal must not be called from a RunParallel
							// goroutine, and every job has to be counted.
							b.Errorf("publish: %v", err)
							return
						}
					}
				})
				if b.Failed() {
					b.FailNow()
				}
				closeBenchPublisher(b, p, conn, b.N)
			})
		})
	}
}

// runMarshalBench runs the reference: building h's map and encoding it
// with json.Marshal, serially and in parallel, for each content size.
func runMarshalBench(b *testing.B, h benchHelper) {
	for _, size := range benchSizes {
		content := benchContent(size.size)
		b.Run(size.name, func(b *testing.B) {
			b.Run("serial", func(b *testing.B) {
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					data, err := json.Marshal(h.asMap(content))
					if err != nil || len(data) == 0 {
						b.Fatalf("json.Marshal: %d bytes, error %v", len(data), err)
					}
				}
			})

			b.Run("parallel", func(b *testing.B) {
				b.ReportAllocs()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						data, err := json.Marshal(h.asMap(content))
						if err != nil || len(data) == 0 {
							b.Errorf("json.Marshal: %d bytes, error %v", len(data), err)
							return
						}
					}
				})
			})
		})
	}
}

func BenchmarkPublishPeer(b *testing.B)       { runPublishBench(b, benchPeer) }
func BenchmarkPublishGroup(b *testing.B)      { runPublishBench(b, benchGroup) }
func BenchmarkPublishCustomer(b *testing.B)   { runPublishBench(b, benchCustomer) }
func BenchmarkPublishCustomerV2(b *testing.B) { runPublishBench(b, benchCustomerV2) }
func BenchmarkPublishSystem(b *testing.B)     { runPublishBench(b, benchSystem) }

func BenchmarkJSONMarshalMapPeer(b *testing.B)       { runMarshalBench(b, benchPeer) }
func BenchmarkJSONMarshalMapGroup(b *testing.B)      { runMarshalBench(b, benchGroup) }
func BenchmarkJSONMarshalMapCustomer(b *testing.B)   { runMarshalBench(b, benchCustomer) }
func BenchmarkJSONMarshalMapCustomerV2(b *testing.B) { runMarshalBench(b, benchCustomerV2) }
func BenchmarkJSONMarshalMapSystem(b *testing.B)     { runMarshalBench(b, benchSystem) }

// BenchmarkUTF8ValidString measures utf8.ValidString alone on the
// contents of the publish benchmarks. An encoder that must replace
// invalid UTF-8 reads every byte at least this once, so this is a floor
// for the string-encoding part of a publish. Run it in the same go test
// run as BenchmarkPublishPeer and BenchmarkJSONMarshalMapPeer to compare.
func BenchmarkUTF8ValidString(b *testing.B) {
	for _, size := range benchSizes {
		content := benchContent(size.size)
		if len(content) != size.size {
			b.Fatalf("content is %d bytes, want %d", len(content), size.size)
		}
		b.Run(size.name, func(b *testing.B) {
			b.Run("serial", func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(content)))
				b.ResetTimer()
				for range b.N {
					if !utf8.ValidString(content) {
						b.Fatal("utf8.ValidString = false, want true")
					}
				}
			})

			b.Run("parallel", func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(content)))
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if !utf8.ValidString(content) {
							b.Error("utf8.ValidString = false, want true")
							return
						}
					}
				})
			})
		})
	}
}

// BenchmarkPushChanParallel measures the enqueue path without encoding:
// the payload is encoded before the timer starts, and every goroutine of
// RunParallel calls PushChan. Run it with -cpu 1,2,4 to see how the channel
// and the counters scale with callers. The buffer fills within the first
// 100,000 jobs, so ns/op is the slower of the callers' enqueue and the
// batcher's work per job, which with the in-memory stand-in is mostly
// taking the job off the channel.
func BenchmarkPushChanParallel(b *testing.B) {
	queues := []string{push.PeerQueue, push.GroupQueue, push.CustomerQueue, push.SystemQueue}
	payload, err := json.Marshal(benchPeer.asMap(benchContent(100)))
	if err != nil {
		b.Fatalf("json.Marshal: %v", err)
	}

	p, conn := newBenchPublisher(b, false)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			// The payload is never modified, so handing the same slice to
			// PushChan many times is safe.
			if err := p.PushChan(queues[i], payload); err != nil {
				b.Errorf("PushChan: %v", err)
				return
			}
			i = (i + 1) % len(queues)
		}
	})
	if b.Failed() {
		b.FailNow()
	}
	closeBenchPublisher(b, p, conn, b.N)
}

// TestPublishAllocsPerCall checks that each Publish helper allocates once
// per call in the caller's goroutine: the payload. The batch size and
// flush interval keep the batcher collecting during the measurement, so
// its own allocations, which benchmarks count too, stay out of it.
func TestPublishAllocsPerCall(t *testing.T) {
	const runs = 1000
	helpers := []struct {
		name   string
		helper benchHelper
	}{
		{"peer", benchPeer},
		{"group", benchGroup},
		{"customer", benchCustomer},
		{"customerV2", benchCustomerV2},
		{"system", benchSystem},
	}
	for _, h := range helpers {
		for _, size := range benchSizes {
			t.Run(h.name+"/"+size.name, func(t *testing.T) {
				content := benchContent(size.size)
				conn := &benchConn{}
				p := newPublisher(t, &benchPool{conn: conn},
					push.WithBatchSize(10*runs),
					push.WithFlushInterval(time.Minute),
					push.WithLogger(nil),
				)

				var publishErr error
				allocs := testing.AllocsPerRun(runs, func() {
					if err := h.helper.publish(p, content); err != nil && publishErr == nil {
						publishErr = err
					}
				})
				if publishErr != nil {
					t.Fatalf("publish: %v", publishErr)
				}
				if allocs != 1 {
					t.Errorf("allocations per call = %v, want 1", allocs)
				}

				// AllocsPerRun calls the function once more to warm up.
				closePublisher(t, p)
				if got := conn.received(); got != runs+1 {
					t.Errorf("stand-in connection received %d jobs, want %d", got, runs+1)
				}
			})
		}
	}
}
