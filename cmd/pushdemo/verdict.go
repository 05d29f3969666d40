package main

import (
	"fmt"
	"time"

	"github.com/imkit/push"
)

// report checks the queues after Close, prints the report, and returns
// the exit code. before is nil when the queue lengths could not be read
// before the run.
func (d *demo) report(publisher *push.Publisher, before []int64, outcome publishOutcome) int {
	stats := publisher.Stats()
	var problems []string
	fail := func(format string, args ...any) {
		problems = append(problems, fmt.Sprintf(format, args...))
	}

	if outcome.closeErr != nil {
		fmt.Fprintf(d.out, "Close returned after %v: %v\n", roundDuration(outcome.closed.Sub(outcome.published)), outcome.closeErr)
	} else {
		fmt.Fprintf(d.out, "Close returned after %v with every accepted job written.\n", roundDuration(outcome.closed.Sub(outcome.published)))
	}

	accepted := make([]uint64, len(d.queues.all))
	var minGroup, maxGroup int
	for _, g := range outcome.generators {
		for i, n := range g.accepted {
			accepted[i] += n
		}
		if g.minGroup > 0 && (minGroup == 0 || g.minGroup < minGroup) {
			minGroup = g.minGroup
		}
		maxGroup = max(maxGroup, g.maxGroup)
		if g.firstError != nil {
			fail("a publish returned an unexpected error: %v", g.firstError)
		}
	}

	after, lengthsKnown := d.lengthsAfter(before, fail)
	rows := make([]queueRow, len(d.queues.all))
	var totalAccepted, totalFailed, totalAdded, totalChecked, extra uint64
	for i, q := range d.queues.all {
		row := queueRow{queue: q.name, accepted: accepted[i], failed: d.failures.count(q.name)}
		totalAccepted += row.accepted
		totalFailed += row.failed
		if lengthsKnown {
			row.before, row.after = before[i], after[i]
			row.result, extra = d.compareQueue(q, &row, fail, extra)
			totalAdded += uint64(max(row.after-row.before, 0))
			totalChecked += uint64(row.check.checked)
		}
		rows[i] = row
	}

	d.checkCounts(stats, totalAccepted, totalFailed, extra, fail)

	printQueues(d.out, rows, lengthsKnown)
	printStats(d.out, stats)
	d.printFigures(stats, outcome, minGroup, maxGroup)

	if len(problems) > 0 {
		fmt.Fprintln(d.out, "\nFAIL:")
		for _, p := range problems {
			fmt.Fprintf(d.out, "  - %s\n", p)
		}
		return exitFailed
	}
	checked := fmt.Sprintf("all %d new entries decode", totalChecked)
	if totalChecked < totalAdded {
		checked = fmt.Sprintf("all %d checked entries of the %d new ones decode", totalChecked, totalAdded)
	}
	fmt.Fprintf(d.out, "\nOK: all %d accepted jobs are in Redis, and %s into their payload types.\n", totalAccepted, checked)
	return exitOK
}

// lengthsAfter reads the queue lengths after the run. It reports false when
// they or the lengths before the run are unknown.
func (d *demo) lengthsAfter(before []int64, fail func(string, ...any)) ([]int64, bool) {
	if before == nil {
		fail("the queues were not checked: %s did not respond before the run", d.target)
		return nil, false
	}
	after, err := queueLengths(d.pool, d.queues.all)
	if err != nil {
		fail("the queues were not checked: reading their lengths from %s after the run failed: %v", d.target, err)
		return nil, false
	}
	return after, true
}

// compareQueue compares the growth of one queue with its accepted jobs
// and checks its new entries. It returns the result column and the new
// total of entries beyond the accepted jobs.
func (d *demo) compareQueue(q queueInfo, row *queueRow, fail func(string, ...any), extra uint64) (string, uint64) {
	added := row.after - row.before
	result := "ok"
	switch {
	case added < 0:
		result = "shrank"
		fail("%s shrank from %d to %d entries during the run: another client pops it, so the check cannot work",
			q.name, row.before, row.after)
	case uint64(added) < row.accepted:
		missing := row.accepted - uint64(added)
		result = fmt.Sprintf("%d missing", missing)
		hint := ""
		if d.cfg.addr != "" && missing > row.failed {
			hint = "; if another client pops this queue, or Redis lost its data in a restart without persistence, the check cannot work"
		}
		fail("%s is missing %d of its %d accepted jobs (%d were handed to the error handler%s)",
			q.name, missing, row.accepted, row.failed, hint)
	case uint64(added) > row.accepted:
		result = fmt.Sprintf("%d extra", uint64(added)-row.accepted)
		extra += uint64(added) - row.accepted
	}

	if added > 0 {
		check, err := checkEntries(d.pool, q, row.before, row.after)
		row.check = check
		switch {
		case err != nil:
			fail("checking the new entries of %s failed: %v", q.name, err)
		case check.bad > 0:
			result += fmt.Sprintf(", %d bad", check.bad)
			fail("%s: %d of %d checked entries are not valid %s payloads", q.name, check.bad, check.checked, payloadName(q))
		}
	}
	return result, extra
}

