package offline

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Example returns a JSON document that validates against schema, deterministically. Free-text
// strings say "offline". It understands what Helix's operation schemas use: type (one or a
// list), properties, required, additionalProperties, min/maxProperties, items (schema or tuple),
// prefixItems, min/maxItems, uniqueItems, enum, const, minimum, maximum, exclusiveMinimum,
// exclusiveMaximum (draft-4 booleans too), multipleOf, minLength, maxLength, format (date-time,
// date, time, email, uri, uuid, hostname, ipv4, ipv6, duration), local $ref (#/$defs/..,
// #/definitions/..), allOf (merged), anyOf and oneOf (first alternative). It does not attempt
// pattern, not, if/then/else, contains or dependencies.
func Example(schema json.RawMessage) (json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(schema))
	dec.UseNumber()
	var root any
	if err := dec.Decode(&root); err != nil {
		return nil, fmt.Errorf("schema is not valid JSON: %w", err)
	}
	switch root.(type) {
	case map[string]any, bool:
	default:
		return nil, errors.New("schema must be a JSON object or boolean")
	}
	g := generator{root: root}
	v := g.value(root, 0, 0, "")
	if g.err != nil {
		return nil, g.err
	}
	return json.Marshal(v)
}

// maxDepth is how deep $ref chains and nesting may go; past optionalDepth only required
// properties and minimum item counts are produced, so recursive schemas terminate.
const (
	maxDepth      = 64
	optionalDepth = 6
)

type generator struct {
	root any
	err  error
}

// value generates an instance of s. salt makes siblings in an array differ (uniqueItems); hint
// is the property name, used to make free text read better.
func (g *generator) value(s any, salt, depth int, hint string) any {
	if g.err != nil {
		return nil
	}
	if depth > maxDepth {
		g.err = errors.New("schema nests too deeply (or a required $ref cycles)")
		return nil
	}
	m, ok := s.(map[string]any)
	if !ok {
		if s == false {
			g.err = errors.New("schema false accepts no value")
			return nil
		}
		return text(hint, salt) // true or missing: anything goes
	}
	m = g.flatten(m, depth)
	if g.err != nil {
		return nil
	}
	if c, ok := m["const"]; ok {
		return c
	}
	if e, ok := m["enum"].([]any); ok && len(e) > 0 {
		return e[salt%len(e)]
	}
	switch typeOf(m) {
	case "null":
		return nil
	case "boolean":
		return salt%2 == 0
	case "integer":
		return integer(m, salt)
	case "number":
		return number(m, salt)
	case "array":
		return g.array(m, salt, depth)
	case "object":
		return g.object(m, salt, depth)
	default:
		return str(m, salt, hint)
	}
}

// flatten resolves $ref and folds allOf and the first anyOf/oneOf alternative into one schema.
func (g *generator) flatten(m map[string]any, depth int) map[string]any {
	for range maxDepth {
		ref, isRef := m["$ref"].(string)
		all, isAll := m["allOf"].([]any)
		alt, isAlt := firstAlternative(m)
		if !isRef && !isAll && !isAlt {
			return m
		}
		out := make(map[string]any, len(m))
		for k, v := range m {
			if k != "$ref" && k != "allOf" && k != "anyOf" && k != "oneOf" {
				out[k] = v
			}
		}
		var parts []any
		if isRef {
			target, err := g.resolve(ref)
			if err != nil {
				g.err = err
				return m
			}
			parts = append(parts, target)
		}
		parts = append(parts, all...)
		if isAlt {
			parts = append(parts, alt)
		}
		for _, p := range parts {
			pm, ok := p.(map[string]any)
			if !ok {
				if p == false {
					g.err = errors.New("schema false accepts no value")
					return m
				}
				continue
			}
			merge(out, pm)
		}
		m = out
	}
	g.err = fmt.Errorf("schema references nest more than %d deep", maxDepth)
	return m
}

