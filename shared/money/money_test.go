package money_test

import (
	"encoding/json"
	"errors"
	"math"
	"runtime"
	"strings"
	"testing"

	"github.com/helixhq/helix/shared/money"
)

// Seeded prices, in nano-USD per million tokens (infra/migrations/00002_seed_catalog.sql).
const (
	deepseekIn     money.Nano = 280_000_000
	deepseekOut    money.Nano = 420_000_000
	deepseekCached money.Nano = 28_000_000
	geminiIn       money.Nano = 100_000_000
	geminiOut      money.Nano = 400_000_000
	claudeIn       money.Nano = 1_000_000_000
	claudeOut      money.Nano = 5_000_000_000
)

func TestFromUSD(t *testing.T) {
	tests := []struct {
		name    string
		usd     float64
		want    money.Nano
		wantErr bool
	}{
		{name: "zero", usd: 0, want: 0},
		{name: "negative zero", usd: math.Copysign(0, -1), want: 0},
		{name: "fifty dollars", usd: 50, want: 50_000_000_000},
		{name: "deepseek input price", usd: 0.28, want: 280_000_000},
		{name: "sub-cent", usd: 0.00027, want: 270_000},
		{name: "one nano", usd: 1e-9, want: 1},
		{name: "rounds half a nano up", usd: 1.5e-9, want: 2},
		{name: "rounds below half a nano down", usd: 1.4e-9, want: 1},
		{name: "rounds to nearest, not truncating", usd: 0.1 + 0.2, want: 300_000_000},
		{name: "upper bound inclusive", usd: 1e9, want: 1e18},
		{name: "just above upper bound", usd: 1e9 + 1, wantErr: true},
		{name: "huge", usd: 1e300, wantErr: true},
		{name: "negative", usd: -0.01, wantErr: true},
		{name: "tiny negative", usd: -1e-12, wantErr: true},
		{name: "NaN", usd: math.NaN(), wantErr: true},
		{name: "+Inf", usd: math.Inf(1), wantErr: true},
		{name: "-Inf", usd: math.Inf(-1), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := money.FromUSD(tt.usd)
			if tt.wantErr {
				if !errors.Is(err, money.ErrOutOfRange) {
					t.Fatalf("FromUSD(%v) = %d, %v; want ErrOutOfRange", tt.usd, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("FromUSD(%v) = %d, %v; want %d", tt.usd, got, err, tt.want)
			}
		})
	}
}

func TestMustUSD(t *testing.T) {
	if got := money.MustUSD(25); got != 25*money.PerUSD {
		t.Fatalf("MustUSD(25) = %d", got)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("MustUSD(-1) did not panic")
		}
	}()
	money.MustUSD(-1)
}

func TestParseUSD(t *testing.T) {
	tests := []struct {
		in      string
		want    money.Nano
		wantErr error // nil: success; errAny: any error
	}{
		{in: "0", want: 0},
		{in: "50", want: 50_000_000_000},
		{in: "0.00027", want: 270_000},
		{in: "0.28", want: 280_000_000},
		{in: "12.5", want: 12_500_000_000},
		{in: "1e-7", want: 100},
		{in: "1E2", want: 100_000_000_000},
		{in: "2.5e-3", want: 2_500_000},
		{in: "0.000000001", want: 1},
		{in: "0.999999999", want: 999_999_999},
		{in: "0.1000000000", want: 100_000_000}, // ten places, but the value is exact in nine
		{in: " 5 ", want: 5_000_000_000},
		{in: "-0", want: 0},
		{in: "1000000000", want: 1_000_000_000 * money.PerUSD},
		{in: "0.0000000001", wantErr: errAny}, // ten significant places
		{in: "0.0000000005", wantErr: errAny}, // would round, must not
		{in: "1.0000000001", wantErr: errAny}, // ten significant places on a whole amount
		{in: "1e-10", wantErr: errAny},        // exponent form of the same
		{in: "1000000000.000000001", want: 0, wantErr: money.ErrOutOfRange},
		{in: "1000000001", wantErr: money.ErrOutOfRange},
		{in: "1e30", wantErr: money.ErrOutOfRange},
		{in: "-1", wantErr: money.ErrOutOfRange},
		{in: "-0.000000001", wantErr: money.ErrOutOfRange},
		{in: "", wantErr: errAny},
		{in: "   ", wantErr: errAny},
		{in: "abc", wantErr: errAny},
		{in: "$5", wantErr: errAny},
		{in: "5 USD", wantErr: errAny},
		{in: "1,5", wantErr: errAny},
		{in: "1.2.3", wantErr: errAny},
		{in: "NaN", wantErr: errAny},
		{in: "Inf", wantErr: errAny},
		{in: "--1", wantErr: errAny},
		{in: `"5"`, wantErr: errAny},
		{in: "1e", wantErr: errAny},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := money.ParseUSD(tt.in)
			switch {
			case tt.wantErr == nil:
				if err != nil || got != tt.want {
					t.Fatalf("ParseUSD(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
				}
			case tt.wantErr == errAny:
				if err == nil {
					t.Fatalf("ParseUSD(%q) = %d; want an error", tt.in, got)
				}
			default:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("ParseUSD(%q) = %d, %v; want %v", tt.in, got, err, tt.wantErr)
				}
			}
		})
	}
}

