// Package segfile holds what the embedded node's append-only logs (the
// history log and the webhook queue log) share: a directory lock, segment
// files named by number, and checksummed records.
//
// A record is a little-endian uint32 body length, the CRC-32C of the body,
// and the body. A crash during a write leaves at most a torn record at the
// end of the newest segment; Scan stops there and the caller cuts it off.
package segfile

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

const (
	// Header is the length and checksum in front of every record body.
	Header = 8
	// MaxBody bounds a record body: a longer length is corruption.
	MaxBody = 4 << 20
	suffix  = ".seg"
	// maxSegment bounds how far Scan reads: no segment is written this large.
	maxSegment = 4 << 30
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrLocked is returned by Lock when another process holds the directory.
var ErrLocked = errors.New("directory is in use by another process")

// ErrBadRecord marks a record that is not whole: torn, corrupt or malformed.
var ErrBadRecord = errors.New("malformed record")

// Lock creates dir if needed and takes an exclusive flock on its lock
// file, held until the returned file is closed.
func Lock(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, ErrLocked
		}
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	return f, nil
}

// Name is the file name of segment id.
func Name(id uint32) string { return fmt.Sprintf("%016x%s", id, suffix) }

// List returns the segment ids in dir, oldest first.
func List(dir string) ([]uint32, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list segments: %w", err)
	}
	var ids []uint32
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), suffix)
		if !ok {
			continue
		}
		id, err := strconv.ParseUint(name, 16, 32)
		if err != nil || len(name) != 16 || id == 0 {
			return nil, fmt.Errorf("unexpected file %q", e.Name())
		}
		ids = append(ids, uint32(id))
	}
	slices.Sort(ids)
	return ids, nil
}

// Open opens an existing segment for reading and writing.
func Open(dir string, id uint32) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, Name(id)), os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open segment: %w", err)
	}
	return f, nil
}

// Create makes segment id, which must not exist, and syncs the directory
// so the file survives a crash.
func Create(dir string, id uint32) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, Name(id)), os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("new segment: %w", err)
	}
	if err := SyncDir(dir); err != nil {
		f.Close()
		return nil, fmt.Errorf("new segment: %w", err)
	}
	return f, nil
}

// Remove deletes segment id.
func Remove(dir string, id uint32) error {
	return os.Remove(filepath.Join(dir, Name(id)))
}

// Append appends one record to b: fill appends the body.
func Append(b []byte, fill func([]byte) []byte) []byte {
	start := len(b)
	b = append(b, make([]byte, Header)...)
	b = fill(b)
	body := b[start+Header:]
	binary.LittleEndian.PutUint32(b[start:], uint32(len(body)))
	binary.LittleEndian.PutUint32(b[start+4:], crc32.Checksum(body, castagnoli))
	return b
}

// Next splits the first record off b, as written by Append: its body and
// the rest. ok is false when b does not start with a whole, intact record.
func Next(b []byte) (body, rest []byte, ok bool) {
	if len(b) < Header {
		return nil, b, false
	}
	size := int(binary.LittleEndian.Uint32(b))
	if size == 0 || size > MaxBody || len(b)-Header < size {
		return nil, b, false
	}
	body = b[Header : Header+size]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(b[4:]) {
		return nil, b, false
	}
	return body, b[Header+size:], true
}

// ReadAt reads the record at off of f into buf (grown as needed) and
// returns its body, which aliases the returned buffer.
func ReadAt(f *os.File, off int64, buf []byte) (body, _ []byte, err error) {
	buf = buf[:cap(buf)]
	if len(buf) < 512 {
		buf = make([]byte, 512)
	}
	n, err := f.ReadAt(buf, off)
	if n < Header {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, buf, fmt.Errorf("offset %d: %w", off, err)
	}
	size := int(binary.LittleEndian.Uint32(buf))
	if size > MaxBody {
		return nil, buf, fmt.Errorf("offset %d: %w", off, ErrBadRecord)
	}
	if total := Header + size; n < total {
		if cap(buf) < total {
			buf = append(buf[:n], make([]byte, total-n)...)
		}
		buf = buf[:total]
		if _, err := f.ReadAt(buf[n:], off+int64(n)); err != nil {
			return nil, buf, fmt.Errorf("offset %d: %w", off, err)
		}
	}
	body = buf[Header : Header+size]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(buf[4:]) {
		return nil, buf, fmt.Errorf("offset %d: checksum mismatch", off)
	}
	return body, buf, nil
}

