package boltstore

import (
	"context"
	"errors"
	"testing"
)

func TestKeyValue(t *testing.T) {
	s, _ := openTemp(t, Options{})
	ctx := context.Background()
	if _, err := s.Get(ctx, "missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing key: %v", err)
	}
	steps := []struct {
		put  string
		want string
	}{
		{put: "v1", want: "v1"},
		{put: "v2", want: "v2"}, // replaced
		{put: "", want: ""},     // an empty value is still a value
	}
	for _, st := range steps {
		if err := s.Put(ctx, "k", []byte(st.put)); err != nil {
			t.Fatal(err)
		}
		v, err := s.Get(ctx, "k")
		if err != nil || string(v) != st.want || v == nil {
			t.Fatalf("after put %q: %q %v", st.put, v, err)
		}
	}
	v, _ := s.Get(ctx, "k")
	if err := s.Put(ctx, "k", []byte("v3")); err != nil {
		t.Fatal(err)
	}
	if string(v) != "" {
		t.Fatalf("a returned value changed under the caller: %q", v)
	}
	if err := s.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "k"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted key: %v", err)
	}
	if err := s.Delete(ctx, "k"); err != nil {
		t.Fatalf("deleting a missing key: %v", err)
	}
	if err := s.Put(ctx, "", []byte("x")); err == nil {
		t.Fatal("empty key accepted")
	}
}
