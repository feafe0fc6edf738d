package brokertest

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/heraldhq/herald/pkg/broker"
	"github.com/heraldhq/herald/pkg/notification"
)

// RunCluster runs the cluster suite: factory is called more than once per
// test, and the brokers it returns within a test must share one back-end,
// as the nodes of a cluster do. Implementations that run on one node only
// (localbroker) skip it; they cannot be constructed twice over one
// back-end.
func RunCluster(t *testing.T, factory Factory) {
	tests := []struct {
		name string
		fn   func(*testing.T, Factory)
	}{
		{"EventsReachTheSubscribedNodeOnly", testCrossNodeDelivery},
		{"NodesAgreeOnOneOrderUnderConcurrentPublishers", testClusterOrder},
		{"CursorsResumeOnAnotherNode", testCrossNodeResume},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, factory) })
	}
}

func testCrossNodeDelivery(t *testing.T, factory Factory) {
	sa, sb := &Sink{}, &Sink{}
	a := factory(t, sa.Handle, broker.Retention{})
	b := factory(t, sb.Handle, broker.Retention{})
	subscribe(t, b, "u")
	subscribe(t, a, "marker")
	for i := 1; i <= 20; i++ {
		publish(t, a, Event("u", fmt.Sprint(i)))
	}
	publish(t, b, Event("marker", "1"))
	got := sb.WaitForEvents(t, "u", 20)
	checkGapFree(t, "node b", got, 20)
	for i, ev := range got {
		if Title(ev) != fmt.Sprint(i+1) {
			t.Fatalf("node b: event %d is %q", i+1, Title(ev))
		}
	}
	quietlyWaitFor(t, sa, "marker", 1)
	if got := sa.Titles("u"); len(got) != 0 {
		t.Fatalf("node a got events of a user it did not subscribe to: %v", got)
	}
	if got := sb.Titles("marker"); len(got) != 0 {
		t.Fatalf("node b got events of a user it did not subscribe to: %v", got)
	}
	page, _, err := b.History(context.Background(), "u", notification.Cursor{}, 100)
	if err != nil {
		t.Fatal(err)
	}
	checkGapFree(t, "history read on node b", page, 20)
}

func testClusterOrder(t *testing.T, factory Factory) {
	sa, sb := &Sink{}, &Sink{}
	nodes := []broker.Broker{factory(t, sa.Handle, broker.Retention{}), factory(t, sb.Handle, broker.Retention{})}
	for _, n := range nodes {
		subscribe(t, n, "u")
	}
	const writersPerNode, each = 3, 20
	ctx := context.Background()
	var wg sync.WaitGroup
	for ni, n := range nodes {
		for w := 0; w < writersPerNode; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < each; i++ {
					if err := n.Publish(ctx, []*notification.Event{Event("u", fmt.Sprintf("n%d-w%d-%d", ni, w, i))}); err != nil {
						t.Errorf("node %d writer %d: %v", ni, w, err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	const total = 2 * writersPerNode * each
	ga := sa.WaitForEvents(t, "u", total)
	gb := sb.WaitForEvents(t, "u", total)
	checkGapFree(t, "node a", ga, total)
	checkGapFree(t, "node b", gb, total)
	for i := range ga {
		if ga[i].ID != gb[i].ID || ga[i].Cursor != gb[i].Cursor {
			t.Fatalf("at seq %d node a got %s, node b %s", i+1, ga[i].ID, gb[i].ID)
		}
	}
	history, _, err := nodes[1].History(ctx, "u", notification.Cursor{}, total)
	if err != nil {
		t.Fatal(err)
	}
	checkGapFree(t, "history", history, total)
	for i := range history {
		if history[i].ID != ga[i].ID {
			t.Fatalf("history has %s at seq %d, the handlers got %s", history[i].ID, i+1, ga[i].ID)
		}
	}
}

func testCrossNodeResume(t *testing.T, factory Factory) {
	a := factory(t, nop, broker.Retention{})
	b := factory(t, nop, broker.Retention{})
	var evs []*notification.Event
	for i := 1; i <= 5; i++ {
		evs = append(evs, Event("u", fmt.Sprint(i)))
	}
	publish(t, a, evs...)
	page, head, err := b.History(context.Background(), "u", evs[1].Cursor, 10)
	if err != nil || seqs(page) != "[3 4 5]" || head != evs[4].Cursor {
		t.Fatalf("resume on node b: %s head %v err %v", seqs(page), head, err)
	}
	more := Event("u", "6")
	publish(t, b, more)
	if more.Cursor.Seq != 6 || more.Cursor.Epoch != evs[0].Cursor.Epoch {
		t.Fatalf("publish on node b continued at %v", more.Cursor)
	}
	page, _, err = a.History(context.Background(), "u", evs[4].Cursor, 10)
	if err != nil || seqs(page) != "[6]" {
		t.Fatalf("resume on node a: %s err %v", seqs(page), err)
	}
}
