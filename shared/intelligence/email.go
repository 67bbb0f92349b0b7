package intelligence

import (
	"fmt"
	"strings"
)

// EmailComposeInput is the body of POST /intelligence/email/compose.
type EmailComposeInput struct {
	Envelope
	Subject          string   `json:"subject"`
	RecipientContext string   `json:"recipient_context"`
	KeyPoints        []string `json:"key_points,omitempty"`
	Tone             string   `json:"tone,omitempty"`   // formal, friendly, neutral, concise, persuasive
	Length           string   `json:"length,omitempty"` // short, medium, long
	Suggestions      int      `json:"suggestions,omitempty"`
}

// Validate implements Input.
func (in *EmailComposeInput) Validate() error {
	if err := text("subject", &in.Subject, maxShort, true); err != nil {
		return err
	}
	if err := text("recipient_context", &in.RecipientContext, maxText, true); err != nil {
		return err
	}
	if err := texts("key_points", in.KeyPoints, 500, 20); err != nil {
		return err
	}
	if err := oneOf("tone", &in.Tone, "neutral", "formal", "friendly", "neutral", "concise", "persuasive"); err != nil {
		return err
	}
	if err := oneOf("length", &in.Length, "medium", "short", "medium", "long"); err != nil {
		return err
	}
	return count("suggestions", &in.Suggestions, 2, 1, 3)
}

// EmailDraft is one suggested email.
type EmailDraft struct {
	Subject string `json:"subject"`
	Body    string `json:"body"`
	Tone    string `json:"tone"`
}

// EmailComposeResult is the result of email-compose.
type EmailComposeResult struct {
	Suggestions []EmailDraft `json:"suggestions"`
}

func emailCompose() Operation {
	return &spec[*EmailComposeInput, EmailComposeResult]{
		operationID: "email-compose",
		path:        "/email/compose",
		newInput:    func() *EmailComposeInput { return &EmailComposeInput{} },
		system:      "You write clear, correct emails for a busy professional. Never invent facts, names or commitments that the request does not give.",
		prompt: func(in *EmailComposeInput) string {
			p := fmt.Sprintf("Write %d alternative drafts of an email.\nSubject: %s\nRecipient: %s\nTone: %s\nLength: %s",
				in.Suggestions, in.Subject, in.RecipientContext, in.Tone, in.Length)
			if len(in.KeyPoints) > 0 {
				p += "\nCover these points:" + numbered(in.KeyPoints)
			}
			return p
		},
		schema: func(in *EmailComposeInput) string {
			return fmt.Sprintf(`{
  "type": "object", "additionalProperties": false, "required": ["suggestions"],
  "properties": {"suggestions": {"type": "array", "minItems": 1, "maxItems": %d, "items": {
    "type": "object", "additionalProperties": false, "required": ["subject", "body", "tone"],
    "properties": {"subject": {"type": "string", "minLength": 1}, "body": {"type": "string", "minLength": 1}, "tone": {"type": "string"}}}}}}`,
				in.Suggestions)
		},
	}
}

// EmailClassifyInput is the body of POST /intelligence/email/classify.
type EmailClassifyInput struct {
	Envelope
	Subject string `json:"subject,omitempty"`
	From    string `json:"from,omitempty"`
	Body    string `json:"body"`
	// Categories, when given, are the only categories the email may be put in.
	Categories []string `json:"categories,omitempty"`
}

// Validate implements Input.
func (in *EmailClassifyInput) Validate() error {
	if err := text("subject", &in.Subject, maxShort, false); err != nil {
		return err
	}
	if err := text("from", &in.From, maxShort, false); err != nil {
		return err
	}
	if err := text("body", &in.Body, maxBody, true); err != nil {
		return err
	}
	return texts("categories", in.Categories, 100, 30)
}

// EmailClassifyResult is the result of email-classify.
type EmailClassifyResult struct {
	Category   string   `json:"category"`
	Priority   string   `json:"priority"`
	NeedsReply bool     `json:"needs_reply"`
	Confidence float64  `json:"confidence"`
	Reasons    []string `json:"reasons"`
}

