//go:build race

package docscheck

// raceEnabled: the test runs with -race, so the dev server is built with it too (sharing the
// build cache with the test, and finding races in the server while the examples run).
const raceEnabled = true
