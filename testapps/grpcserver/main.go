// Command grpcserver is a gRPC server for gotrace's tests, written without
// protoc-generated code: the service descriptor for "demo.Echo" is spelled
// out by hand below, and every message is a google.protobuf.StringValue
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
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/golang/protobuf/ptypes/wrappers"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// echoService is the interface grpc checks the implementation against
// (ServiceDesc.HandlerType).
type echoService interface {
	Say(ctx context.Context, in *wrappers.StringValue) (*wrappers.StringValue, error)
	Fail(ctx context.Context, in *wrappers.StringValue) (*wrappers.StringValue, error)
	Sleep(ctx context.Context, in *wrappers.StringValue) (*wrappers.StringValue, error)
	Work(ctx context.Context, in *wrappers.StringValue) (*wrappers.StringValue, error)
	Count(in *wrappers.StringValue, stream grpc.ServerStream) error
}

type echoServer struct {
	backend string // an HTTP URL Say fetches first, or ""
}

func (e echoServer) Say(ctx context.Context, in *wrappers.StringValue) (*wrappers.StringValue, error) {
	if e.backend != "" {
		if err := fetch(ctx, e.backendURL(in.GetValue())); err != nil {
			return nil, status.Errorf(codes.Unavailable, "backend: %v", err)
		}
	}
	return &wrappers.StringValue{Value: "hello " + in.GetValue()}, nil
}

// backendURL is what Say fetches for a request: for "slow-N" the back end's /slow?ms=N
// and for "fail" its /error (the demo's slow and failing paths; /error answers 500, so
// Say fails with UNAVAILABLE), both resolved next to the -backend path; for any other
// value the -backend URL with ?name=<value>.
func (e echoServer) backendURL(value string) string {
	var ref url.URL
	switch {
	case strings.HasPrefix(value, "slow-"):
		ms := strings.TrimPrefix(value, "slow-")
		ref = url.URL{Path: "slow", RawQuery: "ms=" + url.QueryEscape(ms)}
	case value == "fail":
		ref = url.URL{Path: "error"}
	default:
		return e.backend + "?name=" + url.QueryEscape(value)
	}
	base, err := url.Parse(e.backend)
	if err != nil {
		return e.backend // fetch reports what is wrong with it
	}
	return base.ResolveReference(&ref).String()
}

// fetch GETs target with the RPC's context (pooled keep-alive connections).
func fetch(ctx context.Context, target string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

func (echoServer) Fail(ctx context.Context, in *wrappers.StringValue) (*wrappers.StringValue, error) {
	return nil, status.Errorf(codes.NotFound, "no such thing: %q", in.GetValue())
}

func (echoServer) Sleep(ctx context.Context, in *wrappers.StringValue) (*wrappers.StringValue, error) {
	ms, err := strconv.Atoi(strings.TrimSpace(in.GetValue()))
	if err != nil || ms < 0 {
		return nil, status.Errorf(codes.InvalidArgument, "want a number of milliseconds, got %q", in.GetValue())
	}
	t := time.NewTimer(time.Duration(ms) * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
		return &wrappers.StringValue{Value: fmt.Sprintf("slept %d ms", ms)}, nil
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

func (echoServer) Work(ctx context.Context, in *wrappers.StringValue) (*wrappers.StringValue, error) {
	us := 200
	if v := strings.TrimSpace(in.GetValue()); v != "" {
		var err error
		if us, err = strconv.Atoi(v); err != nil || us < 0 {
			return nil, status.Errorf(codes.InvalidArgument, "want microseconds, got %q", in.GetValue())
		}
	}
	return &wrappers.StringValue{Value: fmt.Sprintf("worked %d us (%x)", us, busyWork(us))}, nil
}

func (echoServer) Count(in *wrappers.StringValue, stream grpc.ServerStream) error {
	n := 5
	if v := strings.TrimSpace(in.GetValue()); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 0 {
			return status.Errorf(codes.InvalidArgument, "want a count, got %q", in.GetValue())
		}
	}
	for i := 1; i <= n; i++ {
		if err := stream.SendMsg(&wrappers.StringValue{Value: strconv.Itoa(i)}); err != nil {
			return err
		}
	}
	return nil
}

// unary builds a grpc MethodDesc handler for one unary method, doing what
// protoc-gen-go-grpc would generate: decode, then run through the interceptor.
func unary(name string, call func(echoService, context.Context, *wrappers.StringValue) (*wrappers.StringValue, error)) grpc.MethodDesc {
	full := "/demo.Echo/" + name
	return grpc.MethodDesc{
		MethodName: name,
		Handler: func(srv interface{}, ctx context.Context, dec func(interface{}) error, interceptor grpc.UnaryServerInterceptor) (interface{}, error) {
			in := new(wrappers.StringValue)
			if err := dec(in); err != nil {
				return nil, err
			}
			if interceptor == nil {
				return call(srv.(echoService), ctx, in)
			}
			info := &grpc.UnaryServerInfo{Server: srv, FullMethod: full}
			h := func(ctx context.Context, req interface{}) (interface{}, error) {
				return call(srv.(echoService), ctx, req.(*wrappers.StringValue))
			}
			return interceptor(ctx, in, info, h)
		},
	}
}

var echoDesc = grpc.ServiceDesc{
	ServiceName: "demo.Echo",
	HandlerType: (*echoService)(nil),
	Methods: []grpc.MethodDesc{
		unary("Say", echoService.Say),
		unary("Fail", echoService.Fail),
		unary("Sleep", echoService.Sleep),
		unary("Work", echoService.Work),
	},
	Streams: []grpc.StreamDesc{{
		StreamName:    "Count",
		ServerStreams: true,
		Handler: func(srv interface{}, stream grpc.ServerStream) error {
			in := new(wrappers.StringValue)
			if err := stream.RecvMsg(in); err != nil {
				return err
			}
			return srv.(echoService).Count(in, stream)
		},
	}},
	Metadata: "demo/echo.proto",
}

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
