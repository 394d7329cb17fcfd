package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/http2"
)

// dialed counts the TCP connections the client opened (net.Dialer.Control runs once per
// socket), without wrapping the connections.
var dialed int64

func call(args []string) {
	fs := flag.NewFlagSet("call", flag.ExitOnError)
	mode := fs.String("mode", "tls", "tls, h2c, xnet, xnet-tls or http1")
	url := fs.String("url", "", "URL to request (required)")
	n := fs.Int("n", 10, "number of requests")
	concurrency := fs.Int("concurrency", 1, "number of requests in flight at once")
	interval := fs.Duration("interval", 0, "pause between starting two requests")
	linger := fs.Duration("linger", 0, "stay this long after the last response (a tracer still finds the process)")
	method := fs.String("method", http.MethodGet, "HTTP method")
	body := fs.String("body", "", "request body (for POST/PUT)")
	verbose := fs.Bool("v", false, "print one line per request")
	showBody := fs.Bool("show-body", false, "with -v: also print each response body, after its request line")
	var headers headerList
	fs.Var(&headers, "H", `extra request header "Name: value" (repeatable)`)
	fs.Var(&headers, "header", "the same as -H")
	fs.Parse(args)
	if *url == "" {
		log.Fatal("-url is required")
	}
	if *concurrency < 1 {
		*concurrency = 1
	}
	hdr, bad := headers.header()
	if hdr == nil {
		log.Fatalf("bad -H %q, want \"Name: value\"", bad)
	}

	tr, wantProto, err := transport(*mode, *concurrency)
	if err != nil {
		log.Fatal(err)
	}
	client := &http.Client{Transport: tr, Timeout: 60 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	var ok, failed int64
	runRequests(ctx, *n, *concurrency, *interval, func(i int) {
		var respBody bytes.Buffer
		sink := io.Discard
		if *verbose && *showBody {
			sink = &respBody
		}
		status, proto, err := doRequest(context.Background(), client, *method, *url, *body, hdr, sink)
		if err == nil && proto != wantProto {
			err = fmt.Errorf("status %d over %s, want %s", status, proto, wantProto)
		}
		if err != nil {
			atomic.AddInt64(&failed, 1)
			if *verbose {
				fmt.Printf("request %d: error: %v\n", i, err)
			}
			return
		}
		atomic.AddInt64(&ok, 1)
		if *verbose && *showBody {
			fmt.Printf("request %d: %d %s\n%s", i, status, proto, withNewline(respBody.Bytes()))
		} else if *verbose {
			fmt.Printf("request %d: %d %s\n", i, status, proto)
		}
	})
	if c, ok := tr.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}

	time.Sleep(*linger)
	fmt.Printf("CONNS %d\n", atomic.LoadInt64(&dialed))
	fmt.Printf("DONE ok=%d failed=%d\n", ok, failed)
	if failed > 0 {
		os.Exit(1)
	}
}

// transport makes the mode's RoundTripper and says which response Proto it must give.
func transport(mode string, concurrency int) (http.RoundTripper, string, error) {
	dialer := &net.Dialer{
		Timeout:   30 * time.Second,
		KeepAlive: 30 * time.Second,
		Control: func(network, address string, c syscall.RawConn) error {
			atomic.AddInt64(&dialed, 1)
			return nil
		},
	}
	insecure := &tls.Config{InsecureSkipVerify: true}
	switch mode {
	case "tls":
		// net/http's bundled HTTP/2 client through ALPN. MaxConnsPerHost 1: the first
		// requests, started together, wait for one dial instead of each dialling (the
		// surplus h2 connections would be closed, but they would have been opened).
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.DialContext = dialer.DialContext
		tr.TLSClientConfig = insecure
		tr.ForceAttemptHTTP2 = true
		tr.MaxConnsPerHost = 1
		return tr, "HTTP/2.0", nil
	case "h2c", "xnet":
		// Cleartext HTTP/2 with prior knowledge: x/net's Transport dials "TLS" through
		// DialTLSContext, which here returns the plain TCP connection.
		return &http2.Transport{
			AllowHTTP: true,
			DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
				return dialer.DialContext(ctx, network, addr)
			},
		}, "HTTP/2.0", nil
	case "xnet-tls":
		return &http2.Transport{
			TLSClientConfig: insecure,
			// What x/net does without DialTLSContext, plus the count of dials.
			DialTLSContext: func(ctx context.Context, network, addr string, cfg *tls.Config) (net.Conn, error) {
				d := &tls.Dialer{NetDialer: dialer, Config: cfg}
				c, err := d.DialContext(ctx, network, addr)
				if err != nil {
					return nil, err
				}
				if p := c.(*tls.Conn).ConnectionState().NegotiatedProtocol; p != http2.NextProtoTLS {
					c.Close()
					return nil, fmt.Errorf("unexpected ALPN protocol %q, want %q", p, http2.NextProtoTLS)
				}
				return c, nil
			},
		}, "HTTP/2.0", nil
	case "http1":
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.DialContext = dialer.DialContext
		tr.TLSClientConfig = insecure
		tr.ForceAttemptHTTP2 = false
		tr.MaxIdleConnsPerHost = concurrency // keep every connection for the next request
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		return tr, "HTTP/1.1", nil
	}
	return nil, "", fmt.Errorf("-mode %q: want tls, h2c, xnet, xnet-tls or http1", mode)
}

func withNewline(b []byte) string {
	if len(b) == 0 || b[len(b)-1] == '\n' {
		return string(b)
	}
	return string(b) + "\n"
}
