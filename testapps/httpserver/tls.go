package main

import (
	"crypto/tls"
	"net/http"
)

// serveOverTLS makes srv answer HTTP/1.1 over TLS with a self-signed certificate made at
// start: an HTTPS server whose connections are *tls.Conn. HTTP/2 stays off (an empty
// TLSNextProto), so every request goes through net/http's HTTP/1 server.
func serveOverTLS(srv *http.Server) error {
	cert, err := selfSigned()
	if err != nil {
		return err
	}
	srv.TLSConfig = &tls.Config{
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{"http/1.1"},
	}
	srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
	return nil
}
