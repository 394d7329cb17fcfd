package main

import (
	"log"
	"net"
	"sync/atomic"
)

// meteredConn is this program's own connection wrapper (the "custom" wrapper): it counts
// the bytes that go through it.
type meteredConn struct {
	net.Conn
	bytesRead, bytesWritten int64
}

// Totals over all metered connections, closed or not, reported at exit.
var meteredRead, meteredWritten, meteredConns int64

func newMeteredConn(c net.Conn) *meteredConn {
	atomic.AddInt64(&meteredConns, 1)
	return &meteredConn{Conn: c}
}

func (c *meteredConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	atomic.AddInt64(&c.bytesRead, int64(n))
	atomic.AddInt64(&meteredRead, int64(n))
	return n, err
}

func (c *meteredConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	atomic.AddInt64(&c.bytesWritten, int64(n))
	atomic.AddInt64(&meteredWritten, int64(n))
	return n, err
}

// meteredListener hands out its connections as *meteredConn.
type meteredListener struct {
	net.Listener
}

func (l meteredListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return newMeteredConn(c), nil
}

func reportMetered() {
	if n := atomic.LoadInt64(&meteredConns); n > 0 {
		log.Printf("custom wrapper: %d connections, %d bytes read, %d written",
			n, atomic.LoadInt64(&meteredRead), atomic.LoadInt64(&meteredWritten))
	}
}
