package push_test

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/alicebob/miniredis/v2"
	"github.com/gomodule/redigo/redis"

	"github.com/imkit/push"
)

// The examples run against miniredis, an in-process Redis server, so that
// they need no installed server. In production the pool dials your Redis.

func ExampleNewPublisher() {
	server, err := miniredis.Run()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer server.Close()

	pool := &redis.Pool{
		Dial:    func() (redis.Conn, error) { return redis.Dial("tcp", server.Addr()) },
		MaxIdle: 2,
	}
	defer pool.Close()

	publisher, err := push.NewPublisher(pool)
	if err != nil {
		fmt.Println(err)
		return
	}

	// The message handler calls this when the receiver is offline. It
	// only buffers the job.
	err = publisher.PublishPeerMessage(7, &push.PeerMessage{
		Sender:   1001,
		Receiver: 1002,
		Content:  `{"text":"hi"}`,
	})
	if err != nil {
		fmt.Println(err)
	}

	// Close writes every buffered job before it returns.
	if err := publisher.Close(context.Background()); err != nil {
		fmt.Println(err)
	}

	conn := pool.Get()
	defer conn.Close()
	entries, err := redis.Strings(conn.Do("LRANGE", push.PeerQueue, 0, -1))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, entry := range entries {
		fmt.Println(push.PeerQueue, entry)
	}
	// Output:
	// push_queue {"appid":7,"content":"{\"text\":\"hi\"}","receiver":1002,"sender":1001}
}

func ExamplePublisher_PushChan() {
	server, err := miniredis.Run()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer server.Close()

	pool := &redis.Pool{
		Dial:    func() (redis.Conn, error) { return redis.Dial("tcp", server.Addr()) },
		MaxIdle: 2,
	}
	defer pool.Close()

	publisher, err := push.NewPublisher(pool)
	if err != nil {
		fmt.Println(err)
		return
	}

	// PushChan appends any payload to any list, in the order of the calls.
	for _, payload := range []string{`{"event":"login","uid":1002}`, `{"event":"logout","uid":1002}`} {
		if err := publisher.PushChan("audit_queue", []byte(payload)); err != nil {
			fmt.Println(err)
		}
	}
	if err := publisher.Close(context.Background()); err != nil {
		fmt.Println(err)
	}

	conn := pool.Get()
	defer conn.Close()
	entries, err := redis.Strings(conn.Do("LRANGE", "audit_queue", 0, -1))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, entry := range entries {
		fmt.Println(entry)
	}
	fmt.Println("written:", publisher.Stats().Written)
	// Output:
	// {"event":"login","uid":1002}
	// {"event":"logout","uid":1002}
	// written: 2
}

func ExamplePeerPayload() {
	server, err := miniredis.Run()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer server.Close()

	pool := &redis.Pool{
		Dial:    func() (redis.Conn, error) { return redis.Dial("tcp", server.Addr()) },
		MaxIdle: 2,
	}
	defer pool.Close()

	publisher, err := push.NewPublisher(pool)
	if err != nil {
		fmt.Println(err)
		return
	}
	err = publisher.PublishPeerMessage(7, &push.PeerMessage{
		Sender:   1001,
		Receiver: 1002,
		Content:  `{"text":"see you at 5"}`,
	})
	if err != nil {
		fmt.Println(err)
	}
	if err := publisher.Close(context.Background()); err != nil {
		fmt.Println(err)
	}

	// The push service pops an entry and decodes it.
	conn := pool.Get()
	defer conn.Close()
	entry, err := redis.Bytes(conn.Do("LPOP", push.PeerQueue))
	if err != nil {
		fmt.Println(err)
		return
	}
	var payload push.PeerPayload
	if err := json.Unmarshal(entry, &payload); err != nil {
		fmt.Println(err)
		return
	}
	var content struct {
		Text string `json:"text"`
	}
	if err := json.Unmarshal([]byte(payload.Content), &content); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("app %d: %d -> %d: %s\n", payload.AppID, payload.Sender, payload.Receiver, content.Text)
	// Output:
	// app 7: 1001 -> 1002: see you at 5
}
