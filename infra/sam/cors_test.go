package sam

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/helixhq/helix/shared/httpapi"
)

// TestCORSMatchesHTTPAPI checks that API Gateway, which answers the browsers' preflight requests
// in front of the functions, allows what shared/httpapi allows (and the dev server answers):
// the same methods, request headers, exposed headers and preflight cache time. Names compare
// case-insensitively, as sets.
func TestCORSMatchesHTTPAPI(t *testing.T) {
	tmpl := loadTemplate(t)
	apis := resourcesOfType(t, tmpl, "AWS::Serverless::HttpApi")
	if len(apis) == 0 {
		t.Fatalf("%s has no AWS::Serverless::HttpApi", templateFile)
	}
	for _, api := range apis {
		t.Run(api, func(t *testing.T) {
			cors, where := corsConfiguration(t, tmpl, api)
			for _, f := range []struct {
				field string
				want  []string
			}{
				{"AllowMethods", httpapi.CORSAllowMethods},
				{"AllowHeaders", httpapi.CORSAllowHeaders},
				{"ExposeHeaders", httpapi.CORSExposeHeaders},
			} {
				got, err := stringList(cors[f.field])
				if err != nil {
					t.Errorf("%s.%s: %v", where, f.field, err)
					continue
				}
				missing, extra := setDiff(got, f.want)
				if len(missing) > 0 || len(extra) > 0 {
					t.Errorf("%s.%s is %v; shared/httpapi has %v (missing %v, not in the Go code %v)",
						where, f.field, got, f.want, missing, extra)
				}
			}
			age, ok := cors["MaxAge"].(json.Number)
			if n, err := age.Int64(); !ok || err != nil || n != int64(httpapi.CORSMaxAge) {
				t.Errorf("%s.MaxAge is %v; shared/httpapi.CORSMaxAge is %d", where, cors["MaxAge"], httpapi.CORSMaxAge)
			}
		})
	}
}

// TestCORSMatchesFunctionURLs checks the same of the streaming Function URLs, which answer
// preflights themselves: the origins are the CorsAllowOrigins parameter, as for the HTTP API,
// and the methods are shared/httpapi's without OPTIONS, which a Function URL's AllowMethods
// refuses (it takes GET, PUT, POST, DELETE, HEAD, PATCH or *).
func TestCORSMatchesFunctionURLs(t *testing.T) {
	tmpl := loadTemplate(t)
	methods := slices.DeleteFunc(slices.Clone(httpapi.CORSAllowMethods), func(m string) bool { return strings.EqualFold(m, "OPTIONS") })
	seen := 0
	for _, fn := range resourcesOfType(t, tmpl, "AWS::Serverless::Function") {
		url, ok := mapAt(t, tmpl, "Resources", fn, "Properties")["FunctionUrlConfig"].(map[string]any)
		if !ok {
			continue
		}
		seen++
		t.Run(fn, func(t *testing.T) {
			where := "Resources." + fn + ".Properties.FunctionUrlConfig.Cors"
			cors, ok := url["Cors"].(map[string]any)
			if !ok {
				t.Fatalf("%s is %v: a browser app could not call it", where, url["Cors"])
			}
			if o, _ := cors["AllowOrigins"].(map[string]any); o["Ref"] != "CorsAllowOrigins" {
				t.Errorf("%s.AllowOrigins is %v, want !Ref CorsAllowOrigins", where, cors["AllowOrigins"])
			}
			for _, f := range []struct {
				field string
				want  []string
			}{
				{"AllowMethods", methods},
				{"AllowHeaders", httpapi.CORSAllowHeaders},
				{"ExposeHeaders", httpapi.CORSExposeHeaders},
			} {
				got, err := stringList(cors[f.field])
				if err != nil {
					t.Errorf("%s.%s: %v", where, f.field, err)
					continue
				}
				missing, extra := setDiff(got, f.want)
				if len(missing) > 0 || len(extra) > 0 {
					t.Errorf("%s.%s is %v; want %v (missing %v, not wanted %v)", where, f.field, got, f.want, missing, extra)
				}
			}
			age, ok := cors["MaxAge"].(json.Number)
			if n, err := age.Int64(); !ok || err != nil || n != int64(httpapi.CORSMaxAge) {
				t.Errorf("%s.MaxAge is %v; shared/httpapi.CORSMaxAge is %d", where, cors["MaxAge"], httpapi.CORSMaxAge)
			}
		})
	}
	if seen == 0 {
		t.Fatalf("%s has no function behind a Function URL (the streaming routes)", templateFile)
	}
}

// corsConfiguration is the CorsConfiguration of the HttpApi resource api, or else the one of
// Globals.HttpApi, which SAM applies to every HttpApi without its own.
func corsConfiguration(t *testing.T, tmpl map[string]any, api string) (map[string]any, string) {
	t.Helper()
	where := "Resources." + api + ".Properties.CorsConfiguration"
	c, ok := mapAt(t, tmpl, "Resources", api, "Properties")["CorsConfiguration"]
	if !ok {
		if g, isMap := tmpl["Globals"].(map[string]any); isMap {
			if h, isMap := g["HttpApi"].(map[string]any); isMap {
				where = "Globals.HttpApi.CorsConfiguration"
				c, ok = h["CorsConfiguration"]
			}
		}
	}
	if !ok {
		t.Fatalf("%s: no CorsConfiguration for %s (nor in Globals.HttpApi)", templateFile, api)
	}
	m, ok := c.(map[string]any)
	if !ok {
		t.Fatalf("%s: %s is %v, not the object with AllowMethods, AllowHeaders, ExposeHeaders and MaxAge", templateFile, where, c)
	}
	return m, where
}

// stringList is v as a list of literal strings; an intrinsic there cannot be compared.
func stringList(v any) ([]string, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%v is not a list of literal strings", v)
	}
	out := make([]string, 0, len(list))
	for _, e := range list {
		s, ok := e.(string)
		if !ok {
			return nil, fmt.Errorf("%v is not a literal string", e)
		}
		out = append(out, s)
	}
	return out, nil
}

// setDiff compares got with want as case-insensitive sets: missing are in want only, extra in
// got only.
func setDiff(got, want []string) (missing, extra []string) {
	fold := func(list []string) []string {
		out := make([]string, len(list))
		for i, s := range list {
			out[i] = strings.ToLower(s)
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	g, w := fold(got), fold(want)
	for _, s := range w {
		if !slices.Contains(g, s) {
			missing = append(missing, s)
		}
	}
	for _, s := range g {
		if !slices.Contains(w, s) {
			extra = append(extra, s)
		}
	}
	return missing, extra
}
