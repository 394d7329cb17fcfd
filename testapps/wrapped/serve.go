package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/soheilhy/cmux"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

type servers struct {
	errc chan error // a server that stopped on its own
	stop func()     // graceful stop of everything
}

// startServers serves mode on ln. With overTLS, TLS is layered over ln: for HTTP by
// crypto/tls.NewListener, for gRPC by grpc's own TLS credentials (grpc does the
// handshake on the wrapped connection), for cmux by tls.NewListener under the mux.
func startServers(mode string, ln net.Listener, overTLS bool, hop nextHop) (*servers, error) {
	var cert tls.Certificate
	if overTLS {
		var err error
		if cert, err = selfSigned(); err != nil {
			return nil, err
		}
	}
	s := &servers{errc: make(chan error, 3)}
	switch mode {
	case "http":
		if overTLS {
			ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}})
		}
		hs := newHTTPServer(hop)
		go func() { s.errc <- hs.Serve(ln) }()
		s.stop = func() { stopHTTP(hs) }
	case "grpc":
		var opts []grpc.ServerOption
		if overTLS {
			opts = append(opts, grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}})))
		}
		gs := newGRPCServer(hop, opts...)
		go func() { s.errc <- gs.Serve(ln) }()
		s.stop = func() { stopGRPC(gs) }
	case "cmux":
		if overTLS {
			// HTTP/1.1 first: clients offering both (curl) get HTTP/1.1, which the HTTP
			// side needs; grpc clients offer only h2.
			ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1", "h2"}})
		}
		m := cmux.New(ln)
		// SendSettings: some gRPC clients wait for the server's SETTINGS before they
		// send the headers the matcher looks at.
		gl := m.MatchWithWriters(cmux.HTTP2MatchHeaderFieldPrefixSendSettings("content-type", "application/grpc"))
		hl := m.Match(cmux.Any())
		gs, hs := newGRPCServer(hop), newHTTPServer(hop)
		go func() { s.errc <- gs.Serve(gl) }()
		go func() { s.errc <- hs.Serve(hl) }()
		go func() { s.errc <- m.Serve() }()
		s.stop = func() {
			var wg sync.WaitGroup
			wg.Add(2)
			go func() { defer wg.Done(); stopHTTP(hs) }()
			go func() { defer wg.Done(); stopGRPC(gs) }()
			wg.Wait()
			m.Close()
		}
	default:
		return nil, fmt.Errorf("-serve %q: want http, grpc or cmux", mode)
	}
	return s, nil
}

func newHTTPServer(hop nextHop) *http.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/chain", func(w http.ResponseWriter, r *http.Request) {
		if err := hop.call(r.Context(), r.URL.Query().Get("name")); err != nil {
			http.Error(w, "next hop: "+err.Error(), http.StatusBadGateway)
			return
		}
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello")
	})
	return &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		// Empty: no HTTP/2 over TLS, every request goes through the HTTP/1 server.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
}

func newGRPCServer(hop nextHop, opts ...grpc.ServerOption) *grpc.Server {
	gs := grpc.NewServer(opts...)
	gs.RegisterService(&echoDesc, echoServer{hop: hop})
	return gs
}

func stopHTTP(hs *http.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hs.Shutdown(ctx)
}

func stopGRPC(gs *grpc.Server) {
	stopped := make(chan struct{})
	go func() { gs.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		gs.Stop()
	}
}
