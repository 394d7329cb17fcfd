// Command httpclient sends a number of HTTP requests to one URL through a
// single shared http.Client (keep-alive on), as a tracing target for
// gotrace's tests. It prints one final line
//
//	DONE ok=<n> failed=<n>
//
// where "failed" counts transport-level errors only (any HTTP status is a
// response, hence ok), and exits 1 if anything failed. SIGTERM/SIGINT stop
// sending new requests; the DONE line is still printed.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	url := flag.String("url", "", "URL to request (required)")
	n := flag.Int("n", 10, "number of requests")
	interval := flag.Duration("interval", 0, "pause between starting two requests")
	concurrency := flag.Int("concurrency", 1, "number of requests in flight at once")
	method := flag.String("method", http.MethodGet, "HTTP method")
	body := flag.String("body", "", "request body (for POST/PUT)")
	verbose := flag.Bool("v", false, "print one line per request")
	var headers headerList
	flag.Var(&headers, "header", `extra request header "K: V" (repeatable)`)
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("httpclient: ")
	if *url == "" {
		log.Fatal("-url is required")
	}
	if *concurrency < 1 {
		*concurrency = 1
	}
	hdr, bad := headers.header()
	if hdr == nil {
		log.Fatalf("bad -header %q, want \"K: V\"", bad)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = *concurrency
	client := &http.Client{Transport: tr, Timeout: 60 * time.Second}

	var ok, failed int64
	runRequests(ctx, *n, *concurrency, *interval, func(i int) {
		status, _, err := doRequest(context.Background(), client, *method, *url, *body, hdr, io.Discard)
		if err != nil {
			atomic.AddInt64(&failed, 1)
			if *verbose {
				fmt.Printf("request %d: error: %v\n", i, err)
			}
			return
		}
		atomic.AddInt64(&ok, 1)
		if *verbose {
			fmt.Printf("request %d: %d\n", i, status)
		}
	})
	tr.CloseIdleConnections()

	fmt.Printf("DONE ok=%d failed=%d\n", ok, failed)
	if failed > 0 {
		os.Exit(1)
	}
}
