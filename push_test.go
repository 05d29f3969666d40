package push_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/gomodule/redigo/redis"
	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/imkit/push"
)

// publishHelper describes one Publish helper: how to call it, which queue
// it writes to without ROM routing, and the payload it must produce.
type publishHelper struct {
	name  string
	queue string
	// romRouted is set for the helpers whose jobs go to per-app queues for
	// a ROM app.
	romRouted bool
	publish   func(p *push.Publisher, appid int64, content string) error
	// payload returns the exported payload struct that the helper fills.
	payload func(appid int64, content string) any
	// asMap returns the payload as a map with the same keys and values.
	asMap func(appid int64, content string) map[string]any
	// decode unmarshals a list entry into the helper's payload type.
	decode func(entry []byte) (any, error)
}

// publishHelpers lists every Publish helper with fixed user, group and store
// ids, the ones of the golden vectors.
var publishHelpers = []publishHelper{
	{
		name:      "peer",
		queue:     push.PeerQueue,
		romRouted: true,
		publish: func(p *push.Publisher, appid int64, content string) error {
			return p.PublishPeerMessage(appid, &push.PeerMessage{Sender: 1001, Receiver: 1002, Content: content})
		},
		payload: func(appid int64, content string) any {
			return push.PeerPayload{AppID: appid, Content: content, Receiver: 1002, Sender: 1001}
		},
		asMap: func(appid int64, content string) map[string]any {
			return map[string]any{"appid": appid, "content": content, "receiver": 1002, "sender": 1001}
		},
		decode: func(entry []byte) (any, error) {
			var pl push.PeerPayload
			err := json.Unmarshal(entry, &pl)
			return pl, err
		},
	},
	{
		name:      "group",
		queue:     push.GroupQueue,
		romRouted: true,
		publish: func(p *push.Publisher, appid int64, content string) error {
			return p.PublishGroupMessage(appid, []int64{1002, 1003}, &push.GroupMessage{Sender: 1001, GroupID: 5001, Content: content})
		},
		payload: func(appid int64, content string) any {
			return push.GroupPayload{AppID: appid, Content: content, GroupID: 5001, Receivers: []int64{1002, 1003}, Sender: 1001}
		},
		asMap: func(appid int64, content string) map[string]any {
			return map[string]any{"appid": appid, "content": content, "group_id": 5001, "receivers": []int64{1002, 1003}, "sender": 1001}
		},
		decode: func(entry []byte) (any, error) {
			var pl push.GroupPayload
			err := json.Unmarshal(entry, &pl)
			return pl, err
		},
	},
	{
		name:  "customer",
		queue: push.CustomerQueue,
		publish: func(p *push.Publisher, appid int64, content string) error {
			m := &push.CustomerMessage{CustomerAppID: 7, CustomerID: 1002, SellerID: 88, StoreID: 9, Content: content}
			return p.PublishCustomerMessage(appid, 1002, m, 25)
		},
		payload: func(appid int64, content string) any {
			return push.CustomerPayload{AppID: appid, Command: 25, Content: content, CustomerID: 1002, CustomerAppID: 7, Receiver: 1002, SellerID: 88, StoreID: 9}
		},
		asMap: func(appid int64, content string) map[string]any {
			return map[string]any{"appid": appid, "command": 25, "content": content, "customer": 1002, "customer_appid": 7, "receiver": 1002, "seller": 88, "store": 9}
		},
		decode: func(entry []byte) (any, error) {
			var pl push.CustomerPayload
			err := json.Unmarshal(entry, &pl)
			return pl, err
		},
	},
	{
		name:      "customer v2",
		queue:     push.CustomerQueueV2,
		romRouted: true,
		publish: func(p *push.Publisher, appid int64, content string) error {
			m := &push.CustomerMessageV2{SenderAppID: 7, Sender: 1001, ReceiverAppID: 8, Receiver: 2002, Content: content}
			return p.PublishCustomerMessageV2(appid, m)
		},
		payload: func(appid int64, content string) any {
			return push.CustomerPayloadV2{AppID: appid, Content: content, Receiver: 2002, ReceiverAppID: 8, Sender: 1001, SenderAppID: 7}
		},
		asMap: func(appid int64, content string) map[string]any {
			return map[string]any{"appid": appid, "content": content, "receiver": 2002, "receiver_appid": 8, "sender": 1001, "sender_appid": 7}
		},
		decode: func(entry []byte) (any, error) {
			var pl push.CustomerPayloadV2
			err := json.Unmarshal(entry, &pl)
			return pl, err
		},
	},
	{
		name:  "system",
		queue: push.SystemQueue,
		publish: func(p *push.Publisher, appid int64, content string) error {
			return p.PublishSystemMessage(appid, 1002, content)
		},
		payload: func(appid int64, content string) any {
			return push.SystemPayload{AppID: appid, Content: content, Receiver: 1002}
		},
		asMap: func(appid int64, content string) map[string]any {
			return map[string]any{"appid": appid, "content": content, "receiver": 1002}
		},
		decode: func(entry []byte) (any, error) {
			var pl push.SystemPayload
			err := json.Unmarshal(entry, &pl)
			return pl, err
		},
	},
}

func findHelper(t *testing.T, name string) publishHelper {
	t.Helper()
	for _, h := range publishHelpers {
		if h.name == name {
			return h
		}
	}
	t.Fatalf("no Publish helper named %q", name)
	return publishHelper{}
}

// listEntries returns a copy of the list at key, or nil when the key does
// not exist.
func listEntries(t testing.TB, server *miniredis.Miniredis, key string) []string {
	t.Helper()
	if !server.Exists(key) {
		return nil
	}
	entries, err := server.List(key)
	if err != nil {
		t.Fatalf("reading list %s: %v", key, err)
	}
	return slices.Clone(entries)
}

// listLen returns the length of the list at key, 0 when it does not exist.
func listLen(t testing.TB, server *miniredis.Miniredis, key string) int {
	t.Helper()
	return len(listEntries(t, server, key))
}

// mustMarshal returns json.Marshal(v) and fails the test on an error.
func mustMarshal(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("json.Marshal(%#v): %v", v, err)
	}
	return string(b)
}