func firstAlternative(m map[string]any) (any, bool) {
	for _, k := range []string{"anyOf", "oneOf"} {
		if alts, ok := m[k].([]any); ok && len(alts) > 0 {
			return alts[0], true
		}
	}
	return nil, false
}

// merge folds src's keywords into dst: properties and required are united, other keywords
// already in dst win (they are the more specific ones).
func merge(dst, src map[string]any) {
	for k, v := range src {
		switch k {
		case "properties":
			props, _ := dst[k].(map[string]any)
			merged := make(map[string]any, len(props))
			for pk, pv := range props {
				merged[pk] = pv
			}
			if sp, ok := v.(map[string]any); ok {
				for pk, pv := range sp {
					if _, exists := merged[pk]; !exists {
						merged[pk] = pv
					}
				}
			}
			dst[k] = merged
		case "required":
			req, _ := dst[k].([]any)
			if sr, ok := v.([]any); ok {
				for _, r := range sr {
					if !slices.Contains(req, r) {
						req = append(req, r)
					}
				}
			}
			dst[k] = req
		default:
			if _, exists := dst[k]; !exists {
				dst[k] = v
			}
		}
	}
}

// resolve follows a local JSON pointer ("#/$defs/item").
func (g *generator) resolve(ref string) (any, error) {
	frag, ok := strings.CutPrefix(ref, "#")
	if !ok {
		return nil, fmt.Errorf("only local $ref is supported, not %q", ref)
	}
	frag, err := url.PathUnescape(frag)
	if err != nil {
		return nil, fmt.Errorf("bad $ref %q", ref)
	}
	cur := g.root
	for _, tok := range strings.Split(strings.TrimPrefix(frag, "/"), "/") {
		if tok == "" {
			continue
		}
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch c := cur.(type) {
		case map[string]any:
			cur, ok = c[tok]
		case []any:
			i, err := strconv.Atoi(tok)
			ok = err == nil && i >= 0 && i < len(c)
			if ok {
				cur = c[i]
			}
		default:
			ok = false
		}
		if !ok {
			return nil, fmt.Errorf("$ref %q points nowhere", ref)
		}
	}
	return cur, nil
}

// typeOf picks the type to generate: the declared one (the first non-null of a list), else one
// inferred from the keywords present.
func typeOf(m map[string]any) string {
	switch t := m["type"].(type) {
	case string:
		return t
	case []any:
		var first string
		for _, x := range t {
			if s, ok := x.(string); ok {
				if s != "null" {
					return s
				}
				first = s
			}
		}
		if first != "" {
			return first
		}
	}
	has := func(keys ...string) bool {
		for _, k := range keys {
			if _, ok := m[k]; ok {
				return true
			}
		}
		return false
	}
	switch {
	case has("properties", "required", "additionalProperties", "minProperties", "maxProperties"):
		return "object"
	case has("items", "prefixItems", "minItems", "maxItems", "uniqueItems"):
		return "array"
	case has("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"):
		return "number"
	}
	return "string"
}

func (g *generator) object(m map[string]any, salt, depth int) any {
	props, _ := m["properties"].(map[string]any)
	required := map[string]bool{}
	var requiredOrder []string
	if req, ok := m["required"].([]any); ok {
		for _, r := range req {
			if s, ok := r.(string); ok && !required[s] {
				required[s] = true
				requiredOrder = append(requiredOrder, s)
			}
		}
	}
	maxProps, hasMax := count(m, "maxProperties")
	minProps, _ := count(m, "minProperties")
	extra, extraAllowed := m["additionalProperties"], true
	if extra == false {
		extraAllowed = false
	}

	out := map[string]any{}
	for _, name := range requiredOrder {
		if ps, ok := props[name]; ok {
			out[name] = g.value(ps, salt, depth+1, name)
		} else {
			out[name] = g.value(extra, salt, depth+1, name)
		}
	}
	names := make([]string, 0, len(props))
	for name := range props {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if required[name] || depth >= optionalDepth || (hasMax && len(out) >= maxProps) {
			continue
		}
		out[name] = g.value(props[name], salt, depth+1, name)
	}
	for i := 1; len(out) < minProps && extraAllowed; i++ {
		name := fmt.Sprintf("offline_%d", i)
		if _, taken := out[name]; !taken {
			out[name] = g.value(extra, salt, depth+1, name)
		}
	}
	return out
}