// Scan reads f's records from the start and calls fn with each one's
// offset and body (valid only during the call). It stops at the end of the
// records (the end of the file, or zeroed space), returning that offset,
// or at the first record that is not whole or that fn rejects, returning
// that record's offset and why.
func Scan(f *os.File, fn func(off int64, body []byte) error) (end int64, err error) {
	r := bufio.NewReaderSize(io.NewSectionReader(f, 0, 1<<62), 1<<20)
	var hdr [Header]byte
	var body []byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err == io.EOF {
			return end, nil
		} else if err != nil {
			return end, fmt.Errorf("offset %d: header: %w: %w", end, ErrBadRecord, err)
		}
		size := int64(binary.LittleEndian.Uint32(hdr[:]))
		if hdr == [Header]byte{} {
			return end, nil // the zeroed space Write keeps ahead of the records
		}
		if size == 0 || size > MaxBody {
			return end, fmt.Errorf("offset %d: record length %d: %w", end, size, ErrBadRecord)
		}
		if int64(cap(body)) < size {
			body = make([]byte, size)
		}
		body = body[:size]
		if _, err := io.ReadFull(r, body); err != nil {
			return end, fmt.Errorf("offset %d: body: %w: %w", end, ErrBadRecord, err)
		}
		if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(hdr[4:]) {
			return end, fmt.Errorf("offset %d: checksum mismatch: %w", end, ErrBadRecord)
		}
		if err := fn(end, body); err != nil {
			return end, fmt.Errorf("offset %d: %w", end, err)
		}
		end += Header + size
		if end > maxSegment {
			return end, errors.New("segment is larger than any segment written")
		}
	}
}

// Prealloc is how far ahead of its records Write zeroes a segment.
const Prealloc = 1 << 20

var zeros [64 << 10]byte

// Write writes buf at base of f and syncs it. alloc is how far the file is
// already written (records or zeros); when buf goes past it, Write first
// zeroes the file up to the next Prealloc boundary past buf. An append
// that grows the file makes its data sync commit the file system's
// journal as well; writing into zeroed space, most syncs flush data only,
// which costs half as much CPU and time here (ext4: 80 µs against 160 µs
// of CPU per 4 KiB write and sync). On failure the caller cuts the file
// back to base and sets alloc to base.
func Write(f *os.File, base int64, buf []byte, alloc *int64) error {
	end := base + int64(len(buf))
	if end > *alloc {
		target := (end/Prealloc + 1) * Prealloc
		for off := *alloc; off < target; {
			n := min(int64(len(zeros)), target-off)
			if _, err := f.WriteAt(zeros[:n], off); err != nil {
				return err
			}
			off += n
		}
		*alloc = target
	}
	if _, err := f.WriteAt(buf, base); err != nil {
		return err
	}
	return Fdatasync(f)
}

// Seal cuts a segment that is no longer written to at the end of its
// records and syncs it, so that only the newest segment has zeroed space
// (or a torn record) after its records.
func Seal(f *os.File, end int64) error {
	if err := f.Truncate(end); err != nil {
		return fmt.Errorf("seal segment: %w", err)
	}
	if err := Fdatasync(f); err != nil {
		return fmt.Errorf("seal segment: %w", err)
	}
	return nil
}

// Size is the size of f.
func Size(f *os.File) (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// CutTail truncates f to end and syncs it: the torn record a crash left at
// the end of the newest segment is dropped.
func CutTail(f *os.File, end int64) error {
	if err := f.Truncate(end); err != nil {
		return fmt.Errorf("cut torn tail: %w", err)
	}
	if err := Fdatasync(f); err != nil {
		return fmt.Errorf("cut torn tail: %w", err)
	}
	return nil
}

// Fdatasync flushes f's data (and the metadata needed to read it) to disk.
func Fdatasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			return err
		}
	}
}

// SyncDir flushes dir's entries, so created, renamed or removed files stay
// that way after a crash.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
