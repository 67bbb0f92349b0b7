// Package openapi holds Helix's HTTP API contract, an OpenAPI 3.1 document written by hand
// (openapi.yaml), and serves it as JSON. The tests here and in infra/devserver hold it to the
// server: every route the dev server serves is in it and nothing else, the sample events and the
// README's examples are requests it accepts, and real responses match it.
package openapi

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"

	"gopkg.in/yaml.v3"
)

//go:embed openapi.yaml
var source []byte

// YAML is the document as written.
func YAML() []byte { return bytes.Clone(source) }

var converted = sync.OnceValues(func() ([]byte, error) { return toJSON(source) })

// JSON is the document as JSON, converted once (keys in the order written).
func JSON() ([]byte, error) {
	b, err := converted()
	return bytes.Clone(b), err
}

// Handler serves the document as JSON (GET /openapi.json). It needs no credentials: the
// contract is public.
func Handler() http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		b, err := converted()
		if err != nil {
			// Only a broken openapi.yaml gets here, and the package's tests refuse one.
			http.Error(w, "the API document does not convert to JSON", http.StatusInternalServerError)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", strconv.Itoa(len(b)))
		_, _ = w.Write(b)
	}
}

// toJSON converts a YAML document to JSON, keeping the order of mapping keys.
func toJSON(src []byte) ([]byte, error) {
	dec := yaml.NewDecoder(bytes.NewReader(src))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("openapi: want exactly one YAML document")
	}
	var buf bytes.Buffer
	if err := writeNode(&buf, &doc); err != nil {
		return nil, err
	}
	if !json.Valid(buf.Bytes()) {
		return nil, fmt.Errorf("openapi: conversion produced invalid JSON")
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

func writeNode(buf *bytes.Buffer, n *yaml.Node) error {
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) != 1 {
			return fmt.Errorf("openapi: line %d: want one YAML document", n.Line)
		}
		return writeNode(buf, n.Content[0])
	case yaml.AliasNode:
		// The document has none; refusing them keeps a conversion linear in its input.
		return fmt.Errorf("openapi: line %d: YAML aliases are not used here", n.Line)
	case yaml.MappingNode:
		buf.WriteByte('{')
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode || k.Tag == "!!merge" {
				return fmt.Errorf("openapi: line %d: mapping keys must be plain scalars", k.Line)
			}
			if i > 0 {
				buf.WriteByte(',')
			}
			key, _ := json.Marshal(k.Value)
			buf.Write(key)
			buf.WriteByte(':')
			if err := writeNode(buf, v); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
		return nil
	case yaml.SequenceNode:
		buf.WriteByte('[')
		for i, c := range n.Content {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := writeNode(buf, c); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
		return nil
	case yaml.ScalarNode:
		var v any
		if err := n.Decode(&v); err != nil {
			return fmt.Errorf("openapi: line %d: %w", n.Line, err)
		}
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("openapi: line %d: %w", n.Line, err)
		}
		buf.Write(b)
		return nil
	}
	return fmt.Errorf("openapi: line %d: unexpected YAML node", n.Line)
}
