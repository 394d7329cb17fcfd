// Command h2 is an HTTP/2 server and client in one binary, a tracing target for gotrace's
// tests of HTTP/2 in net/http (issue 18). It builds in GOPATH mode with every Go release
// from 1.19 on against the system GOPATH's golang.org/x/net (0.7.0, bookworm).
//
//	h2 [-addr HOST:PORT] serve -mode MODE [-addr HOST:PORT] [-v]
//	h2 call -mode MODE -url URL [-n N] [-concurrency C] [-H "Name: value"]... [-v [-show-body]]
//	        [-linger D]
//
// The -addr before the role is what tests/tracing.py's go_server passes first
// ("-addr 127.0.0.1:0", then its own arguments): it is the default of serve's -addr.
//
// serve modes (which code serves the HTTP/2 requests):
//
//	tls       TLS, ALPN h2 + http/1.1, net/http's own bundled HTTP/2 server
//	          (http.Server.ServeTLS with TLSNextProto left nil)
//	h2c       cleartext; h2c.NewHandler(mux, &http2.Server{}) from golang.org/x/net/http2/h2c
//	          on a plain http.Server: prior knowledge (or the HTTP/1 Upgrade) is hijacked
//	          from net/http and served by x/net's http2.Server
//	xnet-tls  TLS, http2.ConfigureServer(srv, &http2.Server{}) from golang.org/x/net: h2
//	          connections go to x/net's http2.Server instead of the bundled one
//	xnet      cleartext prior knowledge, (&http2.Server{}).ServeConn on every accepted
//	          connection; no net/http.Server at all
//	http1     plain HTTP/1.1, for comparison
//
// The TLS certificate is self-signed for localhost, 127.0.0.1 and ::1, made at start.
// serve prints "READY <host:port>" on stdout once listening (nothing else goes to
// stdout), like httpserver. SIGTERM/SIGINT stop it: the listener closes and requests in
// flight get 5 s to finish.
//
// Routes (every response has an X-Proto header with the request's Proto):
//
//	/               200 "ok" (exact path only; others get Go's 404)
//	/hello?name=N   200 "hello N"
//	/error          500
//	/slow?ms=N      sleeps N ms (default 200), then 200
//	/echo           POST only: echoes the body, X-Body-Size header
//	/status?code=N  answers with status N (200-599)
//	/headers        200, the body is the request's Traceparent header value and "\n"
//	/conns          200, the number of TCP connections the server has accepted so far
//
// call modes (which client code sends the requests):
//
//	tls       net/http's http.Transport over TLS (InsecureSkipVerify, ForceAttemptHTTP2):
//	          ALPN h2, net/http's bundled HTTP/2 client
//	h2c, xnet golang.org/x/net/http2.Transport, AllowHTTP, DialTLSContext dialling plain
//	          TCP: cleartext prior knowledge (the two names are the same client)
//	xnet-tls  golang.org/x/net/http2.Transport over TLS (InsecureSkipVerify)
//	http1     net/http's http.Transport, HTTP/1.1 only
//
// All requests of a call run share one client; in the HTTP/2 modes they are multiplexed
// on one TCP connection (http.Transport: MaxConnsPerHost 1, so concurrent first requests
// do not each dial). A response whose Proto is not the mode's (HTTP/2.0, or HTTP/1.1 for
// http1) counts as failed. call prints
//
//	CONNS <n>
//	DONE ok=<n> failed=<n>
//
// (CONNS: the TCP connections it dialled) and exits 1 if anything failed; with -v first
// one line per request, "request <i>: <status> <proto>" or "request <i>: error: <err>",
// and with -v -show-body each response body after its line.
// With -linger it waits that long after the last response before it prints them and exits:
// a tracer that meets the spans of a process after it exited cannot tell which program it was
// when another traced one has the same layout (as the tests' server, the same binary, has).
// SIGTERM/SIGINT stop sending new requests; the DONE line is still printed.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
)

func usage() {
	fmt.Fprintf(os.Stderr, "usage:\n"+
		"  h2 [-addr HOST:PORT] serve -mode tls|h2c|xnet-tls|xnet|http1 [-addr HOST:PORT] [-v]\n"+
		"  h2 call -mode tls|h2c|xnet|xnet-tls|http1 -url URL [-n N] [-concurrency C] [-H 'Name: value']... [-v]\n")
	os.Exit(2)
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("h2: ")
	top := flag.NewFlagSet("h2", flag.ExitOnError)
	top.Usage = usage
	addr := top.String("addr", "127.0.0.1:0", "serve: listen address")
	top.Parse(os.Args[1:])
	if top.NArg() < 1 {
		usage()
	}
	role, args := top.Arg(0), top.Args()[1:]
	switch role {
	case "serve":
		log.SetPrefix("h2 serve: ")
		serve(*addr, args)
	case "call":
		log.SetPrefix("h2 call: ")
		call(args)
	default:
		log.Printf("unknown role %q", role)
		usage()
	}
}
