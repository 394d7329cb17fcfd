// Command routers serves the same routes through five third-party HTTP routers at once,
// each on its own port: the test target for reading the route template (http.route) of a
// request from the router that matched it. It is built in GOPATH mode against Debian's
// packaged libraries in /usr/share/gocode (bookworm): gin 1.8.1, chi 5.0.7, gorilla/mux
// 1.8.0, julienschmidt/httprouter 1.3.0 and echo 4.2.1, with every Go from 1.19 on.
//
// Flags (a router whose flag is omitted is not started; port 0 picks a free port):
//
//	-gin HOST:PORT          github.com/gin-gonic/gin
//	-chi HOST:PORT          github.com/go-chi/chi (chi v5 under its GOPATH import path)
//	-gorilla HOST:PORT      github.com/gorilla/mux
//	-httprouter HOST:PORT   github.com/julienschmidt/httprouter
//	-echo HOST:PORT         github.com/labstack/echo (echo v4 under its GOPATH import path)
//
// Once every requested router listens it prints one line on stdout, the routers in the
// order above:
//
//	READY gin=127.0.0.1:PORT chi=127.0.0.1:PORT ...
//
// and nothing else (no per-request logging). SIGTERM or SIGINT shuts all of them down.
//
// routers -check starts all five on 127.0.0.1 (free ports), sends each the requests of
// check.go, compares status and X-Route with what is expected, prints one line per
// mismatch and a summary, and exits 1 when anything differed.
//
// Routes, the same on every router, each in that router's own syntax (gin, httprouter and
// echo ":id", chi and gorilla "{id}"):
//
//	GET  /health                     200 "ok"
//	GET  /users/{id}                 200; 404 from the handler itself when id is "missing"
//	GET  /users/{id}/orders/{order}  200
//	GET  /files/*                    200, catch-all (gin and httprouter "*filepath", echo and
//	                                 chi "*", gorilla a PathPrefix("/files/") route)
//	GET  /api/v1/items/{id}          200, from a group / sub-router mounted at /api/v1
//	POST /api/v1/items               201, the same group (chi: Mount("/api") then
//	                                 Route("/v1"); gorilla: PathPrefix("/api/v1").Subrouter();
//	                                 gin, echo: Group; httprouter: the full path)
//	GET  /fail                       500 from the handler
//
// Any other path gets the router's own 404, and another method on a path above the router's
// own 405 (gin with HandleMethodNotAllowed, gorilla with its default method-mismatch
// handling, the others by default).
//
// Every answer that a route handler gives carries the header X-Route: the matched route as
// the router itself reports it (gin c.FullPath(), chi RouteContext(r).RoutePattern(),
// gorilla CurrentRoute(r).GetPathTemplate(), echo c.Path(); httprouter has no such API and
// gets the path it was registered with), and a body "<router> <route> <detail>".
//
// Middleware, as real services have it: gin runs in release mode with gin.Recovery() and a
// middleware that replaces c.Request with c.Request.WithContext(...) before c.Next(); chi
// uses middleware.RequestID (a new request through r.WithContext); gorilla a mux middleware
// doing the same; echo middleware.Recover() and one that calls c.SetRequest with a new
// context. httprouter has no middleware.
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
	"strings"
	"sync"
	"syscall"
	"time"
)

// A router the program can serve: its flag name and a constructor of its handler.
type router struct {
	name    string
	handler func() http.Handler
}

var routers = []router{
	{"gin", ginHandler},
	{"chi", chiHandler},
	{"gorilla", gorillaHandler},
	{"httprouter", httprouterHandler},
	{"echo", echoHandler},
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("routers: ")
	addrs := make([]*string, len(routers))
	for i, rt := range routers {
		addrs[i] = flag.String(rt.name, "", "serve "+rt.name+" on HOST:PORT (omitted: not started)")
	}
	check := flag.Bool("check", false, "serve every router on 127.0.0.1, send each the check requests, exit")
	flag.Parse()
	if flag.NArg() > 0 {
		log.Fatalf("unexpected arguments: %q", flag.Args())
	}
	want := map[string]string{}
	for i, rt := range routers {
		if *check {
			want[rt.name] = "127.0.0.1:0"
		} else if *addrs[i] != "" {
			want[rt.name] = *addrs[i]
		}
	}
	if len(want) == 0 {
		log.Fatal("no router to serve: give at least one of -gin, -chi, -gorilla, -httprouter, -echo")
	}

	// Catch the signals before announcing READY, or an early SIGTERM kills us.
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGTERM, syscall.SIGINT)

	s, err := start(want)
	if err != nil {
		log.Fatal(err)
	}
	if *check {
		ok := runChecks(s.addrs)
		s.shutdown()
		if !ok {
			os.Exit(1)
		}
		return
	}
	var ready []string
	for _, rt := range routers {
		if addr, ok := s.addrs[rt.name]; ok {
			ready = append(ready, rt.name+"="+addr)
		}
	}
	fmt.Printf("READY %s\n", strings.Join(ready, " "))

	select {
	case <-sigc:
	case err := <-s.errc:
		log.Fatal(err)
	}
	s.shutdown()
}

// servers are the running routers' HTTP servers.
type servers struct {
	list  []*http.Server
	addrs map[string]string // router name -> the address it listens on
	errc  chan error        // a server that stopped serving
}

// start listens on want's addresses (router name -> HOST:PORT) and serves each router there.
func start(want map[string]string) (*servers, error) {
	s := &servers{addrs: map[string]string{}, errc: make(chan error, len(want))}
	var listeners []net.Listener
	for _, rt := range routers {
		addr, ok := want[rt.name]
		if !ok {
			continue
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			for _, l := range listeners {
				l.Close()
			}
			return nil, fmt.Errorf("%s: %v", rt.name, err)
		}
		listeners = append(listeners, ln)
		s.list = append(s.list, &http.Server{Handler: rt.handler(), ReadHeaderTimeout: 10 * time.Second})
		s.addrs[rt.name] = ln.Addr().String()
	}
	for i := range s.list {
		srv, ln := s.list[i], listeners[i]
		go func() { s.errc <- srv.Serve(ln) }()
	}
	return s, nil
}

func (s *servers) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, srv := range s.list {
		wg.Add(1)
		go func(srv *http.Server) {
			defer wg.Done()
			if err := srv.Shutdown(ctx); err != nil {
				srv.Close()
			}
		}(srv)
	}
	wg.Wait()
}
