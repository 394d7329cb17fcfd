package main

import (
	"sync"
	"time"
)

// busyWork burns about us microseconds of CPU with a fixed number of multiply-adds, so a
// request costs the same CPU however loaded the machine is (a wall-clock spin would burn
// less when preempted). The rate is measured once, on first use. testapps/grpcserver,
// grpchttp and schedwait link this file (a symlink).
func busyWork(us int) uint64 {
	spinOnce.Do(measureSpin)
	return spin(us * spinPerMicrosecond)
}

var (
	spinOnce           sync.Once
	spinPerMicrosecond int
)

// spin is never inlined, so that the timed runs execute the very code requests do.
//
//go:noinline
func spin(n int) uint64 {
	x := uint64(1)
	for i := 0; i < n; i++ {
		x = x*6364136223846793005 + 1442695040888963407
	}
	return x
}

// measureSpin keeps the fastest of a few timed runs: the least disturbed by other load.
func measureSpin() {
	const n = 1 << 20
	best := time.Duration(1<<63 - 1)
	for i := 0; i < 5; i++ {
		start := time.Now()
		spin(n)
		if d := time.Since(start); d < best {
			best = d
		}
	}
	spinPerMicrosecond = int(float64(n) * float64(time.Microsecond) / float64(best))
	if spinPerMicrosecond < 1 {
		spinPerMicrosecond = 1
	}
}