// checkCounts compares the demo's own counts with the Stats.
func (d *demo) checkCounts(stats push.Stats, accepted, failed, extra uint64, fail func(string, ...any)) {
	if accepted != stats.Published {
		fail("the publishing goroutines counted %d accepted jobs, but Stats.Published is %d", accepted, stats.Published)
	}
	if failed != stats.Failed {
		fail("the error handler received %d jobs, but Stats.Failed is %d", failed, stats.Failed)
	}
	if stats.Failed > 0 {
		fail("%d accepted jobs were not written and were handed to the error handler (see FailedByReason)", stats.Failed)
	}
	if stats.Buffered != 0 || stats.BufferedBytes != 0 {
		fail("after Close, Stats.Buffered is %d and Stats.BufferedBytes is %d, want 0", stats.Buffered, stats.BufferedBytes)
	}
	if stats.Published != stats.Written+stats.Failed {
		fail("Stats.Published (%d) is not Written (%d) plus Failed (%d)", stats.Published, stats.Written, stats.Failed)
	}
	if extra > stats.Ambiguous {
		fail("the growth of the queues exceeds their accepted jobs by %d, more than the %d jobs resent after an unknown outcome (Stats.Ambiguous), so another client wrote to them",
			extra, stats.Ambiguous)
	}
}

func (d *demo) printFigures(stats push.Stats, outcome publishOutcome, minGroup, maxGroup int) {
	handled := stats.Published + stats.Dropped + stats.Invalid + stats.Rejected
	publishing := outcome.published.Sub(outcome.start)
	total := outcome.closed.Sub(outcome.start)
	fmt.Fprintln(d.out)
	fmt.Fprintf(d.out, "Throughput: %d jobs written in %v, %.0f jobs/s from the first publish to the return of Close.\n",
		stats.Written, roundDuration(total), rate(stats.Written, total))
	fmt.Fprintf(d.out, "Publishing: %d messages in %v, %.0f messages/s.\n",
		handled, roundDuration(publishing), rate(handled, publishing))
	if maxGroup > 0 {
		fmt.Fprintf(d.out, "Group messages had %d to %d receivers.\n", minGroup, maxGroup)
	}

	memory := "peak Go heap " + mebibytes(outcome.peakHeap) + " (sampled every " + progressTick.String() + ")"
	if rss, ok := peakRSS(); ok {
		memory += ", peak RSS " + mebibytes(rss)
		if d.cfg.addr == "" {
			memory += " (the embedded miniredis included)"
		}
	}
	fmt.Fprintf(d.out, "Memory: %s.\n", memory)

	if stats.Dropped > 0 {
		fmt.Fprintf(d.out, "Dropped: %d jobs got ErrQueueFull because the buffer stayed full for longer than the %v enqueue timeout. They were never accepted, so the check does not expect them in Redis.\n",
			stats.Dropped, enqueueTimeout)
	}
	if stats.Ambiguous > 0 {
		fmt.Fprintf(d.out, "Ambiguous: %d jobs were sent again after a connection broke once EXEC was sent, so some may be in Redis twice.\n",
			stats.Ambiguous)
	}
}

func payloadName(q queueInfo) string {
	switch q.base {
	case push.PeerQueue:
		return "push.PeerPayload"
	case push.GroupQueue:
		return "push.GroupPayload"
	case push.CustomerQueue:
		return "push.CustomerPayload"
	case push.CustomerQueueV2:
		return "push.CustomerPayloadV2"
	}
	return "push.SystemPayload"
}

func roundDuration(d time.Duration) time.Duration {
	return d.Round(time.Millisecond)
}
