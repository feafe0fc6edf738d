package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/pkg/push"
)

// Devices live in one hash (device id → Device JSON) with a set of ids per
// user. Pending pushes are a sorted set by due time, a hash of their
// payloads and a sorted set of claims by lease expiry. Every notification
// schedules one and every ack drops it, so they are spread over
// pushPartitions partitions by user (see partition.go): on a Redis Cluster
// those writes are shared by the primaries instead of all hitting one
// slot. A partition's three keys share one hash tag, so the claim script
// can move them together, and one user's pending pushes are all in one
// partition. Partition 0 keeps the tag {push} of the single key set of
// earlier versions, so its entries are still claimed after an upgrade.

// pushPartitions is fixed rather than configured: a pending push is found
// again by its user's partition, so the count cannot change while pushes
// are pending.
const pushPartitions = 16

func (s *Store) devicesKey() string             { return s.opts.Prefix + "devices" }
func (s *Store) userDevicesKey(u string) string { return s.opts.Prefix + "udev:{" + u + "}" }

// pushKeySets returns the due, msg and lease keys of every partition.
func pushKeySets(prefix string) [][]string {
	tags := partitionTags("push", pushPartitions)
	out := make([][]string, len(tags))
	for i, tag := range tags {
		p := prefix + "{" + tag + "}:"
		out[i] = []string{p + "due", p + "msg", p + "lease"}
	}
	return out
}

// pushKeysOf is the key set of user's partition.
func (s *Store) pushKeysOf(user string) []string {
	return s.pushKeys[partitionOf(user, len(s.pushKeys))]
}

// pendingUser is the user of a pending push's key (push.PendingKey).
func pendingUser(key string) string {
	if i := strings.IndexByte(key, 0); i >= 0 {
		return key[:i]
	}
	return key
}

// addDeviceScript adds device ARGV[1] to the user's set KEYS[1] unless
// the set already holds ARGV[2] (> 0) others: 1 added, 0 already there,
// -1 refused. One key, so it runs on Redis Cluster too, and atomically:
// concurrent registrations never take a user past the limit.
var addDeviceScript = redis.NewScript(`
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 0 end
local limit = tonumber(ARGV[2])
if limit > 0 and redis.call('SCARD', KEYS[1]) >= limit then return -1 end
redis.call('SADD', KEYS[1], ARGV[1])
return 1`)

// RegisterDevice stores d under d.ID; a device another user registered
// before moves to d.User. A device new to d.User is refused with
// push.ErrTooManyDevices when the user has limit devices already (limit
// <= 0: no limit); the check and the add are one script, so the limit
// is exact.
func (s *Store) RegisterDevice(ctx context.Context, d *push.Device, limit int) (created bool, err error) {
	val, err := json.Marshal(d)
	if err != nil {
		return false, err
	}
	old, err := s.c.HGet(ctx, s.devicesKey(), d.ID).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return false, fmt.Errorf("redisstore register device: %w", err)
	}
	var prev push.Device
	if old != "" {
		_ = json.Unmarshal([]byte(old), &prev)
	}
	added, err := addDeviceScript.Run(ctx, s.c, []string{s.userDevicesKey(d.User)}, d.ID, limit).Int()
	if err != nil {
		return false, fmt.Errorf("redisstore register device: %w", err)
	}
	if added < 0 {
		return false, push.ErrTooManyDevices
	}
	created = added == 1 || prev.User != d.User
	// The previous owner's set and the devices hash are in different
	// cluster slots, so no transaction can hold both. Neither order leaves
	// a wrong answer behind: Devices keeps only devices whose record names
	// the user, so an id left in the previous owner's set is ignored.
	_, err = s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		if prev.User != "" && prev.User != d.User {
			p.SRem(ctx, s.userDevicesKey(prev.User), d.ID)
		}
		p.HSet(ctx, s.devicesKey(), d.ID, val)
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("redisstore register device: %w", err)
	}
	return created, nil
}

