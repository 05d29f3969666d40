package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/imkit/push"
)

const (
	// redisCheckTimeout bounds each LLEN and LRANGE round of the checks.
	redisCheckTimeout = 5 * time.Second
	// rangeChunk is the number of entries read with one LRANGE.
	rangeChunk = 5000
	// maxCheckedEntries is the number of new entries checked per queue.
	// Past it, the check reads chunks spread evenly over the new entries.
	maxCheckedEntries = 200_000
	// maxProblemsShown is the number of bad entries described per queue.
	maxProblemsShown = 3
)

// queueLengths returns the LLEN of every queue, in the order of queues.
func queueLengths(pool *redis.Pool, queues []queueInfo) ([]int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), redisCheckTimeout)
	defer cancel()
	conn, err := pool.GetContext(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()

	for _, q := range queues {
		if err := conn.Send("LLEN", q.name); err != nil {
			return nil, err
		}
	}
	replies, err := redis.Values(redis.DoContext(conn, ctx, ""))
	if err != nil {
		return nil, err
	}

	lengths := make([]int64, len(queues))
	for i, reply := range replies {
		n, err := redis.Int64(reply, nil)
		if err != nil {
			return nil, fmt.Errorf("LLEN %s: %w", queues[i].name, err)
		}
		lengths[i] = n
	}
	return lengths, nil
}

// entryCheck is the result of checking the new entries of one queue.
type entryCheck struct {
	checked  int
	bad      int
	problems []string // the first maxProblemsShown bad entries
}

// checkEntries reads the entries from index from up to, not including,
// index to of queue q and checks that each decodes into the payload type
// of the queue.
func checkEntries(pool *redis.Pool, q queueInfo, from, to int64) (entryCheck, error) {
	var result entryCheck
	for _, lo := range chunkStarts(from, to) {
		hi := min(lo+rangeChunk, to) - 1 // LRANGE includes its end
		entries, err := readRange(pool, q.name, lo, hi)
		if err != nil {
			return result, err
		}
		for i, entry := range entries {
			result.checked++
			if err := checkEntry(q, entry); err != nil {
				result.bad++
				if len(result.problems) < maxProblemsShown {
					result.problems = append(result.problems,
						fmt.Sprintf("entry %d: %v: %.200s", lo+int64(i), err, entry))
				}
			}
		}
	}
	return result, nil
}

// chunkStarts returns the first index of each LRANGE chunk to read, all of
// them when the range has at most maxCheckedEntries entries.
func chunkStarts(from, to int64) []int64 {
	chunks := (to - from + rangeChunk - 1) / rangeChunk
	limit := int64(maxCheckedEntries / rangeChunk)
	var starts []int64
	if chunks <= limit {
		for lo := from; lo < to; lo += rangeChunk {
			starts = append(starts, lo)
		}
		return starts
	}
	for i := range limit {
		starts = append(starts, from+i*chunks/limit*rangeChunk)
	}
	return starts
}

func readRange(pool *redis.Pool, queue string, lo, hi int64) ([][]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), redisCheckTimeout)
	defer cancel()
	conn, err := pool.GetContext(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	entries, err := redis.ByteSlices(redis.DoContext(conn, ctx, "LRANGE", queue, lo, hi))
	if err != nil {
		return nil, fmt.Errorf("LRANGE %s %d %d: %w", queue, lo, hi, err)
	}
	return entries, nil
}

