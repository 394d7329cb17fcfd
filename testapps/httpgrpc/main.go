// Command httpgrpc is an HTTP front end that answers by calling a gRPC back end: the test
// target for a trace that goes from an HTTP SERVER span to a gRPC CLIENT span.
//
// Routes:
//
//	/say?addr=A&name=N  calls demo.Echo/Say on the gRPC server at A, answers 200 with the
//	                    reply, or 502 when the call fails
//
// It builds in GOPATH mode against every grpc-go version of the test matrix, so it uses
// only APIs all of them have (grpc.Dial, grpc.WithInsecure, ClientConn.Invoke).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/golang/protobuf/ptypes/wrappers"
	"google.golang.org/grpc"
)

type backends struct {
	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

func (b *backends) get(addr string) (*grpc.ClientConn, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if conn, ok := b.conns[addr]; ok {
		return conn, nil
	}
	conn, err := grpc.Dial(addr, grpc.WithInsecure())
	if err != nil {
		return nil, err
	}
	b.conns[addr] = conn
	return conn, nil
}

func (b *backends) say(w http.ResponseWriter, r *http.Request) {
	conn, err := b.get(r.URL.Query().Get("addr"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	reply := new(wrappers.StringValue)
	req := &wrappers.StringValue{Value: r.URL.Query().Get("name")}
	if err := conn.Invoke(ctx, "/demo.Echo/Say", req, reply); err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	fmt.Fprintln(w, reply.GetValue())
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("httpgrpc: ")

	b := &backends{conns: map[string]*grpc.ClientConn{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/say", b.say)

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGTERM, syscall.SIGINT)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Printf("READY %s\n", ln.Addr())

	select {
	case <-sigc:
	case err := <-errc:
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
}
