// Command hitloop calls a function that is never inlined (main.hit) -n times in a
// loop and prints how long one call took on average, as one JSON line:
//
//	{"calls": 1000000, "ns_per_call": 2.1}
//
// bench/calibrate.py runs it with and without an empty uprobe on main.hit: the
// difference is what one uprobe hit costs on this machine.
package main

import (
	"encoding/json"
	"flag"
	"log"
	"os"
	"time"
)

//go:noinline
func hit(x uint64) uint64 {
	return x*2862933555777941757 + 3037000493
}

func main() {
	calls := flag.Int("n", 1000000, "number of calls")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("hitloop: ")

	x := uint64(1)
	start := time.Now()
	for i := 0; i < *calls; i++ {
		x = hit(x)
	}
	elapsed := time.Since(start)
	out := map[string]interface{}{
		"calls":       *calls,
		"ns_per_call": float64(elapsed.Nanoseconds()) / float64(*calls),
		"result":      x, // keeps the loop from being optimised away
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		log.Fatal(err)
	}
}
