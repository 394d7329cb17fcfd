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
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type headerList []string

func (h *headerList) String() string     { return strings.Join(*h, ", ") }
func (h *headerList) Set(v string) error { *h = append(*h, v); return nil }

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
	hdr := http.Header{}
	for _, h := range headers {
		k, v, ok := strings.Cut(h, ":")
		if !ok {
			log.Fatalf("bad -header %q, want \"K: V\"", h)
		}
		hdr.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = *concurrency
	client := &http.Client{Transport: tr, Timeout: 60 * time.Second}

	var ok, failed int64
	jobs := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < *concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				// In-flight requests are not cancelled by a signal: they finish
				// (or hit the client timeout) and are counted normally.
				status, err := doRequest(context.Background(), client, *method, *url, *body, hdr)
				if err != nil {
					atomic.AddInt64(&failed, 1)
					if *verbose {
						fmt.Printf("request %d: error: %v\n", i, err)
					}
					continue
				}
				atomic.AddInt64(&ok, 1)
				if *verbose {
					fmt.Printf("request %d: %d\n", i, status)
				}
			}
		}()
	}

dispatch:
	for i := 0; i < *n; i++ {
		if i > 0 && *interval > 0 {
			select {
			case <-time.After(*interval):
			case <-ctx.Done():
				break dispatch
			}
		}
		select {
		case jobs <- i:
		case <-ctx.Done():
			break dispatch
		}
	}
	close(jobs)
	wg.Wait()
	tr.CloseIdleConnections()

	fmt.Printf("DONE ok=%d failed=%d\n", ok, failed)
	if failed > 0 {
		os.Exit(1)
	}
}

func doRequest(ctx context.Context, c *http.Client, method, url, body string, hdr http.Header) (int, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, err
	}
	for k, vs := range hdr {
		for _, v := range vs {
			if k == "Host" {
				req.Host = v // Go ignores a Host entry in req.Header
				continue
			}
			req.Header.Add(k, v)
		}
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	// Drain so the connection goes back to the pool.
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, err
}
