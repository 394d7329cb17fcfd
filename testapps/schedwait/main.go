// schedwait is an HTTP server whose routes wait in known ways, for the scheduler-wait tests:
// each route blocks its goroutine for ?ms= milliseconds on one kind of thing, and -hogs N
// starts N goroutines that burn CPU forever (with GOMAXPROCS=1 they compete with every
// request for the one processor).
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// hogSink keeps the compiler from proving the hogs' work dead.
var hogSink uint64

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	hogs := flag.Int("hogs", 0, "CPU-bound goroutines to run alongside the server")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("schedwait: ")

	for i := 0; i < *hogs; i++ {
		go func() {
			for {
				hogSink += busyWork(1000)
			}
		}()
	}
	peer, err := startSlowPeer()
	if err != nil {
		log.Fatal(err)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/work", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, busyWork(param(r, "us")))
	})
	mux.HandleFunc("/sleep", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(millis(r))
		fmt.Fprintln(w, "slept")
	})
	mux.HandleFunc("/chan", func(w http.ResponseWriter, r *http.Request) {
		ready := make(chan struct{})
		wait := millis(r)
		go func() {
			time.Sleep(wait)
			close(ready)
		}()
		<-ready
		fmt.Fprintln(w, "received")
	})
	mux.HandleFunc("/lock", func(w http.ResponseWriter, r *http.Request) {
		var mu sync.Mutex
		held := make(chan struct{})
		wait := millis(r)
		go func() {
			mu.Lock()
			close(held)
			time.Sleep(wait)
			mu.Unlock()
		}()
		<-held
		mu.Lock()
		mu.Unlock()
		fmt.Fprintln(w, "locked")
	})
	mux.HandleFunc("/net", func(w http.ResponseWriter, r *http.Request) {
		conn, err := net.Dial("tcp", peer)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer conn.Close()
		fmt.Fprintf(conn, "%d\n", param(r, "ms"))
		buf := make([]byte, 1)
		if _, err := conn.Read(buf); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		fmt.Fprintln(w, "answered")
	})
	mux.HandleFunc("/syscall", func(w http.ResponseWriter, r *http.Request) {
		ts := syscall.NsecToTimespec(millis(r).Nanoseconds())
		syscall.Nanosleep(&ts, nil)
		fmt.Fprintln(w, "slept in the kernel")
	})

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGTERM, syscall.SIGINT)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Printf("READY %s\n", ln.Addr())
	select {
	case <-sigc:
	case err := <-errc:
		log.Fatal(err)
	}
}

// startSlowPeer listens on loopback; each connection sends a number of milliseconds, and
// gets one byte back after that long.
func startSlowPeer() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				var ms int
				if _, err := fmt.Fscan(c, &ms); err != nil {
					return
				}
				time.Sleep(time.Duration(ms) * time.Millisecond)
				c.Write([]byte{'.'})
			}(conn)
		}
	}()
	return ln.Addr().String(), nil
}

func param(r *http.Request, name string) int {
	n, err := strconv.Atoi(r.URL.Query().Get(name))
	if err != nil || n < 0 {
		return 0
	}
	return n
}

func millis(r *http.Request) time.Duration {
	return time.Duration(param(r, "ms")) * time.Millisecond
}
