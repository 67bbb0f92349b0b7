// Command pack zips each function's bootstrap for Lambda (`make build`): bin/<fn>/bootstrap
// becomes bin/<fn>.zip, the file at the archive's root with its executable bit, which is what a
// provided.al2023 function's code package must be (and what `aws lambda update-function-code
// --zip-file` takes). It prints each binary's and archive's size, and says which binaries are
// over the size the project holds them to.
//
// archive/zip, not the zip command: a fresh machine may not have it, and the mode bits must be
// set explicitly for Lambda to execute the file.
package main

import (
	"archive/zip"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"text/tabwriter"
)

// maxBinaryMB is the size a function's binary should stay under (issue 10's target): past it,
// cold starts pay for loading code they never run.
const maxBinaryMB = 15

func main() {
	dir := flag.String("dir", "bin", "the build folder: <dir>/<fn>/bootstrap for each function")
	flag.Parse()
	if err := run(*dir, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "pack:", err)
		os.Exit(1)
	}
}

func run(dir string, out io.Writer) error {
	bootstraps, err := filepath.Glob(filepath.Join(dir, "*", "bootstrap"))
	if err != nil {
		return err
	}
	if len(bootstraps) == 0 {
		return fmt.Errorf("no %s/<fn>/bootstrap: build first", dir)
	}
	sort.Strings(bootstraps)
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "function\tbootstrap MB\tzip MB\t")
	for _, b := range bootstraps {
		fn := filepath.Base(filepath.Dir(b))
		archive := filepath.Join(dir, fn+".zip")
		if err := zipBootstrap(b, archive); err != nil {
			return fmt.Errorf("%s: %w", fn, err)
		}
		bs, zs := size(b), size(archive)
		note := ""
		if bs > maxBinaryMB<<20 {
			note = fmt.Sprintf("  over %d MB", maxBinaryMB)
		}
		fmt.Fprintf(w, "%s\t%.1f\t%.1f\t%s\n", fn, mb(bs), mb(zs), note)
	}
	return w.Flush()
}

// zipBootstrap writes archive with src as "bootstrap", executable, at its root.
func zipBootstrap(src, archive string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	tmp := archive + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	zw := zip.NewWriter(f)
	h := &zip.FileHeader{Name: "bootstrap", Method: zip.Deflate, Modified: st.ModTime()}
	h.SetMode(0o755)
	dst, err := zw.CreateHeader(h)
	if err != nil {
		return err
	}
	if _, err = io.Copy(dst, in); err != nil {
		return err
	}
	if err = zw.Close(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, archive)
}

func size(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

func mb(n int64) float64 { return float64(n) / (1 << 20) }
