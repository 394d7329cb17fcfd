// Command wrapped serves HTTP/1.1, gRPC or both on one port (cmux) through connections
// wrapped in other Go types, and can call a next hop through wrapped connections too:
// the test target for tracing services whose TCP connections are not plain *net.TCPConn.
//
// Flags:
//
//	-addr HOST:PORT | unix:/path   where to listen (default 127.0.0.1:0); prints
//	                               "READY <addr>" once serving
//	-serve http|grpc|cmux          what to serve (cmux: gRPC and HTTP/1 on one port)
//	-listen-wrap LIST              listener wrappers, innermost first: conntrack, limit,
//	                               proxyproto, custom, and tls (last only)
//	-next URL                      call this next hop once per request: http://H:P/chain,
//	                               https://..., http+unix:/sock, grpc://H:P, grpcs://H:P,
//	                               grpc+unix:/sock (also https+unix, grpcs+unix)
//	-next-wrap LIST                dial wrappers, innermost first: conntrack, custom, and
//	                               tls (last only; the same as https/grpcs)
//
// Routes: GET /chain (calls the next hop if any; 200 "ok", 502 when that call failed),
// GET /hello (200 "hello"). gRPC: demo.Echo/Say(StringValue) answers its value, after
// calling the next hop if any.
//
// It builds in GOPATH mode with Go 1.19 against grpc-go 1.33 and with newer Go against
// grpc-go 1.64 and 1.79, so it uses only APIs all of them have.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address, HOST:PORT or unix:/path")
	serve := flag.String("serve", "http", "http, grpc or cmux (both on one port)")
	listenWrap := flag.String("listen-wrap", "", "listener wrappers, innermost first (conntrack,limit,proxyproto,custom,tls)")
	next := flag.String("next", "", "next hop each request calls first (http://, https://, http+unix:, grpc://, grpcs://, grpc+unix:)")
	nextWrap := flag.String("next-wrap", "", "dial wrappers for the next hop, innermost first (conntrack,custom,tls)")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("wrapped: ")

	if *serve != "http" && *serve != "grpc" && *serve != "cmux" {
		log.Fatalf("-serve %q: want http, grpc or cmux", *serve)
	}
	lwraps, err := parseWrappers(*listenWrap, listenWrappers)
	if err != nil {
		log.Fatalf("-listen-wrap: %v", err)
	}
	dwraps, err := parseWrappers(*nextWrap, dialWrappers)
	if err != nil {
		log.Fatalf("-next-wrap: %v", err)
	}
	var hop nextHop = noNextHop{}
	if *next != "" {
		if hop, err = newNextHop(*next, dwraps); err != nil {
			log.Fatalf("-next: %v", err)
		}
	}

	raw, shown, err := listen(*addr)
	if err != nil {
		log.Fatal(err)
	}
	ln, overTLS, err := wrapListener(raw, lwraps)
	if err != nil {
		log.Fatal(err)
	}

	// Catch the signals before announcing READY, or an early SIGTERM kills us.
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGTERM, syscall.SIGINT)

	s, err := startServers(*serve, ln, overTLS, hop)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("READY %s\n", shown)

	select {
	case <-sigc:
	case err := <-s.errc:
		log.Fatal(err)
	}
	s.stop()
	reportMetered()
}