var errAny = errors.New("any error")

// ParseUSD documents "a decimal dollar amount", but it hands the string to big.Rat.SetString,
// which also accepts fractions, base prefixes and digit separators. Through JSON these cannot
// arrive (the decoder only passes number literals), but environment values such as
// HELIX_DEFAULT_DAILY_LIMIT_USD go straight to ParseUSD.
func TestParseUSDRejectsNonDecimalSyntax(t *testing.T) {
	for _, in := range []string{"1/2", "0x10", "0b1", "0o7", "1_000", "0x1p-2"} {
		if got, err := money.ParseUSD(in); err == nil {
			t.Errorf("ParseUSD(%q) = %d, want an error: not a decimal amount", in, got)
		}
	}
}

func TestString(t *testing.T) {
	tests := []struct {
		n    money.Nano
		want string
	}{
		{0, "0"},
		{1, "0.000000001"},
		{270_000, "0.00027"},
		{280_000_000, "0.28"},
		{100_000_000, "0.1"},
		{999_999_999, "0.999999999"},
		{money.PerUSD, "1"},
		{50 * money.PerUSD, "50"},
		{12_500_000_000, "12.5"},
		{1_000_000_001, "1.000000001"},
		{175_000, "0.000175"},
		{-1, "-0.000000001"},
		{-1_500_000_000, "-1.5"},
		{-50 * money.PerUSD, "-50"},
		{math.MaxInt64, "9223372036.854775807"},
		{math.MinInt64, "-9223372036.854775808"},
		{math.MinInt64 + 1, "-9223372036.854775807"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.n.String(); got != tt.want {
				t.Errorf("Nano(%d).String() = %q, want %q", int64(tt.n), got, tt.want)
			}
			prefix := []byte("x=")
			if got := string(tt.n.AppendDecimal(prefix)); got != "x="+tt.want {
				t.Errorf("AppendDecimal(%q) = %q, want %q", prefix, got, "x="+tt.want)
			}
			b, err := tt.n.MarshalJSON()
			if err != nil || string(b) != tt.want {
				t.Errorf("MarshalJSON = %s, %v; want %s", b, err, tt.want)
			}
			if !json.Valid(b) {
				t.Errorf("MarshalJSON produced invalid JSON %s", b)
			}
		})
	}
}

func TestUSD(t *testing.T) {
	if got := money.Nano(270_000).USD(); got != 0.00027 {
		t.Errorf("USD() = %v, want 0.00027", got)
	}
}

