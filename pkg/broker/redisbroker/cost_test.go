package redisbroker_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/pkg/broker/brokertest"
	"github.com/heraldhq/herald/pkg/broker/redisbroker"
	"github.com/heraldhq/herald/pkg/notification"
	"github.com/heraldhq/herald/pkg/redistest"
)

// BenchmarkPublishUnicastRedisCPU publishes one notification at a time to
// users subscribed on this node, as a unicast send does, and reports the
// Redis CPU each costs: redis-cpu-usec/op is the server's CPU time (INFO
// cpu, user and system) over b.N, script-usec/op the publish script's own
// time by INFO commandstats (which includes the commands it calls, also
// listed on their own in the log).
func BenchmarkPublishUnicastRedisCPU(b *testing.B) {
	srv := redistest.Start(b)
	sink := &brokertest.Sink{}
	br := newBroker(b, srv, sink.Handle, redisbroker.Options{})
	ctx := context.Background()
	const users = 50
	for i := range users {
		if err := br.Subscribe(ctx, fmt.Sprint("u", i)); err != nil {
			b.Fatal(err)
		}
	}
	// Warm up: every user has a history, the script is loaded.
	for i := range users {
		if err := br.Publish(ctx, []*notification.Event{brokertest.Event(fmt.Sprint("u", i), "warm")}); err != nil {
			b.Fatal(err)
		}
	}
	c := srv.Client()
	if err := c.ConfigResetStat(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	cpu0 := redisCPU(b, c)
	b.ResetTimer()
	for i := range b.N {
		ev := brokertest.Event(fmt.Sprint("u", i%users), strconv.Itoa(i))
		if err := br.Publish(ctx, []*notification.Event{ev}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	cpu := redisCPU(b, c) - cpu0
	info, err := c.Info(ctx, "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	stats := commandStats(info)
	for cmd, f := range stats {
		b.Logf("%s: calls=%v usec=%v", cmd, f["calls"], f["usec"])
	}
	script := stats["evalsha"]["usec"]
	b.ReportMetric(cpu/float64(b.N), "redis-cpu-usec/op")
	b.ReportMetric(script/float64(b.N), "script-usec/op")
}

// redisCPU is the server's CPU time so far in microseconds.
func redisCPU(b *testing.B, c *redis.Client) float64 {
	info, err := c.Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var sum float64
	for _, line := range strings.Split(info, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		if k == "used_cpu_user" || k == "used_cpu_sys" {
			f, _ := strconv.ParseFloat(v, 64)
			sum += f * 1e6
		}
	}
	return sum
}