func emailClassify() Operation {
	return &spec[*EmailClassifyInput, EmailClassifyResult]{
		operationID: "email-classify",
		path:        "/email/classify",
		newInput:    func() *EmailClassifyInput { return &EmailClassifyInput{} },
		system:      "You triage email. Judge only from the email given.",
		prompt: func(in *EmailClassifyInput) string {
			p := fmt.Sprintf("Classify this email.\nFrom: %s\nSubject: %s\n---\n%s\n---", in.From, in.Subject, in.Body)
			if len(in.Categories) > 0 {
				p += "\nUse one of these categories: " + strings.Join(in.Categories, ", ")
			}
			return p
		},
		schema: func(in *EmailClassifyInput) string {
			category := `{"type": "string", "minLength": 1}`
			if len(in.Categories) > 0 {
				category = `{"enum": ` + jsonList(in.Categories) + `}`
			}
			return `{
  "type": "object", "additionalProperties": false,
  "required": ["category", "priority", "needs_reply", "confidence", "reasons"],
  "properties": {
    "category": ` + category + `,
    "priority": {"enum": ["low", "normal", "high", "urgent"]},
    "needs_reply": {"type": "boolean"},
    "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    "reasons": {"type": "array", "maxItems": 5, "items": {"type": "string"}}}}`
		},
	}
}

// EmailMessage is an email being answered.
type EmailMessage struct {
	From    string `json:"from,omitempty"`
	Subject string `json:"subject,omitempty"`
	Body    string `json:"body"`
}

// EmailRespondInput is the body of POST /intelligence/email/respond.
type EmailRespondInput struct {
	Envelope
	Original EmailMessage `json:"original"`
	// Intent is accept, decline, ask_question, acknowledge, follow_up or custom (which needs
	// instructions); omitted, it is custom with instructions and acknowledge without.
	Intent       string `json:"intent,omitempty"`
	Instructions string `json:"instructions,omitempty"`
	Tone         string `json:"tone,omitempty"`
	Suggestions  int    `json:"suggestions,omitempty"`
}

// Validate implements Input.
func (in *EmailRespondInput) Validate() error {
	if err := text("original.from", &in.Original.From, maxShort, false); err != nil {
		return err
	}
	if err := text("original.subject", &in.Original.Subject, maxShort, false); err != nil {
		return err
	}
	if err := text("original.body", &in.Original.Body, maxBody, true); err != nil {
		return err
	}
	def := "acknowledge"
	if strings.TrimSpace(in.Instructions) != "" {
		def = "custom"
	}
	if err := oneOf("intent", &in.Intent, def, "accept", "decline", "ask_question", "acknowledge", "follow_up", "custom"); err != nil {
		return err
	}
	if err := text("instructions", &in.Instructions, maxText, in.Intent == "custom"); err != nil {
		return err
	}
	if err := oneOf("tone", &in.Tone, "neutral", "formal", "friendly", "neutral", "concise"); err != nil {
		return err
	}
	return count("suggestions", &in.Suggestions, 2, 1, 3)
}

// EmailReply is one suggested reply.
type EmailReply struct {
	Subject string `json:"subject"`
	Body    string `json:"body"`
}

// EmailRespondResult is the result of email-respond.
type EmailRespondResult struct {
	Suggestions []EmailReply `json:"suggestions"`
}

func emailRespond() Operation {
	return &spec[*EmailRespondInput, EmailRespondResult]{
		operationID: "email-respond",
		path:        "/email/respond",
		newInput:    func() *EmailRespondInput { return &EmailRespondInput{} },
		system:      "You draft replies to email on the user's behalf. Never promise anything the instructions do not allow.",
		prompt: func(in *EmailRespondInput) string {
			p := fmt.Sprintf("Draft %d alternative replies to this email.\nFrom: %s\nSubject: %s\n---\n%s\n---\nIntent: %s\nTone: %s",
				in.Suggestions, in.Original.From, in.Original.Subject, in.Original.Body, in.Intent, in.Tone)
			if in.Instructions != "" {
				p += "\nInstructions: " + in.Instructions
			}
			return p
		},
		schema: func(in *EmailRespondInput) string {
			return fmt.Sprintf(`{
  "type": "object", "additionalProperties": false, "required": ["suggestions"],
  "properties": {"suggestions": {"type": "array", "minItems": 1, "maxItems": %d, "items": {
    "type": "object", "additionalProperties": false, "required": ["subject", "body"],
    "properties": {"subject": {"type": "string"}, "body": {"type": "string", "minLength": 1}}}}}}`,
				in.Suggestions)
		},
	}
}
