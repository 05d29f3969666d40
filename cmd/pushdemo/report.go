package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/imkit/push"
)

// On a terminal the progress line is redrawn every progressRedraw.
// Elsewhere a line is printed each time the run passes another tenth,
// checked every progressTick, which is also when the heap is sampled.
const (
	progressTick   = 10 * time.Millisecond
	progressRedraw = 100 * time.Millisecond
)

// progress prints the state of the publish phase to out while it runs,
// and samples the Go heap for the peak that the final report shows.
type progress struct {
	out       io.Writer
	terminal  bool
	publisher *push.Publisher
	messages  int           // the -n target, or 0 with -duration
	duration  time.Duration // the -duration target, or 0
	start     time.Time

	lastTenth int
	lastDraw  time.Time
	heap      []metrics.Sample
	peakHeap  uint64

	stop chan struct{}
	done chan struct{}
}

func startProgress(out io.Writer, publisher *push.Publisher, cfg config, start time.Time) *progress {
	pr := &progress{
		out:       out,
		terminal:  isTerminal(out),
		publisher: publisher,
		messages:  cfg.messages,
		duration:  cfg.duration,
		start:     start,
		heap:      []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}},
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	go pr.run()
	return pr
}

func (pr *progress) run() {
	defer close(pr.done)
	ticker := time.NewTicker(progressTick)
	defer ticker.Stop()
	for {
		select {
		case <-pr.stop:
			return
		case <-ticker.C:
		}

		pr.sampleHeap()
		pr.update()
	}
}

// update redraws the line on a terminal, or prints it elsewhere when the
// run has passed another tenth.
func (pr *progress) update() {
	if pr.terminal {
		if time.Since(pr.lastDraw) >= progressRedraw {
			line, _ := pr.line()
			fmt.Fprintf(pr.out, "\r%s\x1b[K", line)
			pr.lastDraw = time.Now()
		}
		return
	}
	line, fraction := pr.line()
	if tenth := int(fraction * 10); tenth > pr.lastTenth && fraction < 1 {
		pr.lastTenth = tenth
		fmt.Fprintln(pr.out, line)
	}
}

// finish stops the updates and prints the final state on its own line.
func (pr *progress) finish() {
	close(pr.stop)
	<-pr.done
	pr.sampleHeap()
	line, _ := pr.line()
	if pr.terminal {
		fmt.Fprintf(pr.out, "\r%s\x1b[K\n", line)
	} else {
		fmt.Fprintln(pr.out, line)
	}
}

// line describes the run so far, and returns the fraction of it done.
func (pr *progress) line() (string, float64) {
	s := pr.publisher.Stats()
	handled := s.Published + s.Dropped + s.Invalid + s.Rejected
	elapsed := time.Since(pr.start)

	var fraction float64
	var done string
	if pr.duration > 0 {
		fraction = min(float64(elapsed)/float64(pr.duration), 1)
		done = fmt.Sprintf("%s of %s, %d messages", elapsed.Truncate(100*time.Millisecond), pr.duration, handled)
	} else {
		fraction = float64(handled) / float64(pr.messages)
		done = fmt.Sprintf("%d of %d messages", handled, pr.messages)
	}
	return fmt.Sprintf("published %3.0f%%  %s: %d written, %d buffered, %d dropped, %d failed, heap %s",
		100*fraction, done, s.Written, s.Buffered, s.Dropped, s.Failed, mebibytes(pr.heap[0].Value.Uint64())), fraction
}

func (pr *progress) sampleHeap() {
	metrics.Read(pr.heap)
	pr.peakHeap = max(pr.peakHeap, pr.heap[0].Value.Uint64())
}

// isTerminal reports whether w is a character device, such as a terminal,
// where the progress line can be redrawn in place.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}

// queueRow is one line of the queue table of the report.
type queueRow struct {
	queue    string
	accepted uint64
	failed   uint64 // jobs the error handler received
	before   int64
	after    int64
	check    entryCheck
	result   string
}

func printQueues(w io.Writer, rows []queueRow, lengthsKnown bool) {
	width := len("queue")
	for _, r := range rows {
		width = max(width, len(r.queue))
	}

	fmt.Fprintln(w, "\nQueues (accepted jobs, jobs handed to the error handler, LLEN before and after the run):")
	fmt.Fprintf(w, "  %-*s %9s %7s %12s %11s %12s %8s  %s\n",
		width, "queue", "accepted", "failed", "LLEN before", "LLEN after", "new entries", "checked", "result")
	for _, r := range rows {
		before, after, added := "?", "?", "?"
		if lengthsKnown {
			before = strconv.FormatInt(r.before, 10)
			after = strconv.FormatInt(r.after, 10)
			added = strconv.FormatInt(r.after-r.before, 10)
		}
		fmt.Fprintf(w, "  %-*s %9d %7d %12s %11s %12s %8d  %s\n",
			width, r.queue, r.accepted, r.failed, before, after, added, r.check.checked, r.result)
	}
	for _, r := range rows {
		for _, problem := range r.check.problems {
			fmt.Fprintf(w, "  %s: %s\n", r.queue, problem)
		}
	}
}

func printStats(w io.Writer, s push.Stats) {
	fmt.Fprintln(w, "\nStats:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fields := []struct {
		name  string
		value uint64
		note  string
	}{
		{"Published", s.Published, "jobs accepted"},
		{"Dropped", s.Dropped, "rejected with ErrQueueFull"},
		{"Invalid", s.Invalid, "rejected as invalid"},
		{"TooLarge", s.TooLarge, "rejected with ErrPayloadTooLarge, also in Invalid"},
		{"Rejected", s.Rejected, "rejected with ErrClosed"},
		{"Written", s.Written, "accepted jobs in Redis"},
		{"Failed", s.Failed, "accepted jobs handed to the error handler"},
		{"Batches", s.Batches, "transactions sent, retries included"},
		{"Retries", s.Retries, "attempts made again after transient errors"},
		{"Ambiguous", s.Ambiguous, "jobs sent again after an unknown outcome"},
		{"SlowWrites", s.SlowWrites, "transactions over the slow-write threshold"},
		{"Buffered", s.Buffered, "accepted jobs not yet written or failed"},
		{"BufferedBytes", s.BufferedBytes, "payload bytes of the Buffered jobs"},
	}
	for _, f := range fields {
		fmt.Fprintf(tw, "  %s\t%d\t%s\n", f.name, f.value, f.note)
	}
	// The last cell of a line is not part of a tabwriter column, so a long
	// list of reasons does not widen the value column.
	fmt.Fprintf(tw, "  FailedByReason\t%s\n", failedByReason(s.FailedByReason))
	tw.Flush()
}

// failedByReason formats the map sorted by reason, or "none".
func failedByReason(byReason map[string]uint64) string {
	if len(byReason) == 0 {
		return "none"
	}
	reasons := make([]string, 0, len(byReason))
	for reason, n := range byReason {
		reasons = append(reasons, fmt.Sprintf("%s: %d", reason, n))
	}
	slices.Sort(reasons)
	return strings.Join(reasons, ", ")
}

// rate returns n per second of d.
func rate(n uint64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

func mebibytes(n uint64) string {
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

// peakRSS returns the peak resident set size of the process from
// /proc/self/status, which only Linux provides.
func peakRSS() (uint64, bool) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		value, found := strings.CutPrefix(scanner.Text(), "VmHWM:")
		if !found {
			continue
		}
		kib, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		return kib << 10, err == nil
	}
	return 0, false
}
