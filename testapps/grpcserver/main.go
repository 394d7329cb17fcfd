// Command grpcserver is a gRPC server for gotrace's tests, written without
// protoc-generated code: the service descriptor for "demo.Echo" is spelled
// out by hand in echo.go, and every message is a google.protobuf.StringValue
// (github.com/golang/protobuf/ptypes/wrappers, which exists both in
// golang/protobuf 1.3 and, as an alias of wrapperspb, in 1.5). It builds in
// GOPATH mode against grpc-go 1.33, 1.64 and 1.79.
//
// Methods of /demo.Echo:
//
//	Say(StringValue) StringValue            "hello <value>"; with -backend URL, only
//	                                        after a GET of URL?name=<value> succeeded
//	                                        (a middle tier); values "slow-N" and "fail"
//	                                        GET slow?ms=N and error next to URL instead
//	Fail(StringValue) StringValue           always status NOT_FOUND
//	Sleep(StringValue) StringValue          sleeps <value> ms, honours cancellation
//	Work(StringValue) StringValue           burns about <value> µs of CPU (default 200)
//	Count(StringValue) stream StringValue   sends <value> messages (default 5)
//
// Deadlines: from about grpc 1.66 on (so in the 1.79 builds, not 1.33/1.64) the
// server transport itself resets a stream with RST_STREAM(CANCEL) when the
// client's deadline passes. A client whose own timer has not fired yet may then
// report CANCELLED instead of DEADLINE_EXCEEDED: grpc-go clients map it back to
// DEADLINE_EXCEEDED, Python grpcio does not (seen for ~7% of Sleep calls).
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"google.golang.org/grpc"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	backend := flag.String("backend", "", "an HTTP URL that Say fetches before it answers")
	workers := flag.Uint("workers", 0, "serve RPCs on this many stream workers (grpc.NumStreamWorkers), 0 for none")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("grpcserver: ")

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	var opts []grpc.ServerOption
	if *workers > 0 {
		opts = append(opts, grpc.NumStreamWorkers(uint32(*workers)))
	}
	srv := grpc.NewServer(opts...)
	srv.RegisterService(&echoDesc, echoServer{backend: *backend})

	// Catch the signals before announcing READY, or an early SIGTERM kills us.
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
	stopped := make(chan struct{})
	go func() { srv.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		srv.Stop()
	}
}
