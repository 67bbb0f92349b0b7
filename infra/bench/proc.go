package main

import (
	"context"
	"fmt"
	"os/exec"
	"syscall"
	"time"
)

// stopGrace is how long a process gets between SIGTERM and SIGKILL.
const stopGrace = 10 * time.Second

// proc is a child process in a process group of its own. The group is what lets stop reach the
// grandchildren too (the test binary `go test` runs, the compilers of `go build`), and it keeps a
// Ctrl-C in the terminal from reaching the children before the bench has decided to stop them.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed once Wait has returned
	err  error         // what Wait returned; read only after done is closed
}

// startProc starts cmd in a new process group.
func startProc(name string, cmd *exec.Cmd) (*proc, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Wait also waits for the goroutines copying output to a non-file writer; a grandchild that
	// keeps the pipe open must not hold the bench up for ever.
	cmd.WaitDelay = stopGrace
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// running reports whether the process has not exited yet.
func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// stop ends the process group: SIGTERM, then SIGKILL if the process is still there after
// stopGrace. It returns once the process has been waited for, and may be called again.
func (p *proc) stop() {
	if !p.running() {
		return
	}
	pgid := p.cmd.Process.Pid // Setpgid: the group's id is the leader's pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(stopGrace):
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-p.done
}

// runProc runs cmd to completion in its own process group, and stops it when ctx ends first.
func runProc(ctx context.Context, name string, cmd *exec.Cmd) error {
	p, err := startProc(name, cmd)
	if err != nil {
		return err
	}
	select {
	case <-p.done:
		if p.err != nil {
			return fmt.Errorf("%s: %w", name, p.err)
		}
		return nil
	case <-ctx.Done():
		p.stop()
		return fmt.Errorf("%s: %w", name, ctx.Err())
	}
}

// sleep waits d, or less when ctx ends first (then it returns ctx's error).
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
