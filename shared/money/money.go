// Package money represents US dollars as integer nano-dollars (1 USD = 1e9 nano-USD), so that
// budgets and costs add up exactly and never drift the way float64 sums do.
package money

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"math/bits"
	"reflect"
	"regexp"
	"strconv"
	"strings"
)

// Nano is an amount of nano-USD.
type Nano int64

// PerUSD is the number of nano-USD in one dollar.
const PerUSD Nano = 1_000_000_000

// maxUSD bounds amounts parsed from clients: far above any real budget, far below int64 overflow.
const maxUSD = 1_000_000_000

// ErrOutOfRange reports an amount that is negative, not finite or absurdly large.
var ErrOutOfRange = errors.New("a USD amount must be between 0 and 1000000000")

// FromUSD converts a dollar amount to nano-USD, rounding to the nearest nano.
func FromUSD(usd float64) (Nano, error) {
	if math.IsNaN(usd) || math.IsInf(usd, 0) || usd < 0 || usd > maxUSD {
		return 0, ErrOutOfRange
	}
	return Nano(math.Round(usd * float64(PerUSD))), nil
}

// MustUSD is FromUSD for constants known to be valid; it panics otherwise.
func MustUSD(usd float64) Nano {
	n, err := FromUSD(usd)
	if err != nil {
		panic(fmt.Sprintf("money.MustUSD(%v): %v", usd, err))
	}
	return n
}

// decimalUSD is what ParseUSD accepts: a plain decimal with an optional small exponent, so that
// fractions ("1/2"), hex ("0x10") and huge exponents (costly to evaluate) are refused up front.
var decimalUSD = regexp.MustCompile(`^[0-9]{1,16}(\.[0-9]{1,30})?([eE][+-]?[0-9]{1,2})?$`)

// ParseUSD parses a decimal dollar amount ("50", "0.00027", "1e-7") exactly. More than nine
// decimal places cannot be represented and is an error rather than a silent rounding.
func ParseUSD(s string) (Nano, error) {
	s = strings.TrimSpace(s)
	if !decimalUSD.MatchString(strings.TrimPrefix(s, "-")) {
		return 0, fmt.Errorf("%q is not a decimal number", s)
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	if r.Sign() < 0 || r.Cmp(big.NewRat(maxUSD, 1)) > 0 {
		return 0, ErrOutOfRange
	}
	r.Mul(r, big.NewRat(int64(PerUSD), 1))
	if !r.IsInt() {
		return 0, fmt.Errorf("%q has more than 9 decimal places", s)
	}
	return Nano(r.Num().Int64()), nil
}

// USD returns the amount as float64 dollars, for display only.
func (n Nano) USD() float64 { return float64(n) / float64(PerUSD) }

// String formats the amount as an exact decimal number of dollars without trailing zeros.
func (n Nano) String() string { return string(n.AppendDecimal(nil)) }

// AppendDecimal appends the exact decimal dollar representation ("0.00027", "50", "-1.5").
func (n Nano) AppendDecimal(b []byte) []byte {
	u := uint64(n)
	if n < 0 {
		b = append(b, '-')
		u = uint64(-n) // correct for math.MinInt64 too, thanks to two's complement
	}
	whole, frac := u/uint64(PerUSD), u%uint64(PerUSD)
	b = strconv.AppendUint(b, whole, 10)
	if frac == 0 {
		return b
	}
	var digits [9]byte
	for i := 8; i >= 0; i-- {
		digits[i] = byte('0' + frac%10)
		frac /= 10
	}
	end := 9
	for end > 0 && digits[end-1] == '0' {
		end--
	}
	b = append(b, '.')
	return append(b, digits[:end]...)
}

// MarshalJSON writes the amount as a JSON number of dollars, exactly.
func (n Nano) MarshalJSON() ([]byte, error) { return n.AppendDecimal(nil), nil }

// UnmarshalJSON reads a JSON number of dollars, exactly. Anything but a number is reported as a
// *json.UnmarshalTypeError, so decoders name the field and call it a type error.
func (n *Nano) UnmarshalJSON(b []byte) error {
	s := string(b)
	if len(s) == 0 || !(s[0] == '-' || (s[0] >= '0' && s[0] <= '9')) {
		// Reported as float64 so that messages call it a number, which an amount is.
		return &json.UnmarshalTypeError{Value: jsonKindOf(s), Type: reflect.TypeFor[float64]()}
	}
	v, err := ParseUSD(s)
	if err != nil {
		return err
	}
	*n = v
	return nil
}

func jsonKindOf(s string) string {
	switch {
	case strings.HasPrefix(s, `"`):
		return "string"
	case s == "true" || s == "false":
		return "bool"
	case s == "null":
		return "null"
	case strings.HasPrefix(s, "["):
		return "array"
	}
	return "object"
}

// TokenCharge is a number of tokens at a price in nano-USD per million tokens.
type TokenCharge struct {
	Tokens     int64
	PerMillion Nano
}

// CostOf returns Σ tokens×price / 1e6, rounded up to the next nano-USD so that Helix never
// under-charges. The sum is computed in 128 bits, so it is exact for any realistic inputs; ok is
// false when an input is negative or the result would not fit in an int64.
func CostOf(charges ...TokenCharge) (cost Nano, ok bool) {
	var hi, lo uint64
	for _, c := range charges {
		if c.Tokens < 0 || c.PerMillion < 0 {
			return 0, false
		}
		h, l := bits.Mul64(uint64(c.Tokens), uint64(c.PerMillion))
		var carry uint64
		lo, carry = bits.Add64(lo, l, 0)
		hi, carry = bits.Add64(hi, h, carry)
		if carry != 0 {
			return 0, false
		}
	}
	const million = 1_000_000
	if hi >= million {
		return 0, false
	}
	q, r := bits.Div64(hi, lo, million)
	if q > math.MaxInt64 || (r != 0 && q == math.MaxInt64) {
		return 0, false
	}
	if r != 0 {
		q++
	}
	return Nano(q), true
}