// checkEntry checks one list entry against both reference encodings and
// decodes it back into the helper's payload type.
func checkEntry(t *testing.T, h publishHelper, appid int64, content, entry string) {
	t.Helper()
	if want := mustMarshal(t, h.asMap(appid, content)); entry != want {
		t.Errorf("entry differs from json.Marshal of the map:\n got %s\nwant %s", entry, want)
	}
	if want := mustMarshal(t, h.payload(appid, content)); entry != want {
		t.Errorf("entry differs from json.Marshal of the payload struct:\n got %s\nwant %s", entry, want)
	}

	got, err := h.decode([]byte(entry))
	if err != nil {
		t.Fatalf("decoding %s: %v", entry, err)
	}
	// encoding/json replaces each invalid UTF-8 byte with U+FFFD, as the
	// conversion to runes does.
	want := h.payload(appid, string([]rune(content)))
	if !reflect.DeepEqual(got, want) {
		t.Errorf("decoded payload:\n got %#v\nwant %#v", got, want)
	}
}

func TestPublishGolden(t *testing.T) {
	cases := []struct {
		helper  string
		content string
		want    string
	}{
		{
			helper:  "peer",
			content: `{"text":"hi <b>&</b> 你好","uuid":"a1b2"}`,
			want:    `{"appid":7,"content":"{\"text\":\"hi \u003cb\u003e\u0026\u003c/b\u003e 你好\",\"uuid\":\"a1b2\"}","receiver":1002,"sender":1001}`,
		},
		{
			helper:  "group",
			content: `{"text":"hello","uuid":"u-1","at":[1003]}`,
			want:    `{"appid":7,"content":"{\"text\":\"hello\",\"uuid\":\"u-1\",\"at\":[1003]}","group_id":5001,"receivers":[1002,1003],"sender":1001}`,
		},
		{
			helper:  "customer",
			content: `{"text":"welcome"}`,
			want:    `{"appid":7,"command":25,"content":"{\"text\":\"welcome\"}","customer":1002,"customer_appid":7,"receiver":1002,"seller":88,"store":9}`,
		},
		{
			helper:  "system",
			content: `{"push":"You have a call","sound":"default"}`,
			want:    `{"appid":7,"content":"{\"push\":\"You have a call\",\"sound\":\"default\"}","receiver":1002}`,
		},
		{
			helper:  "customer v2",
			content: `{"text":"ok"}`,
			want:    `{"appid":7,"content":"{\"text\":\"ok\"}","receiver":2002,"receiver_appid":8,"sender":1001,"sender_appid":7}`,
		},
	}

	for _, tc := range cases {
		t.Run(tc.helper, func(t *testing.T) {
			h := findHelper(t, tc.helper)
			server, pool := startMiniredis(t)
			logger, _ := quietLogger()
			p := newPublisher(t, pool, push.WithLogger(logger))

			if err := h.publish(p, 7, tc.content); err != nil {
				t.Fatalf("publish: %v", err)
			}
			closePublisher(t, p)

			if got, want := server.Keys(), []string{h.queue}; !slices.Equal(got, want) {
				t.Fatalf("keys: got %q, want %q", got, want)
			}
			entries := listEntries(t, server, h.queue)
			if len(entries) != 1 {
				t.Fatalf("%s has %d entries, want 1: %q", h.queue, len(entries), entries)
			}
			if entries[0] != tc.want {
				t.Errorf("entry:\n got %s\nwant %s", entries[0], tc.want)
			}
			checkEntry(t, h, 7, tc.content, entries[0])
		})
	}
}

// awkwardContents are message bodies that a JSON encoder must escape or
// repair.
var awkwardContents = []struct {
	name    string
	content string
}{
	{"empty", ""},
	{"html", `<script>alert("x&y")</script>`},
	{"quote and backslash", `say "hi" \ bye \u0041`},
	{"line separators", "a\u2028b\u2029c"},
	{"control characters", "\x00\x01\x07\b\f\n\r\t\x1b\x1f\x7f"},
	{"invalid byte", "bad \xff\xfe byte"},
	{"truncated rune", "cut \xe4\xbd"},
	{"encoded surrogate", "\xed\xa0\x80"},
	{"replacement character", "\ufffd"},
	{"emoji", "😀 👍🏽 👨‍👩‍👧 🇹🇼"},
	{"cjk and astral", "你好 𝄞 \U0010ffff"},
}

func TestPublishContents(t *testing.T) {
	for _, h := range publishHelpers {
		t.Run(h.name, func(t *testing.T) {
			server, pool := startMiniredis(t)
			logger, _ := quietLogger()
			p := newPublisher(t, pool, push.WithLogger(logger))

			for _, c := range awkwardContents {
				if err := h.publish(p, 7, c.content); err != nil {
					t.Fatalf("publish %s: %v", c.name, err)
				}
			}
			closePublisher(t, p)

			entries := listEntries(t, server, h.queue)
			if len(entries) != len(awkwardContents) {
				t.Fatalf("%s has %d entries, want %d", h.queue, len(entries), len(awkwardContents))
			}
			for i, c := range awkwardContents {
				t.Run(c.name, func(t *testing.T) {
					checkEntry(t, h, 7, c.content, entries[i])
				})
			}
		})
	}
}

func TestPublishROMQueues(t *testing.T) {
	server, pool := startMiniredis(t)
	logger, _ := quietLogger()
	p := newPublisher(t, pool, push.WithLogger(logger),
		push.WithROMApps(func(appid int64) bool { return appid == 7 }))

	if !p.IsROMApp(7) {
		t.Errorf("IsROMApp(7) = false, want true")
	}
	if p.IsROMApp(8) {
		t.Errorf("IsROMApp(8) = true, want false")
	}

	for _, h := range publishHelpers {
		for _, appid := range []int64{7, 8} {
			if err := h.publish(p, appid, "hi"); err != nil {
				t.Fatalf("publish %s for app %d: %v", h.name, appid, err)
			}
		}
	}
	closePublisher(t, p)

	want := map[string][]string{
		"push_queue_7":             {mustMarshal(t, findHelper(t, "peer").payload(7, "hi"))},
		"push_queue":               {mustMarshal(t, findHelper(t, "peer").payload(8, "hi"))},
		"group_push_queue_7":       {mustMarshal(t, findHelper(t, "group").payload(7, "hi"))},
		"group_push_queue":         {mustMarshal(t, findHelper(t, "group").payload(8, "hi"))},
		"customer_push_queue_v2_7": {mustMarshal(t, findHelper(t, "customer v2").payload(7, "hi"))},
		"customer_push_queue_v2":   {mustMarshal(t, findHelper(t, "customer v2").payload(8, "hi"))},
		"customer_push_queue": {
			mustMarshal(t, findHelper(t, "customer").payload(7, "hi")),
			mustMarshal(t, findHelper(t, "customer").payload(8, "hi")),
		},
		"system_push_queue": {
			mustMarshal(t, findHelper(t, "system").payload(7, "hi")),
			mustMarshal(t, findHelper(t, "system").payload(8, "hi")),
		},
	}

	wantKeys := make([]string, 0, len(want))
	for key := range want {
		wantKeys = append(wantKeys, key)
	}
	slices.Sort(wantKeys)
	if got := server.Keys(); !slices.Equal(got, wantKeys) {
		t.Errorf("keys:\n got %q\nwant %q", got, wantKeys)
	}
	for key, entries := range want {
		if got := listEntries(t, server, key); !slices.Equal(got, entries) {
			t.Errorf("%s:\n got %q\nwant %q", key, got, entries)
		}
	}
}

