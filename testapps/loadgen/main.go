// Command loadgen is the load generator of gotrace's benchmark (bench/): it sends
// requests to one HTTP URL (-url, keep-alive) or one unary method of grpcserver's
// demo.Echo service (-grpc ADDR -method NAME -value V), over -conns connections
// (one worker each), at a fixed total rate (-rate) or, with -rate 0, as fast as
// the workers can, for -duration. It prints one JSON line:
//
//	{"requests": N, "errors": E, "seconds": S, "rps": R, "p50_us": X, "p99_us": Y}
//
// At a fixed rate each worker's requests are due at regular instants and latency is
// measured from the instant a request was due, so a server falling behind shows in
// the percentiles instead of silently lowering the rate.
//
// With -stdin it starts sending at the first line it reads on stdin and, once it has
// printed its result, exits only when stdin is closed: so that a tracer can attach to it
// by pid before the load, and read its last spans before it exits.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/golang/protobuf/ptypes/wrappers"
	"google.golang.org/grpc"
)

// caller sends one request and reports whether it succeeded.
type caller func() error

func httpCaller(url string) (caller, func()) {
	// One transport per worker: exactly one keep-alive connection each.
	tr := &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	call := func() error {
		resp, err := client.Get(url)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		return err
	}
	return call, tr.CloseIdleConnections
}

func grpcCaller(addr, method, value string) (caller, func()) {
	conn, err := grpc.Dial(addr, grpc.WithInsecure())
	if err != nil {
		log.Fatal(err)
	}
	req := &wrappers.StringValue{Value: value}
	call := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return conn.Invoke(ctx, method, req, new(wrappers.StringValue))
	}
	return call, func() { conn.Close() }
}

type worker struct {
	latencies []time.Duration
	errors    int
}

// run sends requests until the deadline: every interval from first (fixed rate), or
// back to back when interval is 0.
func (w *worker) run(call caller, first time.Time, interval time.Duration, deadline time.Time) {
	due := first
	for {
		if interval > 0 {
			if !due.Before(deadline) {
				return
			}
			if wait := time.Until(due); wait > 0 {
				time.Sleep(wait)
			}
		} else {
			due = time.Now()
			if !due.Before(deadline) {
				return
			}
		}
		if err := call(); err != nil {
			w.errors++
		}
		w.latencies = append(w.latencies, time.Since(due))
		due = due.Add(interval)
	}
}

func percentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.5) - 1 // nearest rank
	if i < 0 {
		i = 0
	}
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	return float64(sorted[i].Nanoseconds()) / 1000
}

func main() {
	url := flag.String("url", "", "HTTP URL to GET")
	grpcAddr := flag.String("grpc", "", "grpcserver address host:port (instead of -url)")
	method := flag.String("method", "/demo.Echo/Say", "gRPC method")
	value := flag.String("value", "bench", "the StringValue sent to the gRPC method")
	rate := flag.Float64("rate", 0, "requests per second in total (0: as fast as possible)")
	conns := flag.Int("conns", 4, "connections, one worker each")
	duration := flag.Duration("duration", 5*time.Second, "how long to send")
	waitStdin := flag.Bool("stdin", false,
		"start at the first line on stdin; after the result, exit when stdin closes")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("loadgen: ")
	if (*url == "") == (*grpcAddr == "") {
		log.Fatal("give exactly one of -url and -grpc")
	}
	if *conns < 1 {
		log.Fatal("-conns must be at least 1")
	}

	var interval time.Duration
	if *rate > 0 {
		interval = time.Duration(float64(*conns) / *rate * float64(time.Second))
	}
	workers := make([]worker, *conns)
	stdin := bufio.NewReader(os.Stdin)
	if *waitStdin {
		if _, err := stdin.ReadString('\n'); err != nil {
			log.Fatal("stdin closed before the start")
		}
	}
	start := time.Now()
	deadline := start.Add(*duration)
	var wg sync.WaitGroup
	newCaller := func() (caller, func()) { return httpCaller(*url) }
	if *grpcAddr != "" {
		newCaller = func() (caller, func()) { return grpcCaller(*grpcAddr, *method, *value) }
	}
	for i := range workers {
		call, closeFn := newCaller()
		wg.Add(1)
		// Workers are spread evenly over one interval.
		first := start.Add(interval * time.Duration(i) / time.Duration(*conns))
		go func(w *worker) {
			defer wg.Done()
			defer closeFn()
			w.run(call, first, interval, deadline)
		}(&workers[i])
	}
	wg.Wait()
	seconds := time.Since(start).Seconds()

	var all []time.Duration
	errors := 0
	for _, w := range workers {
		all = append(all, w.latencies...)
		errors += w.errors
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	out := map[string]interface{}{
		"requests": len(all),
		"errors":   errors,
		"seconds":  seconds,
		"rps":      float64(len(all)) / seconds,
		"p50_us":   percentile(all, 0.50),
		"p99_us":   percentile(all, 0.99),
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		log.Fatal(err)
	}
	if *waitStdin {
		_, _ = io.Copy(io.Discard, stdin)
	}
}
