package outbox

import (
	"time"
	"unicode/utf8"
)

// Message is one Discord embed's content, before its wire form.
type Message struct {
	Title       string
	Description string
	Color       int
	Fields      []Field
	Footer      string
	Timestamp   time.Time
}

// Field is an embed field.
type Field struct {
	Name, Value string
	Inline      bool
}

// Discord's limits on embeds (characters), from its API documentation.
const (
	MaxEmbeds      = 10   // per request
	MaxTotal       = 6000 // all embeds of a request together
	MaxTitle       = 256
	MaxDescription = 4096
	MaxFields      = 25
	MaxFieldName   = 256
	MaxFieldValue  = 1024
	MaxFooter      = 2048
)

// Size is what Discord counts of the message against MaxTotal.
func (m Message) Size() int {
	n := utf8.RuneCountInString(m.Title) + utf8.RuneCountInString(m.Description) + utf8.RuneCountInString(m.Footer)
	for _, f := range m.Fields {
		n += utf8.RuneCountInString(f.Name) + utf8.RuneCountInString(f.Value)
	}
	return n
}

// Fit truncates every part of the message to its limit, and the whole to MaxTotal, so that any
// message is deliverable on its own.
func (m Message) Fit() Message {
	m.Title = clip(m.Title, MaxTitle)
	m.Description = clip(m.Description, MaxDescription)
	m.Footer = clip(m.Footer, MaxFooter)
	if len(m.Fields) > MaxFields {
		m.Fields = m.Fields[:MaxFields]
	}
	fields := make([]Field, len(m.Fields))
	for i, f := range m.Fields {
		fields[i] = Field{Name: clip(orDash(f.Name), MaxFieldName), Value: clip(orDash(f.Value), MaxFieldValue), Inline: f.Inline}
	}
	m.Fields = fields
	// Over the total: drop fields from the end, then shorten the description.
	for m.Size() > MaxTotal && len(m.Fields) > 0 {
		m.Fields = m.Fields[:len(m.Fields)-1]
	}
	if over := m.Size() - MaxTotal; over > 0 {
		m.Description = clip(m.Description, utf8.RuneCountInString(m.Description)-over)
	}
	return m
}

// Batch says how many of msgs, from the first, fit in one request (at least one, when there is
// any: each message fits on its own once Fit).
func Batch(msgs []Message) int {
	total := 0
	for i, m := range msgs {
		if i == MaxEmbeds {
			return i
		}
		total += m.Size()
		if total > MaxTotal && i > 0 {
			return i
		}
	}
	return len(msgs)
}

// clip cuts s to at most n characters, marking the cut with an ellipsis.
func clip(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// orDash: Discord refuses empty field names and values.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