func TestMarshalInStruct(t *testing.T) {
	v := struct {
		Cost  money.Nano  `json:"cost"`
		Limit *money.Nano `json:"limit"`
	}{Cost: 270_000}
	lim := 50 * money.PerUSD
	v.Limit = &lim
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"cost":0.00027,"limit":50}`; string(b) != want {
		t.Fatalf("json.Marshal = %s, want %s", b, want)
	}
}

func TestUnmarshalJSON(t *testing.T) {
	tests := []struct {
		body    string
		want    money.Nano
		wantErr bool
	}{
		{body: `{"v":50}`, want: 50 * money.PerUSD},
		{body: `{"v":0.00027}`, want: 270_000},
		{body: `{"v":12.5}`, want: 12_500_000_000},
		{body: `{"v":1e-7}`, want: 100},
		{body: `{"v":0}`, want: 0},
		{body: `{"v":-1}`, wantErr: true},
		{body: `{"v":0.0000000001}`, wantErr: true},
		{body: `{"v":1e30}`, wantErr: true},
		{body: `{"v":"50"}`, wantErr: true},
		{body: `{"v":""}`, wantErr: true},
		{body: `{"v":null}`, wantErr: true},
		{body: `{"v":true}`, wantErr: true},
		{body: `{"v":[1]}`, wantErr: true},
		{body: `{"v":{}}`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			var v struct {
				V money.Nano `json:"v"`
			}
			v.V = 7 // must stay untouched on error
			err := json.Unmarshal([]byte(tt.body), &v)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("Unmarshal(%s) = %d, want an error", tt.body, v.V)
				}
				if v.V != 7 {
					t.Errorf("Unmarshal(%s) changed the value to %d on error", tt.body, v.V)
				}
				return
			}
			if err != nil || v.V != tt.want {
				t.Fatalf("Unmarshal(%s) = %d, %v; want %d", tt.body, v.V, err, tt.want)
			}
		})
	}
}

func TestUnmarshalJSONDirect(t *testing.T) {
	for _, in := range []string{`null`, `"1"`, `"`, ``} {
		var n money.Nano
		if err := n.UnmarshalJSON([]byte(in)); err == nil {
			t.Errorf("UnmarshalJSON(%q) = nil error, want rejection", in)
		}
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	for _, n := range []money.Nano{0, 1, 270_000, 175_000, 280_000_000, 50 * money.PerUSD, 1_000_000_000 * money.PerUSD} {
		b, err := json.Marshal(n)
		if err != nil {
			t.Fatal(err)
		}
		var back money.Nano
		if err := json.Unmarshal(b, &back); err != nil || back != n {
			t.Errorf("round trip of %d via %s = %d, %v", n, b, back, err)
		}
	}
}

func tc(tokens int64, perMillion money.Nano) money.TokenCharge {
	return money.TokenCharge{Tokens: tokens, PerMillion: perMillion}
}

