package socket

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func TestSocketWriterKeepsWhatTheSocketWouldNotTake(t *testing.T) {
	client, server := tcpPair(t)
	w := New(server)
	if !w.CanTry() {
		t.Fatal("a TCP connection cannot be written without waiting")
	}
	// Nobody reads, so the socket fills: the write that does not fit is
	// taken in part or not at all, and the rest is kept.
	var sent bytes.Buffer
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096)
	full := false
	for i := 0; i < 1000 && !full; i++ {
		c := append([]byte{byte(i)}, chunk...)
		all, err := w.TryWrite([][]byte{c[:100], c[100:]})
		if err != nil {
			t.Fatal(err)
		}
		sent.Write(c)
		full = !all
	}
	if !full {
		t.Fatal("64 MiB went into an unread socket without waiting")
	}
	if len(w.rest) == 0 {
		t.Fatal("a partial write kept nothing")
	}
	// While the socket is full, later frames queue behind the rest.
	if all, err := w.TryWrite([][]byte{[]byte("later")}); all || err != nil {
		t.Fatalf("write behind a kept rest: all %v err %v", all, err)
	}
	sent.WriteString("later")

	got := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(client)
		got <- b
	}()
	if err := w.Write(time.Now().Add(10*time.Second), []byte("end")); err != nil {
		t.Fatal(err)
	}
	sent.WriteString("end")
	server.Close()
	if b := <-got; !bytes.Equal(b, sent.Bytes()) {
		t.Fatalf("received %d bytes, sent %d, or out of order", len(b), sent.Len())
	}
}

func TestSocketWriterTriesAgainAfterADeadlinePassed(t *testing.T) {
	client, server := tcpPair(t)
	w := New(server)
	if err := w.Write(time.Now().Add(20*time.Millisecond), []byte("a")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(40 * time.Millisecond)
	all, err := w.TryWrite([][]byte{[]byte("b")})
	if err != nil || !all {
		t.Fatalf("write after an earlier deadline passed: all %v err %v", all, err)
	}
	buf := make([]byte, 2)
	if _, err := io.ReadFull(client, buf); err != nil || string(buf) != "ab" {
		t.Fatalf("read %q: %v", buf, err)
	}
}

func TestSocketWriterReportsABrokenConnection(t *testing.T) {
	client, server := tcpPair(t)
	w := New(server)
	client.(*net.TCPConn).SetLinger(0) // the peer resets rather than closes
	client.Close()
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		_, err = w.TryWrite([][]byte{[]byte("x")})
		time.Sleep(time.Millisecond)
	}
	if err == nil {
		t.Fatal("writes to a reset connection keep succeeding")
	}
}

func TestSocketWriterNeedsASocketToTry(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if w := New(a); w.CanTry() {
		t.Fatal("an in-memory pipe claims it can be written without waiting")
	}
}
