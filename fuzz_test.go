package push_test

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/imkit/push"
)

// fuzzInput is one fuzz case: a content string and the ids that the
// Publish helpers put around it.
type fuzzInput struct {
	content    string
	appid      int64
	first      int64
	second     int64
	command    int
	receiverID int64
}

// fuzzHelper publishes one job with a Publish helper and returns the
// payload it must produce, as a map and as the exported payload struct.
type fuzzHelper struct {
	queue   string
	publish func(p *push.Publisher, in fuzzInput) error
	want    func(in fuzzInput) (asMap map[string]any, asStruct any)
}

var fuzzHelpers = []fuzzHelper{
	{
		queue: push.PeerQueue,
		publish: func(p *push.Publisher, in fuzzInput) error {
			return p.PublishPeerMessage(in.appid, &push.PeerMessage{Sender: in.first, Receiver: in.second, Content: in.content})
		},
		want: func(in fuzzInput) (map[string]any, any) {
			return map[string]any{"appid": in.appid, "content": in.content, "receiver": in.second, "sender": in.first},
				push.PeerPayload{AppID: in.appid, Content: in.content, Receiver: in.second, Sender: in.first}
		},
	},
	{
		queue: push.GroupQueue,
		publish: func(p *push.Publisher, in fuzzInput) error {
			receivers := []int64{in.second, in.receiverID, in.appid}
			return p.PublishGroupMessage(in.appid, receivers, &push.GroupMessage{Sender: in.first, GroupID: in.second, Content: in.content})
		},
		want: func(in fuzzInput) (map[string]any, any) {
			receivers := []int64{in.second, in.receiverID, in.appid}
			return map[string]any{"appid": in.appid, "content": in.content, "group_id": in.second, "receivers": receivers, "sender": in.first},
				push.GroupPayload{AppID: in.appid, Content: in.content, GroupID: in.second, Receivers: receivers, Sender: in.first}
		},
	},
	{
		queue: push.CustomerQueue,
		publish: func(p *push.Publisher, in fuzzInput) error {
			m := &push.CustomerMessage{CustomerAppID: in.first, CustomerID: in.second, SellerID: in.receiverID, StoreID: in.appid, Content: in.content}
			return p.PublishCustomerMessage(in.appid, in.receiverID, m, in.command)
		},
		want: func(in fuzzInput) (map[string]any, any) {
			return map[string]any{
					"appid": in.appid, "command": in.command, "content": in.content, "customer": in.second,
					"customer_appid": in.first, "receiver": in.receiverID, "seller": in.receiverID, "store": in.appid,
				},
				push.CustomerPayload{
					AppID: in.appid, Command: in.command, Content: in.content, CustomerID: in.second,
					CustomerAppID: in.first, Receiver: in.receiverID, SellerID: in.receiverID, StoreID: in.appid,
				}
		},
	},
	{
		queue: push.CustomerQueueV2,
		publish: func(p *push.Publisher, in fuzzInput) error {
			m := &push.CustomerMessageV2{SenderAppID: in.first, Sender: in.second, ReceiverAppID: in.receiverID, Receiver: in.appid, Content: in.content}
			return p.PublishCustomerMessageV2(in.appid, m)
		},
		want: func(in fuzzInput) (map[string]any, any) {
			return map[string]any{
					"appid": in.appid, "content": in.content, "receiver": in.appid,
					"receiver_appid": in.receiverID, "sender": in.second, "sender_appid": in.first,
				},
				push.CustomerPayloadV2{
					AppID: in.appid, Content: in.content, Receiver: in.appid,
					ReceiverAppID: in.receiverID, Sender: in.second, SenderAppID: in.first,
				}
		},
	},
	{
		queue: push.SystemQueue,
		publish: func(p *push.Publisher, in fuzzInput) error {
			return p.PublishSystemMessage(in.appid, in.receiverID, in.content)
		},
		want: func(in fuzzInput) (map[string]any, any) {
			return map[string]any{"appid": in.appid, "content": in.content, "receiver": in.receiverID},
				push.SystemPayload{AppID: in.appid, Content: in.content, Receiver: in.receiverID}
		},
	},
}

// FuzzPayloadEncoding checks that every Publish helper writes the bytes
// that encoding/json produces for a map of the same keys and values, for
// any content and ids. The jobs go through one Publisher for the whole
// run, whose stub pool captures each RPUSH without a network.
func FuzzPayloadEncoding(f *testing.F) {
	contents := []string{
		`{"text":"hi <b>&</b> 你好","uuid":"a1b2"}`,
		`{"push":"You have a call","sound":"default"}`,
		"",
		`<script>alert("x&y")</script>`,
		"a\u2028b\u2029c",
		"\x00\x01\b\f\n\r\t\x1b\x1f\x7f",
		"bad \xff\xfe byte",
		"cut \xe4\xbd",
		"\xed\xa0\x80",
		"\ufffd",
		`quote " and backslash \ \u0041`,
		"😀 👍🏽 👨‍👩‍👧 🇹🇼 \U0010ffff",
	}
	ids := [][4]int64{
		{7, 1001, 1002, 25},
		{0, 0, 0, 0},
		{math.MaxInt64, math.MinInt64, -1, math.MaxInt32},
		{math.MinInt64, math.MaxInt64, 1, math.MinInt32},
	}
	for _, content := range contents {
		for _, id := range ids {
			f.Add(content, id[0], id[1], id[2], int(id[3]), id[1]^id[2])
		}
	}

	pool := &stubPool{rpushes: make(chan stubCommand, 2*len(fuzzHelpers)), untracked: true}
	p := newPublisher(f, pool, push.WithFlushInterval(0), push.WithLogger(nil))

	f.Fuzz(func(t *testing.T, content string, appid, first, second int64, command int, receiverID int64) {
		// Escaping grows a byte to at most 6, and the payload limit is
		// 512 KiB.
		if len(content) > 64<<10 {
			t.Skip("content too long for the payload limit")
		}
		in := fuzzInput{content: content, appid: appid, first: first, second: second, command: command, receiverID: receiverID}
		for _, h := range fuzzHelpers {
			if err := h.publish(p, in); err != nil {
				t.Fatalf("publishing to %s: %v", h.queue, err)
			}
		}

		got := make(map[string]string)
		for len(got) < len(fuzzHelpers) {
			select {
			case cmd := <-pool.rpushes:
				for _, payload := range cmd.Args[1:] {
					if _, dup := got[cmd.Args[0]]; dup {
						t.Fatalf("two jobs on %s for one input", cmd.Args[0])
					}
					got[cmd.Args[0]] = payload
				}
			case <-time.After(faultWaitTimeout):
				t.Fatalf("after %v, %d of %d jobs reached the stub pool", faultWaitTimeout, len(got), len(fuzzHelpers))
			}
		}

		for _, h := range fuzzHelpers {
			asMap, asStruct := h.want(in)
			wantMap, err := json.Marshal(asMap)
			if err != nil {
				t.Fatalf("json.Marshal of the %s map: %v", h.queue, err)
			}
			if got[h.queue] != string(wantMap) {
				t.Errorf("%s payload\n got %s\nwant %s", h.queue, got[h.queue], wantMap)
			}
			wantStruct, err := json.Marshal(asStruct)
			if err != nil {
				t.Fatalf("json.Marshal of the %s payload struct: %v", h.queue, err)
			}
			if string(wantStruct) != string(wantMap) {
				t.Errorf("%s payload struct encodes as\n%s\nbut the map as\n%s", h.queue, wantStruct, wantMap)
			}
		}
	})
}
