// Package docscheck holds the test that keeps the documentation honest: it runs every shell
// example in README.md and docs/ against a real dev server (offline models, a fresh database)
// and checks that the references in docs/ name every error code, admin route and intelligence
// field the code defines. It has no code of its own; see docscheck_test.go and docs/README.md
// for the conventions the examples follow.
package docscheck