func TestCostOf(t *testing.T) {
	tests := []struct {
		name    string
		charges []money.TokenCharge
		want    money.Nano
		wantOK  bool
	}{
		{name: "nothing", want: 0, wantOK: true},
		{name: "zero tokens", charges: []money.TokenCharge{tc(0, deepseekIn)}, want: 0, wantOK: true},
		{name: "free model", charges: []money.TokenCharge{tc(1_000_000, 0)}, want: 0, wantOK: true},
		// 1M tokens at the per-1M price is exactly the price.
		{name: "one million deepseek input", charges: []money.TokenCharge{tc(1_000_000, deepseekIn)}, want: 280_000_000, wantOK: true},
		// 100 × 280000000 / 1e6 = 28000, exact.
		{name: "100 deepseek input", charges: []money.TokenCharge{tc(100, deepseekIn)}, want: 28_000, wantOK: true},
		// 100 × 280 + 350 × 420 = 28000 + 147000 = 175000 nano = $0.000175 (email-compose).
		{name: "email-compose estimate", charges: []money.TokenCharge{tc(100, deepseekIn), tc(350, deepseekOut)}, want: 175_000, wantOK: true},
		// 1 × 280000000 / 1e6 = 280, exact.
		{name: "one deepseek token", charges: []money.TokenCharge{tc(1, deepseekIn)}, want: 280, wantOK: true},
		// 1 × 28000000 / 1e6 = 28.
		{name: "one cached deepseek token", charges: []money.TokenCharge{tc(1, deepseekCached)}, want: 28, wantOK: true},
		// 1 token at 1 nano per 1M = 1e-6 nano, rounded up to 1.
		{name: "fraction rounds up", charges: []money.TokenCharge{tc(1, 1)}, want: 1, wantOK: true},
		// 999999 × 1 / 1e6 = 0.999999 → 1.
		{name: "just below one nano rounds up", charges: []money.TokenCharge{tc(999_999, 1)}, want: 1, wantOK: true},
		// 1000001 × 1 / 1e6 = 1.000001 → 2.
		{name: "just above one nano rounds up", charges: []money.TokenCharge{tc(1_000_001, 1)}, want: 2, wantOK: true},
		// Rounding happens once on the sum: 500000×1 + 500000×1 = 1e6 → exactly 1, not 2.
		{name: "rounded once on the sum", charges: []money.TokenCharge{tc(500_000, 1), tc(500_000, 1)}, want: 1, wantOK: true},
		// 3 × 333333 = 999999 → 1.
		{name: "three parts under one nano", charges: []money.TokenCharge{tc(1, 333_333), tc(1, 333_333), tc(1, 333_333)}, want: 1, wantOK: true},
		// Gemini: 1234 × 100 + 567 × 400 = 123400 + 226800 = 350200.
		{name: "gemini call", charges: []money.TokenCharge{tc(1234, geminiIn), tc(567, geminiOut)}, want: 350_200, wantOK: true},
		// Claude: 3 × 1000 + 7 × 5000 = 38000.
		{name: "claude call", charges: []money.TokenCharge{tc(3, claudeIn), tc(7, claudeOut)}, want: 38_000, wantOK: true},
		// 7 × 333 333 333 / 1e6 = 2333.333331 → 2334.
		{name: "odd price rounds up", charges: []money.TokenCharge{tc(7, 333_333_333)}, want: 2334, wantOK: true},
		{name: "negative tokens", charges: []money.TokenCharge{tc(-1, deepseekIn)}, wantOK: false},
		{name: "negative price", charges: []money.TokenCharge{tc(1, -1)}, wantOK: false},
		{name: "negative after a valid charge", charges: []money.TokenCharge{tc(100, deepseekIn), tc(-1, 0)}, wantOK: false},
		{name: "min int64 tokens", charges: []money.TokenCharge{tc(math.MinInt64, 1)}, wantOK: false},
		// Near the int64 limit: 1e6 × MaxInt64 / 1e6 = MaxInt64 exactly.
		{name: "exactly max int64", charges: []money.TokenCharge{tc(1_000_000, math.MaxInt64)}, want: math.MaxInt64, wantOK: true},
		// MaxInt64 tokens at 1e6 nano per 1M = MaxInt64.
		{name: "max tokens at one nano per token", charges: []money.TokenCharge{tc(math.MaxInt64, 1_000_000)}, want: math.MaxInt64, wantOK: true},
		// 1 × MaxInt64 / 1e6 = 9223372036854.775807 → 9223372036855.
		{name: "one token at max price", charges: []money.TokenCharge{tc(1, math.MaxInt64)}, want: 9_223_372_036_855, wantOK: true},
		// One more part in 1e6 than MaxInt64: the ceiling is MaxInt64+1.
		{name: "max int64 plus a fraction", charges: []money.TokenCharge{tc(1_000_000, math.MaxInt64), tc(1, 1)}, wantOK: false},
		{name: "just over max int64", charges: []money.TokenCharge{tc(1_000_001, math.MaxInt64)}, wantOK: false},
		{name: "product over 64 bits", charges: []money.TokenCharge{tc(math.MaxInt64, math.MaxInt64)}, wantOK: false},
		{name: "sum over 128 bits", charges: []money.TokenCharge{
			tc(math.MaxInt64, math.MaxInt64), tc(math.MaxInt64, math.MaxInt64), tc(math.MaxInt64, math.MaxInt64),
			tc(math.MaxInt64, math.MaxInt64), tc(math.MaxInt64, math.MaxInt64), tc(math.MaxInt64, math.MaxInt64),
		}, wantOK: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := money.CostOf(tt.charges...)
			if ok != tt.wantOK || (ok && got != tt.want) {
				t.Fatalf("CostOf(%v) = %d, %v; want %d, %v", tt.charges, got, ok, tt.want, tt.wantOK)
			}
			if !ok && got != 0 {
				t.Errorf("CostOf returned %d with ok=false; want 0", got)
			}
		})
	}
}

