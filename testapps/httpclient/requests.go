package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// The request loop of the HTTP clients: httpclient's, and testapps/h2's call role, which
// links this file (a symlink).

// headerList collects the values of a repeatable "Name: value" flag.
type headerList []string

func (h *headerList) String() string     { return strings.Join(*h, ", ") }
func (h *headerList) Set(v string) error { *h = append(*h, v); return nil }

// header parses the list into a Header; for an entry without a colon it returns nil and
// that entry.
func (h headerList) header() (hdr http.Header, bad string) {
	hdr = http.Header{}
	for _, e := range h {
		k, v, ok := strings.Cut(e, ":")
		if !ok {
			return nil, e
		}
		hdr.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	return hdr, ""
}

// runRequests calls do(0) to do(n-1) on concurrency goroutines, starting one at most every
// interval, and returns once they all have returned. When ctx is done no new call starts;
// the calls in flight are not cancelled by it: they finish and are counted normally.
func runRequests(ctx context.Context, n, concurrency int, interval time.Duration, do func(i int)) {
	jobs := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				do(i)
			}
		}()
	}

dispatch:
	for i := 0; i < n; i++ {
		if i > 0 && interval > 0 {
			select {
			case <-time.After(interval):
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
}

// doRequest sends one request with the extra headers hdr (a "Host" entry sets the request's
// Host) and copies the response body to sink, all of it, so that the connection (or HTTP/2
// stream) is done with. It returns the status code and the response's Proto.
func doRequest(ctx context.Context, c *http.Client, method, url, body string, hdr http.Header, sink io.Writer) (int, string, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, "", err
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
		return 0, "", err
	}
	_, err = io.Copy(sink, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Proto, err
}
