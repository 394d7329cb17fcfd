package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
)

var (
	accepted int64 // TCP connections accepted
	inflight int64 // requests being served
)

func serve(defaultAddr string, args []string) {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	addr := fs.String("addr", defaultAddr, "listen address")
	mode := fs.String("mode", "tls", "tls, h2c, xnet-tls, xnet or http1")
	verbose := fs.Bool("v", false, "log every accepted connection (stderr)")
	fs.Parse(args)

	handler := counted(routes())
	var srv *http.Server
	switch *mode {
	case "tls":
		cert, err := selfSigned()
		if err != nil {
			log.Fatal(err)
		}
		// TLSNextProto stays nil: ServeTLS configures net/http's bundled HTTP/2 server.
		srv = &http.Server{Handler: handler}
		srv.TLSConfig = &tls.Config{
			Certificates: []tls.Certificate{cert},
			NextProtos:   []string{"h2", "http/1.1"},
		}
	case "h2c":
		srv = &http.Server{Handler: h2c.NewHandler(handler, &http2.Server{})}
	case "xnet-tls":
		cert, err := selfSigned()
		if err != nil {
			log.Fatal(err)
		}
		srv = &http.Server{Handler: handler}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
		// Sets TLSNextProto["h2"] (and NextProtos h2, http/1.1): h2 connections are
		// served by x/net's http2.Server, not the bundled copy.
		if err := http2.ConfigureServer(srv, &http2.Server{}); err != nil {
			log.Fatal(err)
		}
	case "xnet":
		// No http.Server: see serveXnet.
	case "http1":
		srv = &http.Server{Handler: handler}
		srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
	default:
		log.Fatalf("-mode %q: want tls, h2c, xnet-tls, xnet or http1", *mode)
	}
	if srv != nil {
		srv.ReadHeaderTimeout = 10 * time.Second
		srv.ConnState = func(c net.Conn, st http.ConnState) {
			if st == http.StateNew {
				newConn(c, *verbose)
			}
		}
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}

	// Catch the signals before announcing READY, or an early SIGTERM kills us.
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGTERM, syscall.SIGINT)

	errc := make(chan error, 1)
	xnetConns := &connSet{m: map[net.Conn]struct{}{}}
	go func() {
		switch {
		case srv == nil:
			errc <- serveXnet(ln, handler, xnetConns, *verbose)
		case srv.TLSConfig != nil:
			errc <- srv.ServeTLS(ln, "", "")
		default:
			errc <- srv.Serve(ln)
		}
	}()
	fmt.Printf("READY %s\n", ln.Addr())

	select {
	case <-sigc:
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			log.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if srv != nil {
		// Shutdown does not wait for connections hijacked by h2c, hence the inflight wait.
		if err := srv.Shutdown(ctx); err != nil {
			srv.Close()
		}
	} else {
		ln.Close()
	}
	for atomic.LoadInt64(&inflight) > 0 && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	xnetConns.closeAll()
}

// serveXnet serves HTTP/2 with prior knowledge on every connection ln accepts, with x/net's
// http2.Server alone.
func serveXnet(ln net.Listener, handler http.Handler, conns *connSet, verbose bool) error {
	h2s := &http2.Server{}
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return http.ErrServerClosed
			}
			return err
		}
		newConn(c, verbose)
		conns.add(c)
		go func() {
			defer conns.remove(c)
			defer c.Close()
			h2s.ServeConn(c, &http2.ServeConnOpts{Handler: handler})
		}()
	}
}

func newConn(c net.Conn, verbose bool) {
	n := atomic.AddInt64(&accepted, 1)
	if verbose {
		log.Printf("connection %d from %s", n, c.RemoteAddr())
	}
}

type connSet struct {
	mu sync.Mutex
	m  map[net.Conn]struct{}
}

func (s *connSet) add(c net.Conn) {
	s.mu.Lock()
	s.m[c] = struct{}{}
	s.mu.Unlock()
}

func (s *connSet) remove(c net.Conn) {
	s.mu.Lock()
	delete(s.m, c)
	s.mu.Unlock()
}

func (s *connSet) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.m {
		c.Close()
	}
}

// counted keeps inflight up to date and sets X-Proto.
func counted(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		atomic.AddInt64(&inflight, 1)
		defer atomic.AddInt64(&inflight, -1)
		w.Header().Set("X-Proto", r.Proto)
		h.ServeHTTP(w, r)
	})
}

func routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("/hello", hello)
	mux.HandleFunc("/error", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "something broke", http.StatusInternalServerError)
	})
	mux.HandleFunc("/slow", slow)
	mux.HandleFunc("/echo", echo)
	mux.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) {
		code, err := strconv.Atoi(r.URL.Query().Get("code"))
		if err != nil || code < 200 || code > 599 {
			http.Error(w, "bad code, want 200-599", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(code)
		fmt.Fprintf(w, "status %d\n", code)
	})
	mux.HandleFunc("/headers", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "%s\n", r.Header.Get("Traceparent"))
	})
	mux.HandleFunc("/conns", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "%d\n", atomic.LoadInt64(&accepted))
	})
	return mux
}