func TestIsROMAppDefault(t *testing.T) {
	_, pool := startMiniredis(t)
	logger, _ := quietLogger()

	p := newPublisher(t, pool, push.WithLogger(logger))
	if p.IsROMApp(7) {
		t.Errorf("IsROMApp(7) without WithROMApps = true, want false")
	}

	p = newPublisher(t, pool, push.WithLogger(logger), push.WithROMApps(nil))
	if p.IsROMApp(7) {
		t.Errorf("IsROMApp(7) with WithROMApps(nil) = true, want false")
	}
}

func TestPublishInvalid(t *testing.T) {
	group := &push.GroupMessage{Sender: 1001, GroupID: 5001, Content: "hi"}
	cases := []struct {
		name string
		call func(p *push.Publisher) error
	}{
		{"nil peer", func(p *push.Publisher) error { return p.PublishPeerMessage(7, nil) }},
		{"nil group", func(p *push.Publisher) error { return p.PublishGroupMessage(7, []int64{1002}, nil) }},
		{"nil customer", func(p *push.Publisher) error { return p.PublishCustomerMessage(7, 1002, nil, 25) }},
		{"nil customer v2", func(p *push.Publisher) error { return p.PublishCustomerMessageV2(7, nil) }},
		{"group nil receivers", func(p *push.Publisher) error { return p.PublishGroupMessage(7, nil, group) }},
		{"group no receivers", func(p *push.Publisher) error { return p.PublishGroupMessage(7, []int64{}, group) }},
		{"empty queue", func(p *push.Publisher) error { return p.PushChan("", []byte(`{"a":1}`)) }},
		{"nil payload", func(p *push.Publisher) error { return p.PushChan("q", nil) }},
		{"empty payload", func(p *push.Publisher) error { return p.PushChan("q", []byte{}) }},
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			server, pool := startMiniredis(t)
			logger, _ := quietLogger()
			p := newPublisher(t, pool, push.WithLogger(logger))

			err := tc.call(p)
			if !errors.Is(err, push.ErrInvalidMessage) {
				t.Fatalf("error = %v, want one wrapping ErrInvalidMessage", err)
			}
			if errors.Is(err, push.ErrPayloadTooLarge) {
				t.Errorf("error = %v, which wrongly matches ErrPayloadTooLarge", err)
			}
			stats := p.Stats()
			if stats.Invalid != 1 {
				t.Errorf("Stats.Invalid = %d, want 1", stats.Invalid)
			}
			if stats.TooLarge != 0 {
				t.Errorf("Stats.TooLarge = %d, want 0", stats.TooLarge)
			}
			if stats.Published != 0 {
				t.Errorf("Stats.Published = %d, want 0", stats.Published)
			}

			closePublisher(t, p)
			if keys := server.Keys(); len(keys) != 0 {
				t.Errorf("Redis keys after Close = %q, want none", keys)
			}
			if stats := p.Stats(); stats.Batches != 0 {
				t.Errorf("Stats.Batches = %d, want 0", stats.Batches)
			}
		})
	}
}

func TestPushQueueInvalid(t *testing.T) {
	server, pool := startMiniredis(t)
	logger, _ := quietLogger()
	p := newPublisher(t, pool, push.WithLogger(logger))

	batch := []push.Push{
		{Queue: "q", Payload: []byte(`{"n":1}`)},
		{Queue: "", Payload: []byte(`{"n":2}`)},
	}
	err := p.PushQueue(context.Background(), batch)
	if !errors.Is(err, push.ErrInvalidMessage) {
		t.Fatalf("PushQueue error = %v, want one wrapping ErrInvalidMessage", err)
	}
	if !strings.Contains(err.Error(), "job 1") {
		t.Errorf("PushQueue error %q does not name the job index 1", err)
	}

	// The Stats documentation keeps PushQueue's jobs out of the job counts.
	stats := p.Stats()
	if stats.Invalid != 0 {
		t.Errorf("Stats.Invalid = %d, want 0 for PushQueue", stats.Invalid)
	}
	if stats.Batches != 0 {
		t.Errorf("Stats.Batches = %d, want 0", stats.Batches)
	}
	closePublisher(t, p)
	if keys := server.Keys(); len(keys) != 0 {
		t.Errorf("Redis keys = %q, want none: the valid job of a rejected batch must not be written", keys)
	}
}

