package main

import (
	"archive/zip"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Each bootstrap becomes <fn>.zip holding exactly "bootstrap", executable, byte for byte.
func TestPack(t *testing.T) {
	dir := t.TempDir()
	want := map[string][]byte{"route": []byte("\x7fELF route"), "budget": bytes.Repeat([]byte("b"), 4096)}
	for fn, body := range want {
		if err := os.MkdirAll(filepath.Join(dir, fn), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, fn, "bootstrap"), body, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var out strings.Builder
	if err := run(dir, &out); err != nil {
		t.Fatal(err)
	}
	for fn, body := range want {
		zr, err := zip.OpenReader(filepath.Join(dir, fn+".zip"))
		if err != nil {
			t.Fatal(err)
		}
		if len(zr.File) != 1 || zr.File[0].Name != "bootstrap" || zr.File[0].Mode().Perm() != 0o755 {
			t.Fatalf("%s.zip holds %v, want one executable bootstrap", fn, zr.File)
		}
		rc, _ := zr.File[0].Open()
		got, _ := io.ReadAll(rc)
		rc.Close()
		zr.Close()
		if !bytes.Equal(got, body) {
			t.Errorf("%s.zip's bootstrap differs from the binary", fn)
		}
		if !strings.Contains(out.String(), fn) {
			t.Errorf("the size table does not list %s:\n%s", fn, out.String())
		}
	}
	if err := run(t.TempDir(), io.Discard); err == nil {
		t.Error("an empty build folder packed without an error")
	}
}
