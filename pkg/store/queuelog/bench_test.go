package queuelog

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
)

// BenchmarkEnqueue measures the 200's share of a webhook: a record and its
// part of a data sync, with 64 concurrent callers sharing commits.
func BenchmarkEnqueue(b *testing.B) {
	l, err := Open(b.TempDir(), newMemBacking(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	body := make([]byte, 1500)
	var n atomic.Int64
	b.SetParallelism(32) // 64 callers on 2 cores
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := l.Enqueue(context.Background(), fmt.Sprint("k", n.Add(1)), body); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