func TestPublishTooLarge(t *testing.T) {
	const limit = 64
	server, pool := startMiniredis(t)
	logger, _ := quietLogger()
	p := newPublisher(t, pool, push.WithLogger(logger), push.WithMaxPayloadBytes(limit))

	atLimit := []byte(`"` + strings.Repeat("a", limit-2) + `"`)
	overLimit := []byte(`"` + strings.Repeat("a", limit-1) + `"`)
	long := strings.Repeat("x", limit)

	cases := []struct {
		name string
		call func() error
	}{
		{"push chan", func() error { return p.PushChan("q", overLimit) }},
		{"peer", func() error {
			return p.PublishPeerMessage(7, &push.PeerMessage{Sender: 1, Receiver: 2, Content: long})
		}},
		{"system", func() error { return p.PublishSystemMessage(7, 2, long) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if !errors.Is(err, push.ErrPayloadTooLarge) {
				t.Errorf("error = %v, want ErrPayloadTooLarge", err)
			}
			if !errors.Is(err, push.ErrInvalidMessage) {
				t.Errorf("error = %v, want it to wrap ErrInvalidMessage too", err)
			}
		})
	}

	if err := p.PushChan("q", atLimit); err != nil {
		t.Fatalf("PushChan of a payload of exactly %d bytes: %v", limit, err)
	}

	stats := p.Stats()
	if want := uint64(len(cases)); stats.TooLarge != want {
		t.Errorf("Stats.TooLarge = %d, want %d", stats.TooLarge, want)
	}
	if want := uint64(len(cases)); stats.Invalid != want {
		t.Errorf("Stats.Invalid = %d, want %d", stats.Invalid, want)
	}
	if stats.Published != 1 {
		t.Errorf("Stats.Published = %d, want 1", stats.Published)
	}

	closePublisher(t, p)
	if got, want := server.Keys(), []string{"q"}; !slices.Equal(got, want) {
		t.Errorf("keys = %q, want %q", got, want)
	}
	if got, want := listEntries(t, server, "q"), []string{string(atLimit)}; !slices.Equal(got, want) {
		t.Errorf("q = %q, want %q", got, want)
	}
}

func TestNewPublisherOptions(t *testing.T) {
	cases := []struct {
		name string
		opts []push.Option
		// want are parts of the error message: the option and its value.
		want []string
	}{
		{"batch size zero", []push.Option{push.WithBatchSize(0)}, []string{"WithBatchSize(0)"}},
		{"batch size negative", []push.Option{push.WithBatchSize(-1)}, []string{"WithBatchSize(-1)"}},
		{"flush interval negative", []push.Option{push.WithFlushInterval(-time.Millisecond)}, []string{"WithFlushInterval(-1ms)"}},
		{"buffer size zero", []push.Option{push.WithBufferSize(0)}, []string{"WithBufferSize(0)"}},
		{"slow write threshold negative", []push.Option{push.WithSlowWriteThreshold(-time.Second)}, []string{"WithSlowWriteThreshold(-1s)"}},
		{"write timeout zero", []push.Option{push.WithWriteTimeout(0)}, []string{"WithWriteTimeout(0s)"}},
		{"write timeout negative", []push.Option{push.WithWriteTimeout(-time.Second)}, []string{"WithWriteTimeout(-1s)"}},
		{"retry timeout negative", []push.Option{push.WithRetryTimeout(-time.Second)}, []string{"WithRetryTimeout(-1s)"}},
		{"retry backoff zero min", []push.Option{push.WithRetryBackoff(0, time.Second)}, []string{"WithRetryBackoff(0s, 1s)"}},
		{"retry backoff max below min", []push.Option{push.WithRetryBackoff(2*time.Second, time.Second)}, []string{"WithRetryBackoff(2s, 1s)", "2s"}},
		{"max buffered bytes zero", []push.Option{push.WithMaxBufferedBytes(0)}, []string{"WithMaxBufferedBytes(0)"}},
		{"max buffered bytes negative", []push.Option{push.WithMaxBufferedBytes(-5)}, []string{"WithMaxBufferedBytes(-5)"}},
		{"max payload bytes zero", []push.Option{push.WithMaxPayloadBytes(0)}, []string{"WithMaxPayloadBytes(0)"}},
		{"max batch bytes zero", []push.Option{push.WithMaxBatchBytes(0)}, []string{"WithMaxBatchBytes(0)"}},
		{"enqueue timeout negative", []push.Option{push.WithEnqueueTimeout(-time.Millisecond)}, []string{"WithEnqueueTimeout(-1ms)"}},
		{
			"payload over buffered bytes",
			[]push.Option{push.WithMaxBufferedBytes(100), push.WithMaxPayloadBytes(200)},
			[]string{"WithMaxPayloadBytes(200)", "WithMaxBufferedBytes(100)"},
		},
		{
			"payload over batch bytes",
			[]push.Option{push.WithMaxBatchBytes(100), push.WithMaxPayloadBytes(200)},
			[]string{"WithMaxPayloadBytes(200)", "WithMaxBatchBytes(100)"},
		},
		{
			"default payload over buffered bytes",
			[]push.Option{push.WithMaxBufferedBytes(1024)},
			[]string{fmt.Sprintf("WithMaxPayloadBytes(%d)", push.DefaultMaxPayloadBytes), "WithMaxBufferedBytes(1024)"},
		},
	}

	// The pool is never used: every case must fail before the batcher runs.
	pool := &redis.Pool{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := push.NewPublisher(pool, tc.opts...)
			if err == nil {
				closePublisher(t, p)
				t.Fatalf("NewPublisher returned no error")
			}
			if p != nil {
				t.Errorf("NewPublisher returned a Publisher with the error %v", err)
			}
			if !errors.Is(err, push.ErrInvalidOption) {
				t.Errorf("error = %v, want one wrapping ErrInvalidOption", err)
			}
			for _, part := range tc.want {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("error %q does not contain %q", err, part)
				}
			}
		})
	}
}

func TestNewPublisherValidLimits(t *testing.T) {
	_, pool := startMiniredis(t)
	logger, _ := quietLogger()
	// The payload limit may equal the other two limits, and zero is valid
	// for the options whose documentation gives it a meaning.
	newPublisher(t, pool, push.WithLogger(logger),
		push.WithMaxPayloadBytes(100), push.WithMaxBufferedBytes(100), push.WithMaxBatchBytes(100),
		push.WithFlushInterval(0), push.WithSlowWriteThreshold(0), push.WithRetryTimeout(0),
		push.WithEnqueueTimeout(0), push.WithRetryBackoff(time.Millisecond, time.Millisecond))
}

func TestNewPublisherNilPool(t *testing.T) {
	cases := []struct {
		name string
		pool push.Pool
	}{
		{"nil interface", nil},
		{"nil *redis.Pool", (*redis.Pool)(nil)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := push.NewPublisher(tc.pool)
			if err == nil {
				// Close on an idle publisher never touches the pool.
				closePublisher(t, p)
				t.Fatalf("NewPublisher(%#v) returned no error", tc.pool)
			}
			if !errors.Is(err, push.ErrInvalidOption) {
				t.Errorf("error = %v, want one wrapping ErrInvalidOption", err)
			}
		})
	}
}