// Devices returns user's devices.
func (s *Store) Devices(ctx context.Context, user string) ([]push.Device, error) {
	ids, err := s.c.SMembers(ctx, s.userDevicesKey(user)).Result()
	if err != nil {
		return nil, fmt.Errorf("redisstore devices of %q: %w", user, err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	vals, err := s.c.HMGet(ctx, s.devicesKey(), ids...).Result()
	if err != nil {
		return nil, fmt.Errorf("redisstore devices of %q: %w", user, err)
	}
	out := make([]push.Device, 0, len(vals))
	for _, v := range vals {
		str, ok := v.(string)
		if !ok {
			continue
		}
		var d push.Device
		if json.Unmarshal([]byte(str), &d) == nil && d.User == user {
			out = append(out, d)
		}
	}
	return out, nil
}

// HasDevices reports which of users have at least one device. It is
// asked before every publish, so concurrent calls share a pipeline: under
// load a burst of sends costs one round trip, not one each.
func (s *Store) HasDevices(ctx context.Context, users []string) (map[string]bool, error) {
	if len(users) == 0 {
		return map[string]bool{}, nil
	}
	req := &deviceCheck{users: users, done: make(chan struct{})}
	select {
	case s.deviceChecks <- req:
	case <-ctx.Done():
		return nil, fmt.Errorf("redisstore has devices: %w", ctx.Err())
	case <-s.ctx.Done():
		return nil, errors.New("redisstore has devices: store closed")
	}
	select {
	case <-req.done:
		return req.has, req.err
	case <-ctx.Done():
		return nil, fmt.Errorf("redisstore has devices: %w", ctx.Err())
	}
}

// deviceCheck is one HasDevices call waiting for its pipeline.
type deviceCheck struct {
	users []string
	has   map[string]bool
	err   error
	done  chan struct{} // closed once has or err is set
}

// maxDeviceCheckPipeline bounds how many waiting calls share a pipeline.
const maxDeviceCheckPipeline = 256

// deviceCheckLoop runs waiting HasDevices calls in pipelines until ctx
// ends.
func (s *Store) deviceCheckLoop(ctx context.Context) {
	batch := make([]*deviceCheck, 0, maxDeviceCheckPipeline)
	for {
		var ok bool
		if batch, ok = nextBatch(ctx, s.deviceChecks, batch[:0]); !ok {
			return
		}
		s.checkDevices(ctx, batch)
	}
}

func (s *Store) checkDevices(ctx context.Context, batch []*deviceCheck) {
	n := 0
	for _, r := range batch {
		n += len(r.users)
	}
	cmds := make([]*redis.IntCmd, 0, n)
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, r := range batch {
			for _, u := range r.users {
				cmds = append(cmds, p.SCard(ctx, s.userDevicesKey(u)))
			}
		}
		return nil
	})
	for _, r := range batch {
		mine := cmds[:len(r.users)]
		cmds = cmds[len(r.users):]
		if err != nil {
			r.err = fmt.Errorf("redisstore has devices: %w", err)
		} else {
			r.has = make(map[string]bool)
			for i, c := range mine {
				if c.Val() > 0 {
					r.has[r.users[i]] = true
				}
			}
		}
		close(r.done)
	}
}

// DeleteDevices removes user's devices: all with ids and session empty,
// those with the given ids, or those registered by session.
func (s *Store) DeleteDevices(ctx context.Context, user string, ids []string, session string) (int, error) {
	devs, err := s.Devices(ctx, user)
	if err != nil {
		return 0, err
	}
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	var gone []string
	for _, d := range devs {
		if (len(ids) > 0 && want[d.ID]) || (session != "" && d.Session == session) || (len(ids) == 0 && session == "") {
			gone = append(gone, d.ID)
		}
	}
	if len(gone) == 0 {
		return 0, nil
	}
	// Two slots (see RegisterDevice): a pipeline, not a transaction. An
	// id whose record is gone is skipped by Devices.
	_, err = s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.HDel(ctx, s.devicesKey(), gone...)
		members := make([]any, len(gone))
		for i, id := range gone {
			members[i] = id
		}
		p.SRem(ctx, s.userDevicesKey(user), members...)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("redisstore delete devices: %w", err)
	}
	return len(gone), nil
}

// SchedulePush stores pending pushes, replacing any with the same key (and
// any claim on it), each in its user's partition.
func (s *Store) SchedulePush(ctx context.Context, ps []push.Pending) error {
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range ps {
			val, err := json.Marshal(&ps[i])
			if err != nil {
				return err
			}
			k := s.pushKeysOf(ps[i].User)
			key := ps[i].Key()
			p.HSet(ctx, k[1], key, val)
			p.ZRem(ctx, k[2], key)
			p.ZAdd(ctx, k[0], redis.Z{Score: float64(ps[i].Due.UnixMilli()), Member: key})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redisstore schedule push: %w", err)
	}
	return nil
}

