package segfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func records(bodies ...string) []byte {
	var b []byte
	for _, body := range bodies {
		b = Append(b, func(b []byte) []byte { return append(b, body...) })
	}
	return b
}

func scanAll(t *testing.T, f *os.File) ([]string, int64, error) {
	t.Helper()
	var got []string
	end, err := Scan(f, func(off int64, body []byte) error {
		got = append(got, fmt.Sprintf("%d:%s", off, body))
		return nil
	})
	return got, end, err
}

func TestWriteZeroesAheadAndScanStopsThere(t *testing.T) {
	dir := t.TempDir()
	f, err := Create(dir, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var alloc int64
	first, second := records("a", "bc"), records("def")
	if err := Write(f, 0, first, &alloc); err != nil {
		t.Fatal(err)
	}
	if err := Write(f, int64(len(first)), second, &alloc); err != nil {
		t.Fatal(err)
	}
	end := int64(len(first) + len(second))
	if size, _ := Size(f); size != Prealloc || alloc != Prealloc {
		t.Fatalf("file size %d, alloc %d; want both %d", size, alloc, Prealloc)
	}
	got, scanned, err := scanAll(t, f)
	want := []string{"0:a", "9:bc", "19:def"}
	if err != nil || scanned != end || !slices.Equal(got, want) {
		t.Fatalf("scan = %v, end %d, %v; want %v, end %d", got, scanned, err, want, end)
	}
	// A write past the zeroed space zeroes the next stretch first.
	big := records(string(make([]byte, Prealloc)))
	if err := Write(f, end, big, &alloc); err != nil {
		t.Fatal(err)
	}
	if want := ((end+int64(len(big)))/Prealloc + 1) * Prealloc; alloc != want {
		t.Fatalf("alloc %d, want %d", alloc, want)
	}
	if err := Seal(f, end+int64(len(big))); err != nil {
		t.Fatal(err)
	}
	if size, _ := Size(f); size != end+int64(len(big)) {
		t.Fatalf("sealed size %d", size)
	}
}

func TestScanReportsATornRecord(t *testing.T) {
	whole := records("one", "two")
	for _, cut := range []int{len(whole) - 1, len(whole) - 5, 12, 13} {
		path := filepath.Join(t.TempDir(), Name(1))
		b := slices.Clone(whole[:cut])
		b = append(b, make([]byte, 100)...) // zeroes after a torn record do not hide it
		if cut >= 12 {
			b = b[:cut]
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		f, _ := os.Open(path)
		got, end, err := scanAll(t, f)
		f.Close()
		if !errors.Is(err, ErrBadRecord) || end != 11 || !slices.Equal(got, []string{"0:one"}) {
			t.Fatalf("cut at %d: %v, end %d, %v", cut, got, end, err)
		}
	}
}

func TestNextSplitsRecords(t *testing.T) {
	b := records("x", "yz")
	body, rest, ok := Next(b)
	if !ok || string(body) != "x" {
		t.Fatalf("first = %q %v", body, ok)
	}
	body, rest, ok = Next(rest)
	if !ok || string(body) != "yz" || len(rest) != 0 {
		t.Fatalf("second = %q %v, %d left", body, ok, len(rest))
	}
	damaged := records("x")
	damaged[len(damaged)-1] ^= 1
	if _, _, ok := Next(damaged); ok {
		t.Fatal("a record with a bad checksum was accepted")
	}
}

func TestLockIsExclusive(t *testing.T) {
	dir := t.TempDir()
	f, err := Lock(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if g, err := Lock(dir); !errors.Is(err, ErrLocked) {
		if g != nil {
			g.Close()
		}
		t.Fatalf("second lock: %v, want ErrLocked", err)
	}
}