// gatedPool holds every GetContext call until release is called, so that
// the batcher stays stuck on its first batch while a test fills the buffer.
type gatedPool struct {
	inner push.Pool

	entered     chan struct{} // closed by the first GetContext call
	enterOnce   sync.Once
	open        chan struct{} // closed by release
	releaseOnce sync.Once
}

func newGatedPool(inner push.Pool) *gatedPool {
	return &gatedPool{inner: inner, entered: make(chan struct{}), open: make(chan struct{})}
}

func (g *gatedPool) GetContext(ctx context.Context) (redis.Conn, error) {
	g.enterOnce.Do(func() { close(g.entered) })
	select {
	case <-g.open:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return g.inner.GetContext(ctx)
}

func (g *gatedPool) release() {
	g.releaseOnce.Do(func() { close(g.open) })
}

// newGatedPublisher returns a Publisher in latency mode on a gated pool
// over miniredis, with a write timeout long enough that the gate never
// times out. opts are applied after those settings.
func newGatedPublisher(t *testing.T, opts ...push.Option) (*miniredis.Miniredis, *gatedPool, *push.Publisher, *test.Hook) {
	t.Helper()
	server, pool := startMiniredis(t)
	gate := newGatedPool(pool)
	logger, hook := quietLogger()
	base := []push.Option{push.WithLogger(logger), push.WithFlushInterval(0), push.WithWriteTimeout(time.Minute)}
	p := newPublisher(t, gate, append(base, opts...)...)
	// Registered after newPublisher, so it runs before the Close there.
	t.Cleanup(gate.release)
	return server, gate, p, hook
}

// waitClosed waits for ch to be closed, or fails the test after timeout.
func waitClosed(t *testing.T, ch <-chan struct{}, timeout time.Duration, event string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(timeout):
		t.Fatalf("timed out after %v waiting for %s", timeout, event)
	}
}

// mustPush calls PushChan and fails the test on an error.
func mustPush(t *testing.T, p *push.Publisher, queue, payload string) {
	t.Helper()
	if err := p.PushChan(queue, []byte(payload)); err != nil {
		t.Fatalf("PushChan(%q, %q): %v", queue, payload, err)
	}
}

// dropWarnings returns the "buffer full" log entries.
func dropWarnings(hook *test.Hook) []*logrus.Entry {
	var warnings []*logrus.Entry
	for _, e := range hook.AllEntries() {
		if strings.Contains(e.Message, "buffer full") {
			warnings = append(warnings, e)
		}
	}
	return warnings
}

// droppedSum adds up the "dropped" fields of warnings.
func droppedSum(t *testing.T, warnings []*logrus.Entry) uint64 {
	t.Helper()
	var sum uint64
	for _, w := range warnings {
		if w.Level != logrus.WarnLevel {
			t.Errorf("buffer full entry at level %v, want warning", w.Level)
		}
		n, ok := w.Data["dropped"].(uint64)
		if !ok {
			t.Fatalf("buffer full warning has dropped field %#v (%T), want a uint64", w.Data["dropped"], w.Data["dropped"])
		}
		sum += n
	}
	return sum
}

func TestPushChanFullBuffer(t *testing.T) {
	const bufferSize = 4
	server, gate, p, hook := newGatedPublisher(t, push.WithBufferSize(bufferSize))

	// The batcher takes the first job and waits at the gate, then the
	// buffer fills.
	mustPush(t, p, "q", "job-0")
	waitClosed(t, gate.entered, 10*time.Second, "the batcher to ask for a connection")
	for i := 1; i <= bufferSize; i++ {
		mustPush(t, p, "q", fmt.Sprintf("job-%d", i))
	}

	if err := p.PushChan("q", []byte("dropped")); !errors.Is(err, push.ErrQueueFull) {
		t.Fatalf("PushChan on a full buffer = %v, want ErrQueueFull", err)
	}
	warnings := dropWarnings(hook)
	if len(warnings) != 1 {
		t.Fatalf("after the first drop: %d buffer full warnings, want 1", len(warnings))
	}
	if got := droppedSum(t, warnings); got != 1 {
		t.Errorf("first warning: dropped = %d, want 1", got)
	}

	// More drops within a second are counted, not logged each.
	const burst = 20
	start := time.Now()
	for range burst {
		if err := p.PushChan("q", []byte("dropped")); !errors.Is(err, push.ErrQueueFull) {
			t.Fatalf("PushChan on a full buffer = %v, want ErrQueueFull", err)
		}
	}
	elapsed := time.Since(start)
	warnings = dropWarnings(hook)
	if limit := 1 + int(elapsed/time.Second); len(warnings) > limit {
		t.Errorf("%d buffer full warnings for drops spread over %v, want at most %d", len(warnings), elapsed, limit)
	}
	if got := p.Stats().Dropped; got != 1+burst {
		t.Errorf("Stats.Dropped = %d, want %d", got, 1+burst)
	}

	// A second after the last warning, the next drop logs the count since
	// then. The reporter uses the wall clock, so the test has to wait.
	before := len(warnings)
	time.Sleep(time.Until(warnings[before-1].Time.Add(time.Second + 10*time.Millisecond)))
	if err := p.PushChan("q", []byte("dropped")); !errors.Is(err, push.ErrQueueFull) {
		t.Fatalf("PushChan on a full buffer = %v, want ErrQueueFull", err)
	}
	warnings = dropWarnings(hook)
	if len(warnings) != before+1 {
		t.Fatalf("a drop a second after the last warning: %d warnings, want %d", len(warnings), before+1)
	}
	if got, want := droppedSum(t, warnings), uint64(burst+2); got != want {
		t.Errorf("dropped fields add up to %d, want %d", got, want)
	}
	if got := p.Stats().Dropped; got != burst+2 {
		t.Errorf("Stats.Dropped = %d, want %d", got, burst+2)
	}

	gate.release()
	closePublisher(t, p)

	want := make([]string, 0, bufferSize+1)
	for i := 0; i <= bufferSize; i++ {
		want = append(want, fmt.Sprintf("job-%d", i))
	}
	if got := listEntries(t, server, "q"); !slices.Equal(got, want) {
		t.Errorf("q = %q, want %q", got, want)
	}
	stats := p.Stats()
	if stats.Published != bufferSize+1 {
		t.Errorf("Stats.Published = %d, want %d", stats.Published, bufferSize+1)
	}
	if stats.Written != bufferSize+1 {
		t.Errorf("Stats.Written = %d, want %d", stats.Written, bufferSize+1)
	}
	if got := droppedSum(t, dropWarnings(hook)); got != burst+2 {
		t.Errorf("after Close, dropped fields add up to %d, want %d", got, burst+2)
	}
}

