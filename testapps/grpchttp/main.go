// Command grpchttp serves gRPC through net/http, (*grpc.Server).ServeHTTP, and plain HTTP
// on the same port: grpc-go's serverHandlerTransport, for gotrace's tests. The gRPC
// service is grpcserver's "demo.Echo" (its echo.go, linked: same methods, same behaviour,
// no protoc-generated code); it builds in GOPATH mode against grpc-go 1.33, 1.64 and 1.79.
//
// One http.Server, one handler: a request with ProtoMajor 2 and a Content-Type starting
// with "application/grpc" goes to grpcServer.ServeHTTP(w, r), anything else to a ServeMux
// with GET /hello (200 "hello <name>", ?name= optional).
//
//	-mode h2c   cleartext; HTTP/2 with prior knowledge (or the HTTP/1 Upgrade) through
//	            golang.org/x/net/http2/h2c, so gRPC requests are served by x/net's
//	            http2.Server (h2c hijacks the HTTP/1 connection); HTTP/1.1 requests by
//	            net/http. grpcclient works against it (grpc.WithInsecure), as does
//	            curl --http2-prior-knowledge.
//	-mode tls   TLS with a self-signed certificate for localhost/127.0.0.1/::1 made at
//	            start (-cert FILE writes it as PEM); HTTP/2 through ALPN with net/http's
//	            bundled HTTP/2 server, HTTP/1.1 otherwise.
//
// It prints "READY <host:port>" once listening, like grpcserver.
//
// Methods of /demo.Echo (as grpcserver):
//
//	Say(StringValue) StringValue            "hello <value>"; with -backend URL, only
//	                                        after a GET of URL?name=<value> succeeded;
//	                                        values "slow-N" and "fail" GET slow?ms=N
//	                                        and error next to URL instead
//	Fail(StringValue) StringValue           always status NOT_FOUND
//	Sleep(StringValue) StringValue          sleeps <value> ms, honours cancellation
//	Work(StringValue) StringValue           burns about <value> µs of CPU (default 200)
//	Count(StringValue) stream StringValue   sends <value> messages (default 5)
//
// Stopping: SIGTERM/SIGINT shut the http.Server down (GOAWAY on every HTTP/2 connection)
// and wait for the gRPC requests in flight, 5 s at most in all, then Stop the gRPC
// server. Never GracefulStop: it calls Drain on every transport, and
// serverHandlerTransport.Drain panics ("Drain() is not implemented") in 1.33, 1.64
// and 1.79 alike.
package main

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
	"google.golang.org/grpc"
)

// inflight counts the gRPC requests being served: http.Server.Shutdown does not wait for
// them on h2c connections (hijacked from net/http), so main does.
var inflight int64

// route sends gRPC requests to the gRPC server, everything else to mux: the dispatch
// grpc.Server.ServeHTTP's documentation shows.
func route(grpcSrv *grpc.Server, mux http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			atomic.AddInt64(&inflight, 1)
			defer atomic.AddInt64(&inflight, -1)
			grpcSrv.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func hello(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("name")
	if name == "" {
		name = "world"
	}
	fmt.Fprintf(w, "hello %s\n", name)
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	mode := flag.String("mode", "h2c", "h2c (cleartext, x/net/http2/h2c) or tls (net/http's HTTP/2 through ALPN)")
	certOut := flag.String("cert", "", "tls mode: also write the self-signed certificate (PEM) to this file")
	backend := flag.String("backend", "", "an HTTP URL that Say fetches before it answers")
	workers := flag.Uint("workers", 0, "serve RPCs on this many stream workers (grpc.NumStreamWorkers), 0 for none")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("grpchttp: ")

	var opts []grpc.ServerOption
	if *workers > 0 {
		opts = append(opts, grpc.NumStreamWorkers(uint32(*workers)))
	}
	grpcSrv := grpc.NewServer(opts...)
	grpcSrv.RegisterService(&echoDesc, echoServer{backend: *backend})

	mux := http.NewServeMux()
	mux.HandleFunc("/hello", hello)
	httpSrv := &http.Server{Handler: route(grpcSrv, mux)}

	switch *mode {
	case "h2c":
		// ConfigureServer only so that Shutdown sends GOAWAY on the h2c connections too.
		h2s := &http2.Server{}
		if err := http2.ConfigureServer(httpSrv, h2s); err != nil {
			log.Fatal(err)
		}
		httpSrv.Handler = h2c.NewHandler(httpSrv.Handler, h2s)
	case "tls":
		cert, err := selfSigned()
		if err != nil {
			log.Fatal(err)
		}
		if *certOut != "" {
			pemCert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]})
			if err := os.WriteFile(*certOut, pemCert, 0o644); err != nil {
				log.Fatal(err)
			}
		}
		// ServeTLS adds "h2" to NextProtos and configures net/http's bundled HTTP/2.
		httpSrv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	default:
		log.Fatalf("-mode %q: want h2c or tls", *mode)
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}

	// Catch the signals before announcing READY, or an early SIGTERM kills us.
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGTERM, syscall.SIGINT)

	errc := make(chan error, 1)
	go func() {
		if *mode == "tls" {
			errc <- httpSrv.ServeTLS(ln, "", "")
		} else {
			errc <- httpSrv.Serve(ln)
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
	if err := httpSrv.Shutdown(ctx); err != nil {
		httpSrv.Close()
	}
	for atomic.LoadInt64(&inflight) > 0 && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	grpcSrv.Stop()
}