// CancelPush drops pending or claimed pushes; a key names its user, and so
// its partition.
func (s *Store) CancelPush(ctx context.Context, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	// The keys of one call are mostly one user's (an ack): group them so
	// each partition costs three commands, not three per key.
	byPart := make(map[int][]string, 1)
	for _, key := range keys {
		p := partitionOf(pendingUser(key), len(s.pushKeys))
		byPart[p] = append(byPart[p], key)
	}
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for part, keys := range byPart {
			k := s.pushKeys[part]
			members := make([]any, len(keys))
			for i, key := range keys {
				members[i] = key
			}
			p.ZRem(ctx, k[0], members...)
			p.ZRem(ctx, k[2], members...)
			p.HDel(ctx, k[1], keys...)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redisstore cancel push: %w", err)
	}
	return nil
}

// DonePush forgets pushes that were sent or given up.
func (s *Store) DonePush(ctx context.Context, keys []string) error { return s.CancelPush(ctx, keys) }

// ReleasePush is a no-op in Redis: a claim ends with its lease.
func (s *Store) ReleasePush(keys []string) {}

// claimScript moves up to ARGV[2] pushes due by ARGV[1] (and claims whose
// lease ran out: their node died mid-send) into the claimed set with a
// lease until ARGV[3], and returns key, payload pairs. Only one node's
// script can move a given key, so only one node sends it.
var claimScript = redis.NewScript(`
local now, n, lease = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local out = {}
local function take(keys, from)
  for _, k in ipairs(keys) do
    if #out >= 2 * n then return end
    redis.call('ZREM', from, k)
    local msg = redis.call('HGET', KEYS[2], k)
    if msg then
      redis.call('ZADD', KEYS[3], lease, k)
      table.insert(out, k)
      table.insert(out, msg)
    end
  end
end
take(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, n), KEYS[3])
take(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, n), KEYS[1])
return out`)

// ClaimPush hands out up to max pushes due by now, each leased for lease:
// a claim not finished by then is handed out again.
//
// It first counts what is due (and whose lease ran out) in every
// partition, in one pipeline (one round trip per primary), so an idle
// poll costs no script; then it runs the claim script on the partitions
// that have some, asking each for no more than it has and all together
// for no more than max, starting from a rotating partition so a busy one
// does not starve the rest.
func (s *Store) ClaimPush(ctx context.Context, now time.Time, max int, lease time.Duration) ([]push.Pending, error) {
	if max <= 0 {
		return nil, nil
	}
	nowMs := strconv.FormatInt(now.UnixMilli(), 10)
	counts := make([]*redis.IntCmd, 2*len(s.pushKeys))
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range s.pushKeys {
			counts[2*i] = p.ZCount(ctx, k[0], "-inf", nowMs)
			counts[2*i+1] = p.ZCount(ctx, k[2], "-inf", nowMs)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("redisstore claim push: %w", err)
	}
	type ask struct{ part, n int }
	var asks []ask
	left := max
	start := int(s.pushNext.Add(1))
	for j := 0; j < len(s.pushKeys) && left > 0; j++ {
		i := (start + j) % len(s.pushKeys)
		if n := int(counts[2*i].Val() + counts[2*i+1].Val()); n > 0 {
			n = min(n, left)
			asks = append(asks, ask{i, n})
			left -= n
		}
	}
	if len(asks) == 0 {
		return nil, nil
	}
	until := strconv.FormatInt(now.Add(lease).UnixMilli(), 10)
	cmds := make([]*redis.Cmd, len(asks))
	_, err = s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, a := range asks {
			cmds[i] = claimScript.EvalSha(ctx, p, s.pushKeys[a.part], nowMs, a.n, until)
		}
		return nil
	})
	if err != nil && noScript(cmds) {
		// A primary without the script (not loaded there yet, or Redis
		// lost its cache): send it again there only, as the others have
		// claimed already.
		_, err = s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, a := range asks {
				if redis.HasErrorPrefix(cmds[i].Err(), "NOSCRIPT") {
					cmds[i] = claimScript.Eval(ctx, p, s.pushKeys[a.part], nowMs, a.n, until)
				}
			}
			return nil
		})
	}
	out := make([]push.Pending, 0, max)
	for _, c := range cmds {
		// A partition that failed keeps its pushes for the next poll;
		// what the others claimed is handed out.
		res, cerr := c.StringSlice()
		if cerr != nil {
			continue
		}
		for i := 0; i+1 < len(res); i += 2 {
			var p push.Pending
			if json.Unmarshal([]byte(res[i+1]), &p) == nil {
				out = append(out, p)
			}
		}
	}
	if len(out) == 0 && err != nil {
		return nil, fmt.Errorf("redisstore claim push: %w", err)
	}
	return out, nil
}