func TestPushChanMaxBufferedBytes(t *testing.T) {
	server, gate, p, _ := newGatedPublisher(t, push.WithMaxBufferedBytes(100), push.WithMaxPayloadBytes(100))

	first := strings.Repeat("a", 40)
	second := strings.Repeat("b", 40)
	mustPush(t, p, "q", first)
	waitClosed(t, gate.entered, 10*time.Second, "the batcher to ask for a connection")
	mustPush(t, p, "q", second)

	// 80 of 100 bytes are buffered: 40 more do not fit, 20 do exactly.
	if err := p.PushChan("q", []byte(strings.Repeat("c", 40))); !errors.Is(err, push.ErrQueueFull) {
		t.Fatalf("PushChan past the byte budget = %v, want ErrQueueFull", err)
	}
	third := strings.Repeat("d", 20)
	mustPush(t, p, "q", third)
	if err := p.PushChan("q", []byte("e")); !errors.Is(err, push.ErrQueueFull) {
		t.Fatalf("PushChan with the byte budget spent = %v, want ErrQueueFull", err)
	}

	stats := p.Stats()
	if stats.BufferedBytes != 100 {
		t.Errorf("Stats.BufferedBytes = %d, want 100", stats.BufferedBytes)
	}
	if stats.Buffered != 3 {
		t.Errorf("Stats.Buffered = %d, want 3", stats.Buffered)
	}
	if stats.Dropped != 2 {
		t.Errorf("Stats.Dropped = %d, want 2", stats.Dropped)
	}

	gate.release()
	closePublisher(t, p)
	if got, want := listEntries(t, server, "q"), []string{first, second, third}; !slices.Equal(got, want) {
		t.Errorf("q = %q, want %q", got, want)
	}
	stats = p.Stats()
	if stats.BufferedBytes != 0 {
		t.Errorf("after Close, Stats.BufferedBytes = %d, want 0", stats.BufferedBytes)
	}
}

// fillGated pushes job-0, waits until the batcher holds it at the gate,
// and fills a buffer of one with job-1.
func fillGated(t *testing.T, gate *gatedPool, p *push.Publisher) {
	t.Helper()
	mustPush(t, p, "q", "job-0")
	waitClosed(t, gate.entered, 10*time.Second, "the batcher to ask for a connection")
	mustPush(t, p, "q", "job-1")
}

// pushAsync runs PushChan in a goroutine and returns a channel with its
// result.
func pushAsync(p *push.Publisher, queue, payload string) <-chan error {
	result := make(chan error, 1)
	go func() { result <- p.PushChan(queue, []byte(payload)) }()
	return result
}

// checkWaiting checks that a PushChan started with pushAsync is still
// waiting after a short while. It cannot fail because a machine is slow.
func checkWaiting(t *testing.T, result <-chan error) {
	t.Helper()
	select {
	case err := <-result:
		t.Fatalf("PushChan returned %v while the buffer was full, want it to wait", err)
	case <-time.After(50 * time.Millisecond):
	}
}

// receiveError waits for a result of pushAsync.
func receiveError(t *testing.T, result <-chan error, timeout time.Duration) error {
	t.Helper()
	select {
	case err := <-result:
		return err
	case <-time.After(timeout):
		t.Fatalf("PushChan did not return within %v", timeout)
		return nil
	}
}

func TestPushChanEnqueueTimeout(t *testing.T) {
	t.Run("room appears", func(t *testing.T) {
		server, gate, p, _ := newGatedPublisher(t, push.WithBufferSize(1), push.WithEnqueueTimeout(time.Minute))
		fillGated(t, gate, p)

		result := pushAsync(p, "q", "job-2")
		checkWaiting(t, result)
		gate.release()
		if err := receiveError(t, result, 10*time.Second); err != nil {
			t.Fatalf("PushChan after room appeared = %v, want nil", err)
		}

		closePublisher(t, p)
		if got, want := listEntries(t, server, "q"), []string{"job-0", "job-1", "job-2"}; !slices.Equal(got, want) {
			t.Errorf("q = %q, want %q", got, want)
		}
		if got := p.Stats().Dropped; got != 0 {
			t.Errorf("Stats.Dropped = %d, want 0", got)
		}
	})

	t.Run("timeout", func(t *testing.T) {
		const timeout = 50 * time.Millisecond
		server, gate, p, _ := newGatedPublisher(t, push.WithBufferSize(1), push.WithEnqueueTimeout(timeout))
		fillGated(t, gate, p)

		start := time.Now()
		err := p.PushChan("q", []byte("job-2"))
		elapsed := time.Since(start)
		if !errors.Is(err, push.ErrQueueFull) {
			t.Fatalf("PushChan = %v, want ErrQueueFull", err)
		}
		if elapsed < timeout {
			t.Errorf("PushChan returned after %v, want at least the enqueue timeout %v", elapsed, timeout)
		}
		stats := p.Stats()
		if stats.Dropped != 1 {
			t.Errorf("Stats.Dropped = %d, want 1", stats.Dropped)
		}
		if stats.Published != 2 {
			t.Errorf("Stats.Published = %d, want 2", stats.Published)
		}

		gate.release()
		closePublisher(t, p)
		if got, want := listEntries(t, server, "q"), []string{"job-0", "job-1"}; !slices.Equal(got, want) {
			t.Errorf("q = %q, want %q", got, want)
		}
	})

	t.Run("close", func(t *testing.T) {
		server, gate, p, _ := newGatedPublisher(t, push.WithBufferSize(1), push.WithEnqueueTimeout(time.Minute))
		fillGated(t, gate, p)

		result := pushAsync(p, "q", "job-2")
		checkWaiting(t, result)

		closed := make(chan error, 1)
		go func() { closed <- p.Close(context.Background()) }()
		// The wait ends long before the one-minute enqueue timeout, while
		// the batcher is still held at the gate.
		if err := receiveError(t, result, 10*time.Second); !errors.Is(err, push.ErrClosed) {
			t.Fatalf("waiting PushChan during Close = %v, want ErrClosed", err)
		}
		if got := p.Stats().Rejected; got != 1 {
			t.Errorf("Stats.Rejected = %d, want 1", got)
		}

		gate.release()
		if err := <-closed; err != nil {
			t.Fatalf("Close: %v", err)
		}
		if got, want := listEntries(t, server, "q"), []string{"job-0", "job-1"}; !slices.Equal(got, want) {
			t.Errorf("q = %q, want %q", got, want)
		}
		if got := p.Stats().Dropped; got != 0 {
			t.Errorf("Stats.Dropped = %d, want 0", got)
		}
	})
}