// checkEntry decodes one list entry into the payload type of q, rejects
// unknown keys and trailing data, checks that json.Marshal of the decoded
// value gives back the same bytes, and checks the fields the demo always
// sets.
func checkEntry(q queueInfo, entry []byte) error {
	var payload any
	var appid int64
	var fields error
	switch q.base {
	case push.PeerQueue:
		var p push.PeerPayload
		if err := decodeStrict(entry, &p); err != nil {
			return err
		}
		payload, appid = &p, p.AppID
		fields = errors.Join(positive("sender", p.Sender), positive("receiver", p.Receiver), jsonContent(p.Content))

	case push.GroupQueue:
		var p push.GroupPayload
		if err := decodeStrict(entry, &p); err != nil {
			return err
		}
		payload, appid = &p, p.AppID
		fields = errors.Join(positive("sender", p.Sender), positive("group_id", p.GroupID),
			groupReceivers(p.Receivers), jsonContent(p.Content))

	case push.CustomerQueue:
		var p push.CustomerPayload
		if err := decodeStrict(entry, &p); err != nil {
			return err
		}
		payload, appid = &p, p.AppID
		fields = errors.Join(positive("receiver", p.Receiver), positive("customer", p.CustomerID),
			positive("seller", p.SellerID), positive("store", p.StoreID), customerCommand(p), jsonContent(p.Content))

	case push.CustomerQueueV2:
		var p push.CustomerPayloadV2
		if err := decodeStrict(entry, &p); err != nil {
			return err
		}
		payload, appid = &p, p.AppID
		fields = errors.Join(positive("sender", p.Sender), positive("receiver", p.Receiver),
			positive("sender_appid", p.SenderAppID), sameApp("receiver_appid", p.ReceiverAppID, p.AppID),
			jsonContent(p.Content))

	case push.SystemQueue:
		var p push.SystemPayload
		if err := decodeStrict(entry, &p); err != nil {
			return err
		}
		payload, appid = &p, p.AppID
		fields = errors.Join(positive("receiver", p.Receiver), jsonContent(p.Content))

	default:
		return fmt.Errorf("no payload type for queue %s", q.name)
	}

	again, err := json.Marshal(payload)
	if err != nil {
		return fmt.Errorf("json.Marshal of the decoded %T failed: %w", payload, err)
	}
	if !bytes.Equal(again, entry) {
		return fmt.Errorf("json.Marshal of the decoded %T gives different bytes: %.200s", payload, again)
	}
	return errors.Join(fields, appRoute(q, appid))
}

// decodeStrict decodes entry into v and fails on unknown keys and on
// anything after the JSON object.
func decodeStrict(entry []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(entry))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("does not decode into %T: %w", v, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("has data after the JSON object")
	}
	return nil
}

// appRoute checks that a job sits in the queue that its app id selects.
func appRoute(q queueInfo, appid int64) error {
	perAppBase := q.base == push.PeerQueue || q.base == push.GroupQueue || q.base == push.CustomerQueueV2
	switch {
	case appid <= 0:
		return fmt.Errorf("appid is %d, want a positive id", appid)
	case q.romApp != 0 && appid != q.romApp:
		return fmt.Errorf("appid %d in the per-app queue of app %d", appid, q.romApp)
	case q.romApp == 0 && perAppBase && slices.Contains(romApps, appid):
		return fmt.Errorf("appid %d is a ROM app, so its job belongs in %s", appid, romQueueName(q.base, appid))
	}
	return nil
}

func positive(field string, v int64) error {
	if v <= 0 {
		return fmt.Errorf("%s is %d, want a positive id", field, v)
	}
	return nil
}

func sameApp(field string, v, appid int64) error {
	if v != appid {
		return fmt.Errorf("%s is %d, want the job's appid %d", field, v, appid)
	}
	return nil
}

func groupReceivers(receivers []int64) error {
	if n := len(receivers); n < minGroupReceivers || n > maxGroupReceivers {
		return fmt.Errorf("the group has %d receivers, want %d to %d", n, minGroupReceivers, maxGroupReceivers)
	}
	for _, r := range receivers {
		if err := positive("a receiver", r); err != nil {
			return err
		}
	}
	return nil
}

func customerCommand(p push.CustomerPayload) error {
	switch {
	case p.Command == commandCustomer && p.Receiver == p.SellerID:
		return nil
	case p.Command == commandCustomerSupport && p.Receiver == p.CustomerID:
		return nil
	}
	return fmt.Errorf("command %d with receiver %d, seller %d and customer %d", p.Command, p.Receiver, p.SellerID, p.CustomerID)
}

// jsonContent checks that a message body is the JSON object the demo sent.
func jsonContent(content string) error {
	var body map[string]any
	if err := json.Unmarshal([]byte(content), &body); err != nil {
		return fmt.Errorf("content is not a JSON object: %w", err)
	}
	return nil
}
