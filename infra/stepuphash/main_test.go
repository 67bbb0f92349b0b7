package main

import (
	"bytes"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestRun(t *testing.T) {
	tests := []struct {
		name     string
		stdin    string
		wantCode int
		wantErr  string
	}{
		{name: "a key and a newline", stdin: "correct horse battery staple\n", wantCode: 0},
		{name: "a key without a newline", stdin: "correct horse battery staple", wantCode: 0},
		{name: "a CRLF line", stdin: "correct horse battery staple\r\n", wantCode: 0},
		{name: "too short", stdin: "short\n", wantCode: 2, wantErr: "at least 16"},
		{name: "empty", stdin: "", wantCode: 2, wantErr: "at least 16"},
		{name: "too long for bcrypt", stdin: strings.Repeat("k", 73) + "\n", wantCode: 2, wantErr: "at most 72"},
		{name: "surrounding spaces", stdin: " correct horse battery staple\n", wantCode: 2, wantErr: "spaces"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(strings.NewReader(tt.stdin), &out, &errOut)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d (stderr %q)", code, tt.wantCode, errOut.String())
			}
			if tt.wantCode != 0 {
				if !strings.Contains(errOut.String(), tt.wantErr) || out.Len() != 0 {
					t.Errorf("stderr %q (want %q), stdout %q (want empty)", errOut.String(), tt.wantErr, out.String())
				}
				return
			}
			hash := strings.TrimSpace(out.String())
			if err := bcrypt.CompareHashAndPassword([]byte(hash), []byte("correct horse battery staple")); err != nil {
				t.Errorf("the printed hash %q does not verify the key: %v", hash, err)
			}
			if strings.Contains(out.String()+errOut.String(), "horse") {
				t.Error("the key was echoed")
			}
			if c, _ := bcrypt.Cost([]byte(hash)); c != cost {
				t.Errorf("cost %d, want %d", c, cost)
			}
		})
	}
}