func TestPublishAfterClose(t *testing.T) {
	server, pool := startMiniredis(t)
	logger, _ := quietLogger()
	p := newPublisher(t, pool, push.WithLogger(logger))
	closePublisher(t, p)

	calls := []struct {
		name string
		call func() error
	}{
		{"push chan", func() error { return p.PushChan("q", []byte("x")) }},
	}
	for _, h := range publishHelpers {
		calls = append(calls, struct {
			name string
			call func() error
		}{h.name, func() error { return h.publish(p, 7, "hi") }})
	}

	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			if err := c.call(); !errors.Is(err, push.ErrClosed) {
				t.Errorf("after Close: %v, want ErrClosed", err)
			}
		})
	}

	stats := p.Stats()
	if want := uint64(len(calls)); stats.Rejected != want {
		t.Errorf("Stats.Rejected = %d, want %d", stats.Rejected, want)
	}
	if stats.Published != 0 {
		t.Errorf("Stats.Published = %d, want 0", stats.Published)
	}
	if keys := server.Keys(); len(keys) != 0 {
		t.Errorf("Redis keys = %q, want none", keys)
	}
}

// closeConcurrently calls Close from n goroutines at once and returns
// their results.
func closeConcurrently(p *push.Publisher, n int) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			errs[i] = p.Close(ctx)
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

func TestCloseTwice(t *testing.T) {
	t.Run("written", func(t *testing.T) {
		server, pool := startMiniredis(t)
		logger, _ := quietLogger()
		p := newPublisher(t, pool, push.WithLogger(logger), push.WithFlushInterval(time.Hour))
		mustPush(t, p, "q", "a")
		mustPush(t, p, "q", "b")

		for i, err := range closeConcurrently(p, 8) {
			if err != nil {
				t.Errorf("concurrent Close %d: %v, want nil", i, err)
			}
		}
		if err := p.Close(context.Background()); err != nil {
			t.Errorf("Close after Close: %v, want nil", err)
		}
		if got, want := listEntries(t, server, "q"), []string{"a", "b"}; !slices.Equal(got, want) {
			t.Errorf("q = %q, want %q", got, want)
		}
		if got := p.Stats().Batches; got != 1 {
			t.Errorf("Stats.Batches = %d, want 1", got)
		}
	})

	t.Run("failed", func(t *testing.T) {
		server, pool := startMiniredis(t)
		if err := server.Set(push.PeerQueue, "not a list"); err != nil {
			t.Fatal(err)
		}
		logger, _ := quietLogger()
		p := newPublisher(t, pool, push.WithLogger(logger), push.WithFlushInterval(time.Hour))
		peer := findHelper(t, "peer")
		for range 2 {
			if err := peer.publish(p, 7, "hi"); err != nil {
				t.Fatal(err)
			}
		}

		errs := closeConcurrently(p, 8)
		if errs[0] == nil {
			t.Fatalf("Close = nil, want an error for 2 jobs not written")
		}
		want := errs[0].Error()
		if !strings.Contains(want, "2 of 2") {
			t.Errorf("Close error %q does not count 2 of 2 jobs not written", want)
		}
		if !strings.Contains(want, "WRONGTYPE: 2") {
			t.Errorf("Close error %q does not count 2 WRONGTYPE failures", want)
		}
		for i, err := range errs {
			if err == nil || err.Error() != want {
				t.Errorf("concurrent Close %d: %v, want %q", i, err, want)
			}
		}
		if err := p.Close(context.Background()); err == nil || err.Error() != want {
			t.Errorf("Close after Close: %v, want %q", err, want)
		}
	})
}

// publishKind publishes content with helper number kind of publishHelpers,
// or with PushChan on "raw_queue" for kind len(publishHelpers), and returns
// the queue written to.
func publishKind(p *push.Publisher, kind int, content string) (string, error) {
	if kind == len(publishHelpers) {
		payload, _ := json.Marshal(map[string]string{"content": content})
		return "raw_queue", p.PushChan("raw_queue", payload)
	}
	h := publishHelpers[kind]
	return h.queue, h.publish(p, 7, content)
}

func TestPublishRacingClose(t *testing.T) {
	const (
		workers = 8
		// maxJobs bounds each worker, in case Close never rejects it.
		maxJobs = 50000
	)
	server, pool := startMiniredis(t)
	logger, _ := quietLogger()
	p := newPublisher(t, pool, push.WithLogger(logger), push.WithFlushInterval(time.Millisecond), push.WithBufferSize(1000))

	// accepted[w][queue] lists the job numbers of worker w that its
	// publish calls accepted, in order.
	accepted := make([]map[string][]int, workers)
	unexpected := make(chan error, workers)
	var wg sync.WaitGroup
	t.Cleanup(func() {
		_ = p.Close(context.Background())
		wg.Wait()
	})

	for w := range workers {
		accepted[w] = make(map[string][]int)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range maxJobs {
				queue, err := publishKind(p, n%(len(publishHelpers)+1), fmt.Sprintf("w%d-n%d", w, n))
				switch {
				case err == nil:
					accepted[w][queue] = append(accepted[w][queue], n)
				case errors.Is(err, push.ErrQueueFull):
				case errors.Is(err, push.ErrClosed):
					return
				default:
					unexpected <- err
					return
				}
			}
		}()
	}

	waitFor(t, 30*time.Second, "2000 published jobs", func() bool { return p.Stats().Published >= 2000 })
	closePublisher(t, p)
	wg.Wait()
	close(unexpected)
	for err := range unexpected {
		t.Errorf("publish returned %v, want nil, ErrQueueFull or ErrClosed", err)
	}

	queues := []string{"raw_queue"}
	for _, h := range publishHelpers {
		queues = append(queues, h.queue)
	}
	var total uint64
	for _, queue := range queues {
		got := make([][]int, workers)
		for _, entry := range listEntries(t, server, queue) {
			var pl struct{ Content string }
			if err := json.Unmarshal([]byte(entry), &pl); err != nil {
				t.Fatalf("%s entry %s: %v", queue, entry, err)
			}
			var w, n int
			if _, err := fmt.Sscanf(pl.Content, "w%d-n%d", &w, &n); err != nil {
				t.Fatalf("%s entry content %q: %v", queue, pl.Content, err)
			}
			got[w] = append(got[w], n)
		}
		for w := range workers {
			total += uint64(len(accepted[w][queue]))
			if !slices.Equal(got[w], accepted[w][queue]) {
				t.Errorf("%s: worker %d has %d jobs in Redis, want the %d accepted ones in order",
					queue, w, len(got[w]), len(accepted[w][queue]))
			}
		}
	}

	stats := p.Stats()
	if stats.Published != total {
		t.Errorf("Stats.Published = %d, want %d accepted", stats.Published, total)
	}
	if stats.Written != stats.Published {
		t.Errorf("Stats.Written = %d, want Published = %d", stats.Written, stats.Published)
	}
	if stats.Buffered != 0 {
		t.Errorf("Stats.Buffered = %d, want 0", stats.Buffered)
	}
	if stats.Failed != 0 {
		t.Errorf("Stats.Failed = %d, want 0", stats.Failed)
	}
	if stats.Rejected < workers {
		t.Errorf("Stats.Rejected = %d, want at least one per worker (%d)", stats.Rejected, workers)
	}
}