// CostOf's quotient fits 64 bits whenever hi < 1e6, but the round-up increment can still wrap:
// with Σ = 1e6·2⁶⁴ − 500000 the quotient is 2⁶⁴−1 with a remainder, q++ wraps to 0, and the
// q > MaxInt64 check then passes. The charge below is 2e6 tokens at MaxInt64 plus 1.5e6 at 1.
func TestCostOfRoundUpDoesNotWrap(t *testing.T) {
	got, ok := money.CostOf(tc(2_000_000, math.MaxInt64), tc(1_500_000, 1))
	if ok {
		t.Fatalf("CostOf(2e6×MaxInt64 + 1.5e6×1) = %d, true; want ok=false (the cost exceeds int64)", got)
	}
}

func TestCostOfIsMonotonic(t *testing.T) {
	// More tokens never cost less, and every extra token at a positive price costs something.
	prev := money.Nano(-1)
	for tokens := int64(0); tokens <= 5000; tokens++ {
		got, ok := money.CostOf(tc(tokens, deepseekOut))
		if !ok {
			t.Fatalf("CostOf(%d tokens) not ok", tokens)
		}
		if got <= prev && tokens > 0 {
			t.Fatalf("CostOf(%d tokens) = %d, not more than %d", tokens, got, prev)
		}
		// Exact: 420 nano per token.
		if got != money.Nano(tokens)*420 {
			t.Fatalf("CostOf(%d tokens) = %d, want %d", tokens, got, tokens*420)
		}
		prev = got
	}
}

func FuzzParseUSD(f *testing.F) {
	for _, s := range []string{
		"0", "50", "0.00027", "1e-7", "12.5", "0.000000001", "1000000000", "1000000001",
		"-1", "0.0000000001", "abc", "", " 5 ", "1/2", "0x10", "1e400", "1e-400", "NaN",
		strings.Repeat("9", 40), "0." + strings.Repeat("0", 30) + "1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := money.ParseUSD(s)
		if err != nil {
			if n != 0 {
				t.Fatalf("ParseUSD(%q) = %d with error %v; want 0", s, n, err)
			}
			return
		}
		if n < 0 || n > 1_000_000_000*money.PerUSD {
			t.Fatalf("ParseUSD(%q) = %d, outside [0, $1e9]", s, n)
		}
		str := n.String()
		back, err := money.ParseUSD(str)
		if err != nil || back != n {
			t.Fatalf("ParseUSD(%q) = %d; String() = %q re-parses to %d, %v", s, n, str, back, err)
		}
		b, err := n.MarshalJSON()
		if err != nil || string(b) != str {
			t.Fatalf("MarshalJSON(%d) = %s, %v; want %s", n, b, err, str)
		}
		var fromJSON money.Nano
		if err := json.Unmarshal(b, &fromJSON); err != nil || fromJSON != n {
			t.Fatalf("json.Unmarshal(%s) = %d, %v; want %d", b, fromJSON, err, n)
		}
	})
}

// A nine-character amount with a huge exponent makes big.Rat build a number with a million
// decimal digits before the range check rejects it: megabytes of allocation and tens of
// milliseconds of CPU per value, reachable through HELIX_*_USD and the admin budget API.
func TestParseUSDHugeExponentIsCheap(t *testing.T) {
	for _, in := range []string{"1e999999", "1e-999999"} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := money.ParseUSD(in)
		runtime.ReadMemStats(&after)
		if err == nil {
			t.Fatalf("ParseUSD(%q) succeeded", in)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<10 {
			t.Errorf("ParseUSD(%q) allocated %d bytes to reject a %d-byte input", in, alloc, len(in))
		}
	}
}
