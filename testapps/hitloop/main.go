// Command hitloop calls a function that is never inlined -n times in a loop and
// prints how long one call took on average, as one JSON line:
//
//	{"calls": 1000000, "ns_per_call": 2.1}
//
// -f hit (the default) calls main.hit, a leaf without a stack check, whose first
// instruction the kernel single-steps under a uprobe; -f checked calls main.checked,
// which begins with the usual stack check, whose branch the kernel emulates.
// bench/calibrate.py runs it with and without an empty uprobe (on main.hit's first
// instruction, on main.checked's branch): the differences are what one uprobe hit
// costs on this machine at either kind of site.
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

// checked calls hit, so it is no leaf and Go gives it a stack check.
//
//go:noinline
func checked(x uint64) uint64 {
	return hit(x) ^ x
}

func main() {
	calls := flag.Int("n", 1000000, "number of calls")
	function := flag.String("f", "hit", "the function to call: hit or checked")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("hitloop: ")

	call := hit
	switch *function {
	case "hit":
	case "checked":
		call = checked
	default:
		log.Fatalf("-f %s: not hit or checked", *function)
	}
	x := uint64(1)
	start := time.Now()
	for i := 0; i < *calls; i++ {
		x = call(x)
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
