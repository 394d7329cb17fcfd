// kvwire: a tiny key-value service over a line protocol, the "library" instrumented by the
// test-only probe in tests/probe_library (its manifest, C and declaration, and nothing else).
//
//	kvwire -addr 127.0.0.1:0                      serve; prints "READY <addr>"
//	kvwire -call ADDR -n N -keys a,b,missing      N calls on one connection, keys in turn
//
// A request is "OP KEY\n", a reply "STATUS VALUE\n" (0 found, 1 not found).
package main

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

type kvRequest struct {
	Op  string
	Key string
}

// parse reads "OP KEY" into the request; false when the line is not one. Kept out of line,
// as send is: gotrace looks for a struct in DWARF only when the program has its methods.
//
//go:noinline
func (r *kvRequest) parse(line string) bool {
	fields := strings.Fields(line)
	if len(fields) != 2 {
		return false
	}
	r.Op, r.Key = fields[0], fields[1]
	return true
}

type kvReply struct {
	Status int
	Value  string
}

// connState is what the server keeps of one connection.
type connState struct {
	conn   net.Conn
	r      *bufio.Reader
	served int
}

//go:noinline
func (cs *connState) send(reply *kvReply) {
	fmt.Fprintf(cs.conn, "%d %s\n", reply.Status, reply.Value)
}

type kvServer struct {
	values map[string]string
}

//go:noinline
func (s *kvServer) handle(cs *connState, req *kvRequest) *kvReply {
	time.Sleep(2 * time.Millisecond)
	cs.served++
	value, ok := s.values[req.Key]
	if !ok {
		return &kvReply{Status: 1}
	}
	return &kvReply{Value: value}
}

func (s *kvServer) serve(conn net.Conn) {
	defer conn.Close()
	cs := &connState{conn: conn, r: bufio.NewReader(conn)}
	for {
		line, err := cs.r.ReadString('\n')
		if err != nil {
			return
		}
		req := &kvRequest{}
		if !req.parse(line) {
			cs.send(&kvReply{Status: 2, Value: "-"})
			continue
		}
		cs.send(s.handle(cs, req))
	}
}

type kvClient struct {
	conn net.Conn
	r    *bufio.Reader
}

//go:noinline
func (c *kvClient) call(req *kvRequest) (*kvReply, error) {
	if _, err := fmt.Fprintf(c.conn, "%s %s\n", req.Op, req.Key); err != nil {
		return nil, err
	}
	line, err := c.r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	status, value, _ := strings.Cut(strings.TrimSpace(line), " ")
	code, err := strconv.Atoi(status)
	if err != nil {
		return nil, err
	}
	return &kvReply{Status: code, Value: value}, nil
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "serve on this address")
	target := flag.String("call", "", "call the server at this address instead of serving")
	n := flag.Int("n", 1, "calls to make")
	keys := flag.String("keys", "a", "keys to get, in turn")
	flag.Parse()
	if *target != "" {
		conn, err := net.Dial("tcp", *target)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		client := &kvClient{conn: conn, r: bufio.NewReader(conn)}
		names := strings.Split(*keys, ",")
		for i := 0; i < *n; i++ {
			reply, err := client.call(&kvRequest{Op: "GET", Key: names[i%len(names)]})
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			fmt.Println(reply.Status, reply.Value)
		}
		conn.Close()
		return
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("READY %s\n", ln.Addr())
	server := &kvServer{values: map[string]string{"a": "apple", "b": "banana"}}
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		go server.serve(conn)
	}
}
