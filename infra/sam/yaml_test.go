package sam

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

// longForms maps each CloudFormation intrinsic that has a YAML short form (!Name) to the key of
// its long form. A tag missing here is an error, not a silent plain value: add it if
// CloudFormation accepts it.
var longForms = map[string]string{
	"Ref":         "Ref",
	"Condition":   "Condition",
	"And":         "Fn::And",
	"Base64":      "Fn::Base64",
	"Cidr":        "Fn::Cidr",
	"Equals":      "Fn::Equals",
	"FindInMap":   "Fn::FindInMap",
	"GetAZs":      "Fn::GetAZs",
	"GetAtt":      "Fn::GetAtt",
	"If":          "Fn::If",
	"ImportValue": "Fn::ImportValue",
	"Join":        "Fn::Join",
	"Not":         "Fn::Not",
	"Or":          "Fn::Or",
	"Select":      "Fn::Select",
	"Split":       "Fn::Split",
	"Sub":         "Fn::Sub",
	"Transform":   "Fn::Transform",
}

// templateJSON turns a CloudFormation/SAM template written in YAML into the JSON value the
// schema describes. Short-form intrinsics become their long forms and are not resolved
// (!Ref Stage is {"Ref": "Stage"}, !If [c, a, b] is {"Fn::If": [c, a, b]}): the schema accepts
// an intrinsic wherever CloudFormation does. Numbers come back as json.Number.
func templateJSON(src []byte) (any, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, err
	}
	if doc.Kind == 0 {
		return nil, errors.New("empty template")
	}
	if err := expandShortForms(&doc); err != nil {
		return nil, err
	}
	var v any
	if err := doc.Decode(&v); err != nil {
		return nil, err
	}
	// Through encoding/json, so the validator gets plain JSON values (and a mapping with a
	// non-string key, which JSON cannot express, is an error here).
	js, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return jsonschema.UnmarshalJSON(bytes.NewReader(js))
}

// expandShortForms rewrites, in place, every node tagged !Name into the mapping {LongForm: arg}.
// Children go first, so nested short forms (!Not [!Equals [...]]) expand too, and because the
// node itself is rewritten, aliases of an anchored short form see the long form as well.
func expandShortForms(n *yaml.Node) error {
	if n.Kind == yaml.AliasNode {
		return nil // its target is expanded where it is defined
	}
	for _, c := range n.Content {
		if err := expandShortForms(c); err != nil {
			return err
		}
	}
	if !strings.HasPrefix(n.Tag, "!") || strings.HasPrefix(n.Tag, "!!") {
		return nil // untagged, or a standard YAML tag such as !!str
	}
	name := n.Tag[1:]
	key, ok := longForms[name]
	if !ok {
		return fmt.Errorf("line %d: %s is not a CloudFormation short-form intrinsic", n.Line, n.Tag)
	}
	arg := *n
	arg.Anchor = ""
	switch arg.Kind {
	case yaml.ScalarNode:
		arg.Tag = "!!str" // !Ref 5 names "5"; a short form's scalar is always a string
		if name == "GetAtt" {
			// !GetAtt Resource.Attribute is ["Resource", "Attribute"]; the attribute may hold
			// dots itself (Endpoint.Address).
			if res, attr, ok := strings.Cut(arg.Value, "."); ok {
				arg = yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Line: n.Line, Column: n.Column,
					Content: []*yaml.Node{
						{Kind: yaml.ScalarNode, Tag: "!!str", Value: res},
						{Kind: yaml.ScalarNode, Tag: "!!str", Value: attr},
					}}
			}
		}
	case yaml.SequenceNode:
		arg.Tag = "!!seq"
	case yaml.MappingNode:
		arg.Tag = "!!map"
	default:
		return fmt.Errorf("line %d: unexpected %s", n.Line, n.Tag)
	}
	*n = yaml.Node{
		Kind:   yaml.MappingNode,
		Tag:    "!!map",
		Anchor: n.Anchor,
		Line:   n.Line,
		Column: n.Column,
		Content: []*yaml.Node{
			{Kind: yaml.ScalarNode, Tag: "!!str", Value: key},
			&arg,
		},
	}
	return nil
}