func TestNewPublisherNilOption(t *testing.T) {
	_, pool := startMiniredis(t)
	p, err := push.NewPublisher(pool, push.WithBatchSize(10), nil)
	if err == nil {
		closePublisher(t, p)
		t.Fatal("NewPublisher with a nil option returned no error")
	}
	if !errors.Is(err, push.ErrInvalidOption) {
		t.Errorf("error = %v, want one wrapping ErrInvalidOption", err)
	}
	if !strings.Contains(err.Error(), "option 2 of 2 is nil") {
		t.Errorf("error %q does not name the nil option", err)
	}
}

func TestPushChanWaitsForByteBudget(t *testing.T) {
	server, gate, p, _ := newGatedPublisher(t, push.WithMaxBufferedBytes(100),
		push.WithMaxPayloadBytes(100), push.WithEnqueueTimeout(time.Minute))

	first := strings.Repeat("a", 60)
	mustPush(t, p, "q", first)
	waitClosed(t, gate.entered, 10*time.Second, "the batcher to ask for a connection")

	// 60 of 100 bytes are buffered, so another 60 bytes wait for the
	// budget, although the channel has room.
	second := strings.Repeat("b", 60)
	done := make(chan error, 1)
	go func() { done <- p.PushChan("q", []byte(second)) }()
	select {
	case err := <-done:
		t.Fatalf("PushChan returned %v while the byte budget was spent, want it to wait", err)
	case <-time.After(50 * time.Millisecond):
	}

	gate.release()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("PushChan after the budget was freed = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("PushChan still waiting 10s after the budget was freed")
	}
	closePublisher(t, p)

	if got, want := listEntries(t, server, "q"), []string{first, second}; !slices.Equal(got, want) {
		t.Errorf("q = %q, want %q", got, want)
	}
	if got := p.Stats().Dropped; got != 0 {
		t.Errorf("Stats.Dropped = %d, want 0", got)
	}
}

func TestPushChanByteWaitEnds(t *testing.T) {
	cases := []struct {
		name    string
		timeout time.Duration
		close   bool
		want    error
	}{
		{"enqueue timeout", 20 * time.Millisecond, false, push.ErrQueueFull},
		{"close", time.Minute, true, push.ErrClosed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, gate, p, _ := newGatedPublisher(t, push.WithMaxBufferedBytes(100),
				push.WithMaxPayloadBytes(100), push.WithEnqueueTimeout(tc.timeout))
			mustPush(t, p, "q", strings.Repeat("a", 60))
			waitClosed(t, gate.entered, 10*time.Second, "the batcher to ask for a connection")

			done := make(chan error, 1)
			go func() { done <- p.PushChan("q", []byte(strings.Repeat("b", 60))) }()
			closed := make(chan error, 1)
			if tc.close {
				// Close waits for the gated batcher, so it runs aside and
				// the gate opens once the waiting publish has returned.
				go func() {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					closed <- p.Close(ctx)
				}()
			}

			select {
			case err := <-done:
				if !errors.Is(err, tc.want) {
					t.Errorf("PushChan = %v, want %v", err, tc.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("PushChan still waiting after 10s")
			}
			gate.release()
			if tc.close {
				if err := <-closed; err != nil {
					t.Errorf("Close: %v", err)
				}
			}

			stats := p.Stats()
			if tc.want == push.ErrQueueFull && stats.Dropped != 1 {
				t.Errorf("Stats.Dropped = %d, want 1", stats.Dropped)
			}
			if tc.want == push.ErrClosed && stats.Rejected != 1 {
				t.Errorf("Stats.Rejected = %d, want 1", stats.Rejected)
			}
		})
	}
}

func TestPublishClosedBeforeValidation(t *testing.T) {
	_, pool := startMiniredis(t)
	logger, _ := quietLogger()
	p := newPublisher(t, pool, push.WithLogger(logger))
	closePublisher(t, p)

	// Input that would be invalid still gets ErrClosed after Close.
	calls := map[string]func() error{
		"PushChan":                 func() error { return p.PushChan("", nil) },
		"PublishPeerMessage":       func() error { return p.PublishPeerMessage(7, nil) },
		"PublishGroupMessage":      func() error { return p.PublishGroupMessage(7, nil, nil) },
		"PublishCustomerMessage":   func() error { return p.PublishCustomerMessage(7, 1, nil, 25) },
		"PublishCustomerMessageV2": func() error { return p.PublishCustomerMessageV2(7, nil) },
		"PublishSystemMessage":     func() error { return p.PublishSystemMessage(7, 1, "") },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, push.ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
	stats := p.Stats()
	if stats.Rejected != uint64(len(calls)) {
		t.Errorf("Stats.Rejected = %d, want %d", stats.Rejected, len(calls))
	}
	if stats.Invalid != 0 {
		t.Errorf("Stats.Invalid = %d, want 0", stats.Invalid)
	}
}
