package queuelog

import "time"

// keyLoop writes dedupe keys behind to the Backing, every KeyFlush or
// sooner when many wait.
func (l *Log) keyLoop() {
	defer l.done.Done()
	t := time.NewTicker(l.opts.KeyFlush)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-l.saveNow:
		case <-l.stop:
			l.saveKeys()
			return
		}
		l.saveKeys()
	}
}

// saveKeys writes the waiting keys to the Backing and then forgets them:
// from then on the Backing answers for them, and the segments that held
// them may go.
func (l *Log) saveKeys() {
	l.mu.Lock()
	batch := l.unsaved
	l.unsaved = nil
	l.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	now := l.now()
	keys := make([]Key, 0, len(batch))
	for _, k := range batch {
		if k.expires > now.UnixNano() {
			keys = append(keys, Key{Name: k.key, Expires: time.Unix(0, k.expires)})
		}
	}
	err := l.backing.PutKeys(keys)
	l.mu.Lock()
	if err != nil {
		l.unsaved = append(batch, l.unsaved...)
		l.mu.Unlock()
		l.opts.Logger.Warn("dedupe keys not written behind; retrying", "keys", len(batch), "err", err)
		return
	}
	for _, k := range batch {
		k.seg.keys--
		if e, ok := l.keys[k.key]; ok && e <= k.expires {
			delete(l.keys, k.key)
		}
	}
	dead := l.collectGarbage()
	l.mu.Unlock()
	l.removeSegments(dead)
}
