package push_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/gomodule/redigo/redis"
	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
	"go.uber.org/goleak"

	"github.com/imkit/push"
)

// TestMain fails the run when any test leaves a goroutine behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newPool returns a redigo pool that dials addr with short timeouts, and
// closes it when the test ends.
func newPool(t testing.TB, addr string) *redis.Pool {
	t.Helper()
	pool := &redis.Pool{
		Dial: func() (redis.Conn, error) {
			return redis.Dial("tcp", addr,
				redis.DialConnectTimeout(time.Second),
				redis.DialReadTimeout(5*time.Second),
				redis.DialWriteTimeout(5*time.Second))
		},
		MaxIdle: 4,
	}
	t.Cleanup(func() { pool.Close() })
	return pool
}

// startMiniredis starts an embedded Redis and returns it with a pool.
func startMiniredis(t testing.TB) (*miniredis.Miniredis, *redis.Pool) {
	t.Helper()
	server := miniredis.RunT(t)
	return server, newPool(t, server.Addr())
}

// quietLogger returns a logger that keeps its entries for the test to
// inspect instead of printing them.
func quietLogger() (*logrus.Logger, *test.Hook) {
	logger, hook := test.NewNullLogger()
	logger.SetLevel(logrus.DebugLevel)
	return logger, hook
}

// newPublisher returns a Publisher that is closed when the test ends, if
// the test did not close it.
func newPublisher(t testing.TB, pool push.Pool, opts ...push.Option) *push.Publisher {
	t.Helper()
	p, err := push.NewPublisher(pool, opts...)
	if err != nil {
		t.Fatalf("NewPublisher: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = p.Close(ctx)
	})
	return p
}

// closePublisher closes p with a generous deadline and fails the test on
// an error.
func closePublisher(t testing.TB, p *push.Publisher) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, event string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, event)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// redisServer is a real redis-server process that a test started on a free
// loopback port.
type redisServer struct {
	t    testing.TB
	port int
	args []string

	mu  sync.Mutex
	cmd *exec.Cmd
}

// startRedisServer starts redis-server on 127.0.0.1 with persistence off
// and extra configuration args such as "--maxmemory", "1mb". It skips the
// test when redis-server is not installed, or fails it when
// PUSH_REQUIRE_REDIS=1. The server is killed when the test ends.
func startRedisServer(t testing.TB, args ...string) *redisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("PUSH_REQUIRE_REDIS") == "1" {
			t.Fatalf("redis-server is not installed and PUSH_REQUIRE_REDIS=1: %v", err)
		}
		t.Skip("redis-server is not installed; install it (apt-get install redis-server) or set PUSH_REQUIRE_REDIS=1 to make this a failure")
	}

	s := &redisServer{t: t, port: freePort(t), args: args}
	s.Start()
	t.Cleanup(s.Kill)
	return s
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Addr returns the server's host:port.
func (s *redisServer) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// Start starts the server on its port and waits until it replies to PING.
func (s *redisServer) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		s.t.Fatalf("redis-server on port %d is already running", s.port)
	}

	args := append([]string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
		"--loglevel", "warning",
	}, s.args...)
	cmd := exec.Command("redis-server", args...)
	cmd.Dir = s.t.TempDir()
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("starting redis-server: %v", err)
	}
	s.cmd = cmd

	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := redis.Dial("tcp", s.Addr(), redis.DialConnectTimeout(time.Second))
		if err == nil {
			_, err = conn.Do("PING")
			conn.Close()
			if err == nil {
				return
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("redis-server on port %d did not answer PING: %v", s.port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill stops the server with SIGKILL and waits for it to exit.
func (s *redisServer) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Do runs one command on a new connection and fails the test on an error.
func (s *redisServer) Do(cmd string, args ...any) any {
	s.t.Helper()
	reply, err := s.TryDo(cmd, args...)
	if err != nil {
		s.t.Fatalf("%s %v: %v", cmd, args, err)
	}
	return reply
}

// TryDo runs one command on a new connection and returns its error.
func (s *redisServer) TryDo(cmd string, args ...any) (any, error) {
	conn, err := redis.Dial("tcp", s.Addr(), redis.DialConnectTimeout(time.Second), redis.DialReadTimeout(5*time.Second))
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", s.Addr(), err)
	}
	defer conn.Close()
	return conn.Do(cmd, args...)
}
