package main

import (
	"flag"
	"io"
	"slices"
	"testing"
)

func TestRedisPIDFlagTakesListsAndRepeats(t *testing.T) {
	var pids pidList
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Var(&pids, "redis-pid", "")
	fs.Var(&pids, "redis-pids", "")
	if err := fs.Parse([]string{"--redis-pid", "10,11", "--redis-pids", "12"}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(pids, pidList{10, 11, 12}) || pids.String() != "10,11,12" {
		t.Fatalf("pids %v (%q), want 10,11,12", pids, pids.String())
	}
	if err := fs.Parse([]string{"--redis-pid", "11"}); err == nil {
		t.Fatal("a pid given twice would be counted twice")
	}
	if err := fs.Parse([]string{"--redis-pid", "x"}); err == nil {
		t.Fatal("a malformed pid was accepted")
	}
}
