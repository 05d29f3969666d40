package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"

	"github.com/imkit/push"
)

// The apps of the demo traffic. Each appears in appWeights as many times
// as its share of the traffic. Apps 7 and 9 are ROM apps, whose peer,
// group and customer V2 jobs go to per-app queues such as push_queue_7.
var (
	appWeights = []int64{1, 1, 1, 1, 2, 2, 2, 3, 3, 7, 7, 9}
	romApps    = []int64{7, 9}
)

func isROMApp(appid int64) bool {
	return slices.Contains(romApps, appid)
}

// Command codes of customer service messages in the IM protocol, passed
// on to the push service: 24 for a message from a customer, 25 for a
// reply from the store's support staff (MSG_CUSTOMER and
// MSG_CUSTOMER_SUPPORT in the GoBelieve IM server).
const (
	commandCustomer        = 24
	commandCustomerSupport = 25
)

// Group sizes, in receivers, span this range.
const (
	minGroupReceivers = 2
	maxGroupReceivers = 500
)

var (
	peerTexts = []string{
		"晚上一起吃饭吗？🍜",
		"收到，马上到 👍",
		"路上堵车，晚点到 🚗",
		"好的😊",
		"🎉🎂 生日快乐！",
		"Meeting moved to 3pm, see you there",
		"Can you send me the report?\nThanks!",
		"Tom & Jerry <3 \"the movie\" tonight?",
		"はい、わかりました 🙏",
		"Ок, до встречи",
	}
	groupTexts = []string{
		"大家周五下午团建，记得报名 🏃",
		"@所有人 请查看群公告 📢",
		"Release v2.3 is out 🚀",
		"今天的周报请在 18:00 前提交",
		"who's up for lunch? 🍱🍣",
		"照片已上传到相册 📷",
	}
	customerTexts = []string{
		"你好，请问这件衬衫有 L 码吗？",
		"您好，有的，今天下单明天发货 📦",
		"订单 #20240518 什么时候发货？",
		"Is the 256 GB model still in stock?",
		"退款已处理，3–5 个工作日到账 💳",
	}
	systemNotices = []systemContent{
		{Type: "friend_request", Text: "张三 请求添加你为好友 👋"},
		{Type: "maintenance", Text: "服务将于 02:00–04:00 维护 🔧"},
		{Type: "login", Text: "New sign-in from Chrome on macOS"},
		{Type: "group_invite", Text: "李四 邀请你加入群聊「周末徒步 🥾」"},
	}
)

// Contents of the messages, as IM clients send them: small JSON
// documents with a client-generated uuid.
type (
	textContent struct {
		Text string `json:"text"`
		UUID string `json:"uuid"`
	}
	imageContent struct {
		Image imageRef `json:"image"`
		UUID  string   `json:"uuid"`
	}
	imageRef struct {
		URL    string `json:"url"`
		Width  int    `json:"width"`
		Height int    `json:"height"`
	}
	audioContent struct {
		Audio audioRef `json:"audio"`
		UUID  string   `json:"uuid"`
	}
	audioRef struct {
		URL      string `json:"url"`
		Duration int    `json:"duration"` // seconds
	}
	systemContent struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
)

// generator makes a reproducible stream of messages and publishes them.
// Each publishing goroutine has its own.
type generator struct {
	rng       *rand.Rand
	publisher *push.Publisher
	queues    *queueSet

	content   bytes.Buffer
	encoder   *json.Encoder
	receivers []int64 // reused: PublishGroupMessage does not keep the slice

	accepted   []uint64 // accepted jobs per queue index
	minGroup   int
	maxGroup   int
	firstError error // the first error other than ErrQueueFull
}

func newGenerator(seed uint64, publisher *push.Publisher, queues *queueSet) *generator {
	g := &generator{
		rng:       rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15)),
		publisher: publisher,
		queues:    queues,
		receivers: make([]int64, 0, maxGroupReceivers),
		accepted:  make([]uint64, len(queues.all)),
	}
	// Clients send "<" and "&" as they are, and the library escapes them in
	// the payload, as encoding/json does.
	g.encoder = json.NewEncoder(&g.content)
	g.encoder.SetEscapeHTML(false)
	return g
}