func (g *generator) array(m map[string]any, salt, depth int) any {
	var prefix []any
	rest, restAllowed := m["items"], true
	switch it := m["items"].(type) {
	case []any: // draft-4..7 tuple form
		prefix = it
		rest = m["additionalItems"]
	default:
		if p, ok := m["prefixItems"].([]any); ok {
			prefix = p
		}
	}
	if rest == false {
		restAllowed = false
	}
	minItems, _ := count(m, "minItems")
	maxItems, hasMax := count(m, "maxItems")
	n := max(minItems, 1, len(prefix))
	if depth >= optionalDepth {
		n = minItems
	}
	if !restAllowed {
		n = min(max(n, minItems), len(prefix))
	}
	if hasMax {
		n = min(n, maxItems)
	}
	out := make([]any, 0, n)
	for i := range n {
		var item any
		if i < len(prefix) {
			item = g.value(prefix[i], salt+i, depth+1, "")
		} else {
			item = g.value(rest, salt+i, depth+1, "")
		}
		out = append(out, item)
	}
	return out
}

// str builds a string that honors format and length: free text says "offline model".
func str(m map[string]any, salt int, hint string) string {
	s := text(hint, salt)
	switch m["format"] {
	case "date-time":
		s = fmt.Sprintf("2026-01-%02dT09:00:00Z", 1+salt%28)
	case "date":
		s = fmt.Sprintf("2026-01-%02d", 1+salt%28)
	case "time":
		s = fmt.Sprintf("09:%02d:00Z", salt%60)
	case "email", "idn-email":
		s = fmt.Sprintf("offline%d@example.com", salt+1)
	case "uri", "iri", "uri-reference", "iri-reference", "url":
		s = fmt.Sprintf("https://example.com/offline/%d", salt+1)
	case "uuid":
		s = fmt.Sprintf("00000000-0000-4000-8000-%012d", salt)
	case "hostname", "idn-hostname":
		s = fmt.Sprintf("offline%d.example.com", salt+1)
	case "ipv4":
		s = fmt.Sprintf("192.0.2.%d", 1+salt%254)
	case "ipv6":
		s = fmt.Sprintf("2001:db8::%x", salt+1)
	case "duration":
		s = fmt.Sprintf("PT%dM", salt+1)
	}
	if minLen, ok := count(m, "minLength"); ok && len([]rune(s)) < minLen {
		s += strings.Repeat(" offline", minLen/8+1)
		s = string([]rune(s)[:minLen])
	}
	if maxLen, ok := count(m, "maxLength"); ok {
		if r := []rune(s); len(r) > maxLen {
			// Keep the salt at the end so siblings stay distinct (uniqueItems).
			suffix := ""
			if salt > 0 && maxLen > len(strconv.Itoa(salt+1)) {
				suffix = strconv.Itoa(salt + 1)
			}
			s = string(r[:maxLen-len(suffix)]) + suffix
		}
	}
	return s
}

func text(hint string, salt int) string {
	s := "offline model"
	if hint != "" {
		s += " " + strings.ReplaceAll(hint, "_", " ")
	}
	if salt > 0 {
		s += " " + strconv.Itoa(salt+1)
	}
	return s
}

