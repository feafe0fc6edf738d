// Package redisslot computes Redis Cluster hash slots: which of the
// cluster's 16,384 slots, and so which primary, owns a key.
package redisslot

import "strings"

// Count is the number of Redis Cluster hash slots.
const Count = 16384

// Of is the hash slot of key: CRC16 of its hash tag (the part between the
// first { and the next }, when not empty) or of the whole key, modulo
// Count.
func Of(key string) int {
	if s := strings.IndexByte(key, '{'); s >= 0 {
		if e := strings.IndexByte(key[s+1:], '}'); e > 0 {
			key = key[s+1 : s+1+e]
		}
	}
	return int(crc16(key) % Count)
}

// crc16 is CRC-16/XMODEM, Redis Cluster's key hash.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}
