package push

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/gomodule/redigo/redis"
)

// Reasons in WriteError.Reason and Stats.FailedByReason that are not a
// Redis error code. An error reply from Redis gives its code as the
// reason, for example "WRONGTYPE" or "OOM".
const (
	ReasonConnection = "connection" // dial, read or write failed
	ReasonTimeout    = "timeout"    // an I/O, dial or write-timeout deadline passed
	ReasonPool       = "pool"       // the pool had no free connection
	ReasonProtocol   = "protocol"   // Redis sent a reply the library cannot map to the jobs
	ReasonCanceled   = "canceled"   // the context passed to PushQueue was canceled
	ReasonClosed     = "closed"     // Close's context ended before the jobs were written
)

// A WriteError reports jobs that a transaction did not write. Every job
// handed to the error handler comes with one.
type WriteError struct {
	// Command is the command that failed: "RPUSH" for a command of the
	// transaction, "MULTI" or "EXEC" for the whole transaction, "GET" when
	// no connection could be had, or "" for jobs Close gave up on.
	Command string

	// Queue is the list of a failed RPUSH. For other errors it lists the
	// queues of the jobs, separated by commas.
	Queue string

	Jobs      int    // number of jobs the error applies to
	Reason    string // a Redis error code, or one of the Reason constants
	Temporary bool   // whether the failure class is retried
	Attempts  int    // transactions tried for these jobs; 0 when none was

	// OutcomeUnknown is set when Redis may have applied the failed
	// command: the connection failed after EXEC was sent, or the reply
	// could not be read as the command's result. Failed jobs with it set
	// may be in Redis.
	OutcomeUnknown bool

	Err error // the underlying error
}

func (e *WriteError) Error() string {
	var b strings.Builder
	b.WriteString("push: ")
	if e.Command == "" {
		fmt.Fprintf(&b, "%d jobs not written before Close's context ended", e.Jobs)
	} else {
		fmt.Fprintf(&b, "%s %s (%d jobs", e.Command, e.Queue, e.Jobs)
		if e.Attempts > 1 {
			fmt.Fprintf(&b, ", %d attempts", e.Attempts)
		}
		b.WriteString(")")
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *WriteError) Unwrap() error { return e.Err }

var (
	// errExecNil is the error for a nil EXEC reply, which Redis sends when
	// it did not run the transaction.
	errExecNil = errors.New("EXEC returned nil: the transaction was not run")

	// errMalformedReply is the error for a reply of the wrong type or
	// length. Whether Redis applied the command is then unknown.
	errMalformedReply = errors.New("malformed reply")
)

// transientReplies are the Redis error codes that a later attempt can
// succeed past: the server is loading, read-only, out of memory, failing
// over or busy.
var transientReplies = map[string]bool{
	"LOADING":     true,
	"READONLY":    true,
	"MASTERDOWN":  true,
	"NOREPLICAS":  true,
	"TRYAGAIN":    true,
	"BUSY":        true,
	"CLUSTERDOWN": true,
	"OOM":         true,
	"MISCONF":     true,
	// The commands of a transaction discarded because of another command's
	// error were not at fault, so they are sent again.
	"EXECABORT": true,
}

// classify returns the reason for err and whether it is transient.
func classify(err error) (reason string, temporary bool) {
	var reply redis.Error
	if errors.As(err, &reply) {
		code, _, _ := strings.Cut(string(reply), " ")
		return code, transientReplies[code]
	}

	var netErr net.Error
	switch {
	case errors.Is(err, errExecNil):
		return "EXEC", true
	case errors.Is(err, errMalformedReply):
		return ReasonProtocol, false
	case errors.Is(err, redis.ErrPoolExhausted):
		return ReasonPool, true
	case errors.Is(err, context.Canceled):
		return ReasonCanceled, true
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return ReasonTimeout, true
	case errors.As(err, &netErr) && netErr.Timeout():
		return ReasonTimeout, true
	}
	return ReasonConnection, true
}

// newWriteError builds the WriteError of a command or transaction.
func newWriteError(command, queue string, jobs int, err error) *WriteError {
	reason, temporary := classify(err)
	return &WriteError{
		Command:        command,
		Queue:          queue,
		Jobs:           jobs,
		Reason:         reason,
		Temporary:      temporary,
		Attempts:       1,
		OutcomeUnknown: errors.Is(err, errMalformedReply),
		Err:            err,
	}
}
