package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/gomodule/redigo/redis"

	"github.com/imkit/push"
)

// allQueues are the queues of the four job kinds, in the order in which
// the jobs of buildJobs cycle through them. The customer kind uses
// CustomerQueueV2 because a CustomerQueue payload has eight fields and
// does not fit in 130 bytes with any content.
var allQueues = []string{push.PeerQueue, push.GroupQueue, push.CustomerQueueV2, push.SystemQueue}

// fillerText is the text of the job contents, cut to size. Chinese
// characters are three bytes each in UTF-8.
const fillerText = "明天下午三点在会议室开会，请带上季度报告。收到请回复，谢谢！"

// buildJobs returns variants jobs of each kind, encoded with json.Marshal
// of the library's payload types to exactly size bytes, and interleaved so
// that job i goes to allQueues[i%4].
func buildJobs(size, variants int) ([]push.Push, error) {
	jobs := make([]push.Push, 0, variants*len(allQueues))
	for v := range variants {
		for kind, queue := range allQueues {
			payload, err := encodeJob(kind, v, size)
			if err != nil {
				return nil, err
			}
			jobs = append(jobs, push.Push{Queue: queue, Payload: payload})
		}
	}
	return jobs, nil
}

// encodeJob returns job v of a kind, with its content padded so that the
// job is size bytes long.
func encodeJob(kind, v, size int) ([]byte, error) {
	base, err := json.Marshal(jobPayload(kind, v, chatContent("")))
	if err != nil {
		return nil, err
	}
	room := size - len(base)
	if room < 0 {
		return nil, fmt.Errorf("a %s job needs at least %d bytes, more than -size %d", allQueues[kind], len(base), size)
	}

	data, err := json.Marshal(jobPayload(kind, v, chatContent(filler(room))))
	if err != nil {
		return nil, err
	}
	if len(data) != size {
		return nil, fmt.Errorf("a %s job is %d bytes, want %d", allQueues[kind], len(data), size)
	}
	return data, nil
}

// jobPayload returns the payload of job v of a kind. Every id has the
// same number of digits for v below 1,000,000, so all jobs of a kind have
// the same frame size.
func jobPayload(kind, v int, content string) any {
	id := int64(10_000_000 + v%1_000_000)
	switch allQueues[kind] {
	case push.PeerQueue:
		return push.PeerPayload{AppID: 7, Content: content, Receiver: id, Sender: id + 1}
	case push.GroupQueue:
		return push.GroupPayload{AppID: 7, Content: content, GroupID: 50_001, Receivers: []int64{id, id + 1, id + 2}, Sender: id + 3}
	case push.CustomerQueueV2:
		return push.CustomerPayloadV2{AppID: 7, Content: content, Receiver: id, ReceiverAppID: 7, Sender: id + 1, SenderAppID: 8}
	default:
		return push.SystemPayload{AppID: 7, Content: content, Receiver: id}
	}
}

// chatContent returns a text message as IM clients send it: a small JSON
// document, whose quotes the payload encoding escapes.
func chatContent(text string) string {
	return `{"text":"` + text + `"}`
}

// filler returns exactly n bytes of fillerText, padded with ASCII dots
// where the next character does not fit.
func filler(n int) string {
	var b strings.Builder
	for b.Len() < n {
		for _, r := range fillerText {
			if b.Len()+len(string(r)) > n {
				break
			}
			b.WriteRune(r)
		}
		if room := n - b.Len(); room < 3 {
			b.WriteString(strings.Repeat(".", room))
		}
	}
	return b.String()
}

// deleteQueues removes every queue the benchmark writes.
func deleteQueues(pool *redis.Pool) error {
	conn := pool.Get()
	defer conn.Close()
	args := make([]any, len(allQueues))
	for i, q := range allQueues {
		args[i] = q
	}
	_, err := conn.Do("DEL", args...)
	return err
}

// queueTotal returns the sum of the lengths of every queue.
func queueTotal(pool *redis.Pool) (int64, error) {
	conn := pool.Get()
	defer conn.Close()
	var total int64
	for _, q := range allQueues {
		n, err := redis.Int64(conn.Do("LLEN", q))
		if err != nil {
			return 0, fmt.Errorf("LLEN %s: %w", q, err)
		}
		total += n
	}
	return total, nil
}