// publishOne publishes one message of a random kind and counts it when
// the Publisher accepts it.
func (g *generator) publishOne() {
	var queue int
	var err error
	switch n := g.rng.IntN(100); {
	case n < 55:
		queue, err = g.publishPeer()
	case n < 75:
		queue, err = g.publishGroup()
	case n < 83:
		queue, err = g.publishCustomer()
	case n < 93:
		queue, err = g.publishCustomerV2()
	default:
		queue, err = g.publishSystem()
	}

	if err == nil {
		g.accepted[queue]++
		return
	}
	// Dropped jobs are counted in Stats.Dropped. Anything else means the
	// demo built a bad message or published after Close.
	if !errors.Is(err, push.ErrQueueFull) && g.firstError == nil {
		g.firstError = err
	}
}

func (g *generator) publishPeer() (int, error) {
	appid := g.app()
	m := &push.PeerMessage{
		Sender:   g.user(),
		Receiver: g.user(),
		Content:  g.chatContent(peerTexts),
	}
	return g.queues.index(push.PeerQueue, appid), g.publisher.PublishPeerMessage(appid, m)
}

func (g *generator) publishGroup() (int, error) {
	appid := g.app()
	receivers := g.groupReceivers()
	m := &push.GroupMessage{
		Sender:  g.user(),
		GroupID: 10000 + g.rng.Int64N(90000),
		Content: g.chatContent(groupTexts),
	}
	return g.queues.index(push.GroupQueue, appid), g.publisher.PublishGroupMessage(appid, receivers, m)
}

func (g *generator) publishCustomer() (int, error) {
	appid := g.app()
	m := &push.CustomerMessage{
		CustomerAppID: appid,
		CustomerID:    g.user(),
		SellerID:      g.user(),
		StoreID:       1 + g.rng.Int64N(500),
		Content:       g.textContent(customerTexts),
	}
	receiver, command := m.SellerID, commandCustomer
	if g.rng.IntN(2) == 0 {
		receiver, command = m.CustomerID, commandCustomerSupport
	}
	return g.queues.index(push.CustomerQueue, appid), g.publisher.PublishCustomerMessage(appid, receiver, m, command)
}

func (g *generator) publishCustomerV2() (int, error) {
	senderApp, receiverApp := g.app(), g.app()
	m := &push.CustomerMessageV2{
		SenderAppID:   senderApp,
		Sender:        g.user(),
		ReceiverAppID: receiverApp,
		Receiver:      g.user(),
		Content:       g.textContent(customerTexts),
	}
	return g.queues.index(push.CustomerQueueV2, receiverApp), g.publisher.PublishCustomerMessageV2(receiverApp, m)
}

func (g *generator) publishSystem() (int, error) {
	appid := g.app()
	notice := systemNotices[g.rng.IntN(len(systemNotices))]
	return g.queues.index(push.SystemQueue, appid), g.publisher.PublishSystemMessage(appid, g.user(), g.encode(notice))
}

func (g *generator) app() int64 {
	return appWeights[g.rng.IntN(len(appWeights))]
}

func (g *generator) user() int64 {
	return 100000 + g.rng.Int64N(900000)
}

// groupReceivers returns the offline members of a group: mostly small
// groups, some of a few hundred, and a few of the maximum size.
func (g *generator) groupReceivers() []int64 {
	var size int
	switch n := g.rng.IntN(100); {
	case n < 55:
		size = minGroupReceivers + g.rng.IntN(9) // 2 to 10
	case n < 85:
		size = 11 + g.rng.IntN(90) // 11 to 100
	case n < 98:
		size = 101 + g.rng.IntN(maxGroupReceivers-101) // 101 to 499
	default:
		size = maxGroupReceivers
	}
	if g.minGroup == 0 || size < g.minGroup {
		g.minGroup = size
	}
	g.maxGroup = max(g.maxGroup, size)

	// Distinct user ids in ascending order.
	first, step := g.user(), 1+g.rng.Int64N(97)
	g.receivers = g.receivers[:0]
	for i := range size {
		g.receivers = append(g.receivers, first+int64(i)*step)
	}
	return g.receivers
}

