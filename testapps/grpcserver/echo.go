package main

// The "demo.Echo" service, its descriptor spelled out by hand (no protoc-generated code;
// every message is a google.protobuf.StringValue). testapps/grpchttp links this file (a
// symlink); Work needs busyWork (busywork.go, linked from testapps/httpserver).

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
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
