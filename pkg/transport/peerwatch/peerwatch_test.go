package peerwatch

import (
	"net"
	"testing"
	"time"
)

func pair(t *testing.T) (server, client net.Conn) {
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
	t.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}

func TestNoticesPeerHangUp(t *testing.T) {
	w, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	server, client := pair(t)
	other, otherClient := pair(t)
	fired := make(chan string, 2)
	if _, err := w.Watch(server, func() { fired <- "server" }); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Watch(other, func() { fired <- "other" }); err != nil {
		t.Fatal(err)
	}
	_ = otherClient
	client.Close()
	select {
	case who := <-fired:
		if who != "server" {
			t.Fatalf("callback for %s", who)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("hang-up not noticed")
	}
	select {
	case who := <-fired:
		t.Fatalf("unexpected callback for %s", who)
	case <-time.After(200 * time.Millisecond):
	}
}

func TestStopPreventsCallback(t *testing.T) {
	w, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	server, client := pair(t)
	fired := make(chan struct{}, 1)
	stop, err := w.Watch(server, func() { fired <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	stop()
	client.Close()
	select {
	case <-fired:
		t.Fatal("callback after stop")
	case <-time.After(300 * time.Millisecond):
	}
}
