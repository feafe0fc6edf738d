package queuelog_test

import (
	"path/filepath"
	"testing"

	"github.com/heraldhq/herald/pkg/queue"
	"github.com/heraldhq/herald/pkg/queue/queuetest"
	"github.com/heraldhq/herald/pkg/store/boltstore"
	"github.com/heraldhq/herald/pkg/store/queuelog"
)

func TestConformanceOverBolt(t *testing.T) {
	queuetest.Run(t, func(t *testing.T, opts queue.Options) queuetest.Queue {
		dir := t.TempDir()
		st, err := boltstore.Open(filepath.Join(dir, "herald.db"), boltstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		l, err := queuelog.Open(filepath.Join(dir, "queue"), st.QueueBacking(), queuelog.Options{Options: opts})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := l.Close(); err != nil {
				t.Error(err)
			}
			st.Close()
		})
		return l
	})
}