// bounds reads the numeric limits: lo/hi with whether each is exclusive. Draft 4 spells
// exclusiveness as a boolean beside minimum/maximum; later drafts as a number.
func bounds(m map[string]any) (lo, hi *float64, loEx, hiEx bool) {
	if v, ok := num(m["minimum"]); ok {
		lo = &v
		loEx = m["exclusiveMinimum"] == true
	}
	if v, ok := num(m["exclusiveMinimum"]); ok && (lo == nil || v >= *lo) {
		lo, loEx = &v, true
	}
	if v, ok := num(m["maximum"]); ok {
		hi = &v
		hiEx = m["exclusiveMaximum"] == true
	}
	if v, ok := num(m["exclusiveMaximum"]); ok && (hi == nil || v <= *hi) {
		hi, hiEx = &v, true
	}
	return lo, hi, loEx, hiEx
}

func integer(m map[string]any, salt int) int64 {
	lo, hi, loEx, hiEx := bounds(m)
	var ilo, ihi *int64
	if lo != nil {
		v := int64(math.Ceil(*lo))
		if loEx && float64(v) == *lo {
			v++
		}
		ilo = &v
	}
	if hi != nil {
		v := int64(math.Floor(*hi))
		if hiEx && float64(v) == *hi {
			v--
		}
		ihi = &v
	}
	step := int64(1)
	if mo, ok := num(m["multipleOf"]); ok && mo >= 1 && mo == math.Trunc(mo) {
		step = int64(mo)
	}
	// Candidates are multiples of step. Pick the salt-th one upward from the lower bound (or
	// from zero), wrapping inside a bounded range; with only an upper bound, count downward.
	if ilo == nil {
		start := int64(0)
		if ihi != nil {
			start = min(0, floorDiv(*ihi, step)*step)
		}
		return start - int64(salt)*step
	}
	first := ceilDiv(*ilo, step) * step
	v := first + int64(salt)*step
	if ihi != nil && v > *ihi {
		span := (floorDiv(*ihi, step)*step-first)/step + 1
		if span < 1 {
			return first // no multiple in range: the schema is unsatisfiable
		}
		v = first + (int64(salt)%span)*step
	}
	return v
}

func ceilDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a > 0) == (b > 0) {
		q++
	}
	return q
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func number(m map[string]any, salt int) float64 {
	lo, hi, loEx, hiEx := bounds(m)
	var v float64
	switch {
	case lo != nil && hi != nil:
		// Strictly inside the range, a different point per salt: lo + (hi-lo)/(salt+2).
		v = *lo + (*hi-*lo)/float64(salt+2)
	case lo != nil:
		v = *lo + float64(salt)
		if loEx {
			v++
		}
	case hi != nil:
		v = min(0, *hi) - float64(salt)
		if hiEx && v >= *hi {
			v = *hi - 1 - float64(salt)
		}
	default:
		v = float64(salt)
	}
	if mo, ok := num(m["multipleOf"]); ok && mo > 0 {
		inRange := func(c float64) bool {
			return (lo == nil || c > *lo || (!loEx && c == *lo)) && (hi == nil || c < *hi || (!hiEx && c == *hi))
		}
		c := math.Ceil(v/mo) * mo
		if !inRange(c) {
			c = math.Floor(v/mo) * mo
		}
		if !inRange(c) && lo != nil {
			// The nearest multiples fell outside: take the first one above the lower bound.
			c = math.Ceil(*lo/mo) * mo
			if !inRange(c) {
				c += mo
			}
		}
		// Round away float noise (0.1*3 = 0.30000000000000004) so the decimal form is a multiple.
		if r, err := strconv.ParseFloat(strconv.FormatFloat(c, 'f', decimals(mo), 64), 64); err == nil {
			c = r
		}
		v = c
	}
	return v
}

// decimals is how many fraction digits multipleOf has ("0.01" → 2).
func decimals(f float64) int {
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if i := strings.IndexByte(s, '.'); i >= 0 {
		return len(s) - i - 1
	}
	return 0
}

func num(v any) (float64, bool) {
	switch n := v.(type) {
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	case float64:
		return n, true
	}
	return 0, false
}

func count(m map[string]any, key string) (int, bool) {
	f, ok := num(m[key])
	if !ok || f < 0 {
		return 0, false
	}
	return int(min(f, 1<<20)), true
}
