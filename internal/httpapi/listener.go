package httpapi

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"time"
)

// netHTTP431 is what net/http writes, straight to the connection and before
// any handler runs, when a request's head exceeds the server's
// MaxHeaderBytes (net/http/server.go, (*conn).serve).
const netHTTP431 = "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n431 Request Header Fields Too Large"

// Listener returns ln with net/http's plain-text 431 replaced by the API's
// problem+json one, so that a head over the server's MaxHeaderBytes gets the
// same answer as one over MaxHeaderBytes, which the handler refuses itself.
// Nothing else written to the connections changes. It is for the public
// listener of an *http.Server serving HTTP/1 in clear (TLS is terminated in
// front of authd). now dates the answer.
func Listener(ln net.Listener, now func() time.Time) net.Listener { return listener{ln, now} }

type listener struct {
	net.Listener
	now func() time.Time
}

func (l listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &conn{Conn: c, now: l.now}, nil
}

// conn rewrites net/http's 431. net/http writes it with one Write call and
// then closes the connection, so comparing whole writes is enough.
type conn struct {
	net.Conn
	now func() time.Time
}

func (c *conn) Write(b []byte) (int, error) {
	if len(b) == len(netHTTP431) && string(b) == netHTTP431 {
		if _, err := c.Conn.Write(problem431(c.now())); err != nil {
			return 0, err
		}
		return len(b), nil
	}
	return c.Conn.Write(b)
}

// CloseWrite lets net/http half-close the connection after the 431, as it
// does on a bare TCP connection.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// problem431 is the whole HTTP/1.1 answer of a head too large for the
// server to read: the problem+json of request_header_too_large with the
// headers of every answer.
func problem431(now time.Time) []byte {
	body, _ := json.Marshal(Problem{ // a Problem of strings and an int always marshals
		Type:   "https://authd.dev/problems/" + codeHeaderTooLarge,
		Title:  titles[codeHeaderTooLarge],
		Status: http.StatusRequestHeaderFieldsTooLarge,
		Code:   codeHeaderTooLarge,
		Detail: "the request line and headers must be at most " + strconv.Itoa(MaxHeaderBytes) + " bytes",
	})
	body = append(body, '\n')
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 431 Request Header Fields Too Large\r\n")
	b.WriteString("Date: " + now.UTC().Format(http.TimeFormat) + "\r\n")
	b.WriteString("Content-Type: application/problem+json\r\n")
	b.WriteString("Cache-Control: no-store\r\n")
	b.WriteString("X-Content-Type-Options: nosniff\r\n")
	b.WriteString("X-Request-Id: " + newRequestID() + "\r\n")
	b.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n")
	b.WriteString("Connection: close\r\n\r\n")
	b.Write(body)
	return b.Bytes()
}
