package main

import (
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/mwitkow/go-conntrack"
	"github.com/pires/go-proxyproto"
	"golang.org/x/net/netutil"
)

var (
	listenWrappers = []string{"conntrack", "limit", "proxyproto", "custom", "tls"}
	dialWrappers   = []string{"conntrack", "custom", "tls"}
)

// parseWrappers splits a comma-separated wrapper list and checks every name against
// allowed; tls wraps everything else, so it may only come last.
func parseWrappers(list string, allowed []string) ([]string, error) {
	if strings.TrimSpace(list) == "" {
		return nil, nil
	}
	names := strings.Split(list, ",")
	for i, name := range names {
		name = strings.TrimSpace(name)
		names[i] = name
		if !contains(allowed, name) {
			return nil, fmt.Errorf("unknown wrapper %q, want one of %s", name, strings.Join(allowed, ", "))
		}
		if name == "tls" && i != len(names)-1 {
			return nil, fmt.Errorf("tls must come last")
		}
	}
	return names, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// listen opens a TCP listener, or a Unix socket for "unix:/path", and returns the address
// to announce.
func listen(addr string) (net.Listener, string, error) {
	if path := strings.TrimPrefix(addr, "unix:"); path != addr {
		// A socket file left by a killed run would make the bind fail.
		if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
			os.Remove(path)
		}
		ln, err := net.Listen("unix", path)
		if err != nil {
			return nil, "", err
		}
		return ln, "unix:" + path, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", err
	}
	return ln, ln.Addr().String(), nil
}

// wrapListener applies the wrappers in order, innermost first, except tls: how TLS is
// layered depends on what is served (see startServers), so it is only reported.
func wrapListener(ln net.Listener, names []string) (net.Listener, bool, error) {
	overTLS := false
	for _, name := range names {
		switch name {
		case "conntrack":
			ln = conntrack.NewListener(ln, conntrack.TrackWithTracing(), conntrack.TrackWithName("wrapped"))
		case "limit":
			ln = netutil.LimitListener(ln, 100)
		case "proxyproto":
			// USE takes the client address from a PROXY header when there is one and
			// accepts connections without one as they are (go-proxyproto 0.4).
			ln = &proxyproto.Listener{
				Listener: ln,
				Policy:   func(net.Addr) (proxyproto.Policy, error) { return proxyproto.USE, nil },
			}
		case "custom":
			ln = meteredListener{ln}
		case "tls":
			overTLS = true
		default:
			return nil, false, fmt.Errorf("unknown listener wrapper %q", name)
		}
	}
	return ln, overTLS, nil
}
