package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/golang/protobuf/ptypes/wrappers"
	"github.com/mwitkow/go-conntrack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// nextHop is the call every request makes before it answers, carrying the request's name
// (the `name` query parameter, or the gRPC request's value) so that a test can tell which
// request each span of a chain belongs to.
type nextHop interface {
	call(ctx context.Context, name string) error
}

type noNextHop struct{}

func (noNextHop) call(context.Context, string) error { return nil }

// How long a call to the next hop may take (the request's own context still applies).
const callTimeout = 10 * time.Second

// newNextHop makes the client for a -next URL, its connections dialed through wraps.
// Schemes: http, https, grpc, grpcs, each also as <scheme>+unix:/socket/path.
func newNextHop(raw string, wraps []string) (nextHop, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	kind := strings.TrimSuffix(u.Scheme, "+unix")
	unix := kind != u.Scheme
	overTLS := contains(wraps, "tls")
	switch kind {
	case "https":
		kind, overTLS = "http", true
	case "grpcs":
		kind, overTLS = "grpc", true
	}
	sock := u.Path
	if u.Opaque != "" {
		sock = u.Opaque
	}
	if unix && sock == "" || !unix && u.Host == "" {
		return nil, fmt.Errorf("%q: no address", raw)
	}
	dial := wrapDialer(unix, sock, wraps)

	switch kind {
	case "http":
		scheme := "http"
		if overTLS {
			scheme = "https"
		}
		target := *u
		if unix {
			target = url.URL{Host: "localhost", Path: "/chain"}
		}
		target.Scheme = scheme
		return newHTTPHop(target.String(), dial), nil
	case "grpc":
		target := u.Host
		if unix {
			target = "localhost"
		}
		return newGRPCHop(target, overTLS, dial)
	}
	return nil, fmt.Errorf("%q: unknown scheme %q", raw, u.Scheme)
}

// wrapDialer dials TCP (the address the client asks for) or the Unix socket sock, and
// wraps the connection as wraps say, innermost first. tls is left to the client.
// (An unnamed func type: go-conntrack's option takes its own unexported func type.)
func wrapDialer(unix bool, sock string, wraps []string) func(context.Context, string, string) (net.Conn, error) {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	dial := d.DialContext
	if unix {
		dial = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", sock)
		}
	}
	for _, name := range wraps {
		switch name {
		case "conntrack":
			dial = conntrack.NewDialContextFunc(conntrack.DialWithTracing(),
				conntrack.DialWithName("next"), conntrack.DialWithDialContextFunc(dial))
		case "custom":
			inner := dial
			dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
				c, err := inner(ctx, network, addr)
				if err != nil {
					return nil, err
				}
				return newMeteredConn(c), nil
			}
		}
	}
	return dial
}

type httpHop struct {
	client *http.Client
	url    string
}

// newHTTPHop: an HTTP/1.1-only client (keep-alive) whose Transport dials through dial;
// for https the Transport runs TLS over the wrapped connection.
func newHTTPHop(target string, dial func(context.Context, string, string) (net.Conn, error)) httpHop {
	tr := &http.Transport{
		DialContext:         dial,
		TLSClientConfig:     &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}},
		TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{},
		MaxIdleConns:        100,
		MaxIdleConnsPerHost: 100,
		IdleConnTimeout:     90 * time.Second,
	}
	return httpHop{client: &http.Client{Transport: tr}, url: target}
}

func (h httpHop) call(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.url+"?name="+url.QueryEscape(name), nil)
	if err != nil {
		return err
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: status %d", h.url, resp.StatusCode)
	}
	return nil
}

type grpcHop struct {
	conn *grpc.ClientConn
}

// newGRPCHop makes one ClientConn to target through dial. passthrough hands target to
// the dialer as it is in every grpc-go version (grpc.Dial's default resolver differs).
func newGRPCHop(target string, overTLS bool, dial func(context.Context, string, string) (net.Conn, error)) (grpcHop, error) {
	creds := grpc.WithInsecure()
	if overTLS {
		creds = grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{InsecureSkipVerify: true}))
	}
	conn, err := grpc.Dial("passthrough:///"+target, creds,
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return dial(ctx, "tcp", addr)
		}))
	if err != nil {
		return grpcHop{}, err
	}
	return grpcHop{conn: conn}, nil
}

func (g grpcHop) call(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	return g.conn.Invoke(ctx, "/demo.Echo/Say", &wrappers.StringValue{Value: name}, new(wrappers.StringValue))
}
