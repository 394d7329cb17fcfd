// Command httpserver is a small HTTP/1.1 server used as a tracing target by
// gotrace's tests. It must build in GOPATH mode with every Go release from
// 1.19 on, so it sticks to the standard library of Go 1.19; the /users/{id}
// route is registered in routes_go122.go or routes_legacy.go depending on the
// toolchain.
//
// Routes:
//
//	/               200, plain text (exact path only; others get Go's 404)
//	/hello?name=N   200, "hello N"
//	/notfound       404 from the handler
//	/error          500
//	/echo           POST only: echoes the body, X-Body-Size header
//	/slow?ms=N      sleeps N ms (default 200), then 200
//	/work?us=N      burns about N µs of CPU (default 200), then 200
//	/alloc?kb=N     allocates N KiB of short-lived garbage (default 1024), then 200
//	/users/{id}     GET only: "user <id>"
//	/proxy?url=U    GET U with http.DefaultClient in the handler goroutine,
//	                answer with the upstream status code
//	/proxy-async?url=U  the same, from a goroutine the handler starts and waits for
//	/upgrade        takes the connection over (as a WebSocket upgrade does): answers
//	                101, echoes one line back, then closes
//
// With -tls it serves HTTPS (HTTP/1.1 only) with a self-signed certificate made at start.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	overTLS := flag.Bool("tls", false, "serve HTTPS with a self-signed certificate")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("httpserver: ")

	mux := http.NewServeMux()
	registerRoot(mux)
	mux.HandleFunc("/hello", hello)
	mux.HandleFunc("/notfound", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "nothing here", http.StatusNotFound)
	})
	mux.HandleFunc("/error", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "something broke", http.StatusInternalServerError)
	})
	mux.HandleFunc("/echo", echo)
	mux.HandleFunc("/slow", slow)
	mux.HandleFunc("/work", work)
	mux.HandleFunc("/alloc", alloc)
	registerUsers(mux)
	mux.HandleFunc("/proxy", proxy)
	mux.HandleFunc("/proxy-async", proxyAsync)
	mux.HandleFunc("/upgrade", upgrade)

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	srv.SetKeepAlivesEnabled(true)
	if *overTLS {
		if err := serveOverTLS(srv); err != nil {
			log.Fatal(err)
		}
	}

	// Catch the signals before announcing READY, or an early SIGTERM kills us.
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGTERM, syscall.SIGINT)

	errc := make(chan error, 1)
	go func() {
		if *overTLS {
			errc <- srv.ServeTLS(ln, "", "")
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	fmt.Printf("READY %s\n", ln.Addr())

	select {
	case <-sigc:
	case err := <-errc:
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		srv.Close()
	}
}

func rootText(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, "gotrace test server\n")
}

func work(w http.ResponseWriter, r *http.Request) {
	us := 200
	if s := r.URL.Query().Get("us"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			http.Error(w, "bad us", http.StatusBadRequest)
			return
		}
		us = n
	}
	fmt.Fprintf(w, "worked %d us (%x)\n", us, busyWork(us))
}

func userHandler(w http.ResponseWriter, r *http.Request, id string) {
	if id == "" {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "user %s\n", id)
}

// fetch does the outgoing request of the proxy routes and returns the
// upstream status code (502 when the request failed at transport level).
func fetch(ctx context.Context, url string) (int, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return http.StatusBadRequest, err.Error()
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return http.StatusBadGateway, err.Error()
	}
	defer resp.Body.Close()
	n, _ := io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, fmt.Sprintf("upstream %s: %d (%d bytes)", url, resp.StatusCode, n)
}

func proxy(w http.ResponseWriter, r *http.Request) {
	url := r.URL.Query().Get("url")
	if url == "" {
		http.Error(w, "missing url", http.StatusBadRequest)
		return
	}
	code, msg := fetch(r.Context(), url)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	fmt.Fprintln(w, msg)
}

func proxyAsync(w http.ResponseWriter, r *http.Request) {
	url := r.URL.Query().Get("url")
	if url == "" {
		http.Error(w, "missing url", http.StatusBadRequest)
		return
	}
	type result struct {
		code int
		msg  string
	}
	done := make(chan result, 1)
	go func() {
		code, msg := fetch(r.Context(), url)
		done <- result{code, msg}
	}()
	res := <-done
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(res.code)
	fmt.Fprintln(w, res.msg)
}

// allocSink keeps the compiler from proving the allocations dead.
var allocSink []byte

// alloc makes garbage in 4 KiB pieces, to drive the collector (with a low GOGC).
func alloc(w http.ResponseWriter, r *http.Request) {
	kb, err := strconv.Atoi(r.URL.Query().Get("kb"))
	if err != nil || kb <= 0 {
		kb = 1024
	}
	for i := 0; i < kb/4; i++ {
		allocSink = make([]byte, 4096)
	}
	fmt.Fprintln(w, "allocated", kb, "KiB")
}

func upgrade(w http.ResponseWriter, r *http.Request) {
	hijacker, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "cannot take the connection over", http.StatusInternalServerError)
		return
	}
	conn, rw, err := hijacker.Hijack()
	if err != nil {
		log.Printf("hijack: %v", err)
		return
	}
	defer conn.Close()
	rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
	rw.Flush()
	line, err := rw.ReadString('\n')
	if err != nil {
		return
	}
	rw.WriteString(line)
	rw.Flush()
}
