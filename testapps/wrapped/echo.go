package main

import (
	"context"

	"github.com/golang/protobuf/ptypes/wrappers"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The demo.Echo service registered without protoc-generated code, as in
// testapps/grpcserver: every message is a google.protobuf.StringValue
// (github.com/golang/protobuf/ptypes/wrappers exists in golang/protobuf 1.3 and,
// as an alias of wrapperspb, in 1.5).

// echoService is what grpc checks the implementation against (ServiceDesc.HandlerType).
type echoService interface {
	Say(ctx context.Context, in *wrappers.StringValue) (*wrappers.StringValue, error)
}

type echoServer struct {
	hop nextHop
}

// Say answers its value, after calling the next hop if there is one.
func (e echoServer) Say(ctx context.Context, in *wrappers.StringValue) (*wrappers.StringValue, error) {
	if err := e.hop.call(ctx, in.GetValue()); err != nil {
		return nil, status.Errorf(codes.Unavailable, "next hop: %v", err)
	}
	return &wrappers.StringValue{Value: in.GetValue()}, nil
}

var echoDesc = grpc.ServiceDesc{
	ServiceName: "demo.Echo",
	HandlerType: (*echoService)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Say",
		// What protoc-gen-go-grpc would generate: decode, then run through the interceptor.
		Handler: func(srv interface{}, ctx context.Context, dec func(interface{}) error, interceptor grpc.UnaryServerInterceptor) (interface{}, error) {
			in := new(wrappers.StringValue)
			if err := dec(in); err != nil {
				return nil, err
			}
			if interceptor == nil {
				return srv.(echoService).Say(ctx, in)
			}
			info := &grpc.UnaryServerInfo{Server: srv, FullMethod: "/demo.Echo/Say"}
			h := func(ctx context.Context, req interface{}) (interface{}, error) {
				return srv.(echoService).Say(ctx, req.(*wrappers.StringValue))
			}
			return interceptor(ctx, in, info, h)
		},
	}},
	Metadata: "demo/echo.proto",
}