// chatContent returns a text, image or voice message.
func (g *generator) chatContent(texts []string) string {
	switch n := g.rng.IntN(10); {
	case n < 7:
		return g.textContent(texts)
	case n < 9:
		id := g.uuid()
		return g.encode(imageContent{
			Image: imageRef{URL: "https://cdn.example.com/img/" + id + ".jpg", Width: 1080, Height: 1440},
			UUID:  id,
		})
	default:
		id := g.uuid()
		return g.encode(audioContent{
			Audio: audioRef{URL: "https://cdn.example.com/voice/" + id + ".amr", Duration: 1 + g.rng.IntN(59)},
			UUID:  id,
		})
	}
}

func (g *generator) textContent(texts []string) string {
	return g.encode(textContent{Text: texts[g.rng.IntN(len(texts))], UUID: g.uuid()})
}

// encode returns v as compact JSON.
func (g *generator) encode(v any) string {
	g.content.Reset()
	if err := g.encoder.Encode(v); err != nil {
		// The content types above always encode.
		panic(fmt.Sprintf("encoding %T: %v", v, err))
	}
	return string(bytes.TrimSuffix(g.content.Bytes(), []byte("\n")))
}

// uuid returns a random version 4 UUID.
func (g *generator) uuid() string {
	hi, lo := g.rng.Uint64(), g.rng.Uint64()
	hi = hi&^0xf000 | 0x4000     // version 4
	lo = lo&^(0xc<<60) | 0x8<<60 // RFC 9562 variant
	const hex = "0123456789abcdef"
	var b [36]byte
	pos := 0
	for i := range 32 {
		if i == 8 || i == 12 || i == 16 || i == 20 {
			b[pos] = '-'
			pos++
		}
		word, shift := hi, 60-4*i
		if i >= 16 {
			word, shift = lo, 60-4*(i-16)
		}
		b[pos] = hex[word>>uint(shift)&0xf]
		pos++
	}
	return string(b[:])
}

// queueSet lists the queues that the demo traffic reaches: the five
// shared queues and the per-app queues of the ROM apps.
type queueSet struct {
	all    []queueInfo
	byName map[string]int
}

// queueInfo is one queue of the demo and the rules for its entries.
type queueInfo struct {
	name string
	base string // the shared queue that name is a variant of, or name itself
	// romApp is the app of a per-app queue, or 0 for a shared queue.
	romApp int64
}

func newQueueSet(roms []int64) *queueSet {
	s := &queueSet{byName: make(map[string]int)}
	add := func(base string, perApp bool) {
		s.add(queueInfo{name: base, base: base})
		if !perApp {
			return
		}
		for _, appid := range roms {
			s.add(queueInfo{name: romQueueName(base, appid), base: base, romApp: appid})
		}
	}
	add(push.PeerQueue, true)
	add(push.GroupQueue, true)
	add(push.CustomerQueue, false)
	add(push.CustomerQueueV2, true)
	add(push.SystemQueue, false)
	return s
}

func (s *queueSet) add(q queueInfo) {
	s.byName[q.name] = len(s.all)
	s.all = append(s.all, q)
}

// index returns the index of the queue that a job of appid for the shared
// queue base goes to. It applies the naming rule of the package doc
// itself, so that the check after the run also covers the library's
// routing.
func (s *queueSet) index(base string, appid int64) int {
	name := base
	if isROMApp(appid) && base != push.CustomerQueue && base != push.SystemQueue {
		name = romQueueName(base, appid)
	}
	i, ok := s.byName[name]
	if !ok {
		panic("pushdemo: no queue " + name + " in the queue set")
	}
	return i
}

func romQueueName(base string, appid int64) string {
	return base + "_" + strconv.FormatInt(appid, 10)
}
