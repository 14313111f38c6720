package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

// The JSON scanner under the inference request parser of oip_json.go: a
// position in a buffer, values read in place, syntax errors with line and
// column, and numbers converted while they are scanned.

// float converts a number to float64, rounded to the given precision (32 or
// 64 bits). When its mantissa and power of ten are both exactly
// representable, one multiplication or division gives the correctly rounded
// result (Clinger's fast path, as strconv takes); most tensor data qualifies
// and needs no second pass over its digits. strconv.ParseFloat converts the
// rest; ok is false when the value is out of range.
func (n *jsonNumber) float(bits int) (f float64, ok bool) {
	switch {
	case !n.exact:
	case bits == 32 && n.mant <= 1<<24 && -10 <= n.exp && n.exp <= 10:
		f32 := float32(n.mant)
		if n.exp < 0 {
			f32 /= float32Pow10[-n.exp]
		} else {
			f32 *= float32Pow10[n.exp]
		}
		if n.neg {
			f32 = -f32
		}
		return float64(f32), true
	case bits == 64 && n.mant <= 1<<53 && -22 <= n.exp && n.exp <= 22:
		f = float64(n.mant)
		if n.exp < 0 {
			f /= float64Pow10[-n.exp]
		} else {
			f *= float64Pow10[n.exp]
		}
		if n.neg {
			f = -f
		}
		return f, true
	}
	f, err := strconv.ParseFloat(string(n.text), bits)
	return f, err == nil
}

var (
	float32Pow10 = [...]float32{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10}
	float64Pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
		1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}
)

// magnitude is an integer's absolute value; ok is false past 2⁶⁴-1.
func (n *jsonNumber) magnitude() (mag uint64, ok bool) {
	if n.exact {
		return n.mant, true // at most 19 digits
	}
	digits := n.text
	if n.neg {
		digits = digits[1:]
	}
	for _, c := range digits {
		if mag > (math.MaxUint64-uint64(c-'0'))/10 {
			return 0, false
		}
		mag = mag*10 + uint64(c-'0')
	}
	return mag, true
}

// jsonParser reads JSON from buf, positioned at pos.
type jsonParser struct {
	buf []byte
	pos int
}

// syntaxError reports malformed JSON at the current position.
func (p *jsonParser) syntaxError(format string, args ...any) error {
	line, col := 1, 1
	for _, c := range p.buf[:min(p.pos, len(p.buf))] {
		if c == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return fmt.Errorf("%w: malformed JSON at line %d, column %d (byte %d): %s, found %s",
		ErrBadRequest, line, col, p.pos, fmt.Sprintf(format, args...), p.found())
}

// found names what is at the current position, for error messages.
func (p *jsonParser) found() string {
	switch c := p.peek(); {
	case p.pos >= len(p.buf):
		return "the end of the body"
	case c == '"':
		return "a string"
	case c == '-' || isDigit(c):
		return "a number"
	case c == 't' || c == 'f':
		return "a boolean"
	case c == 'n':
		return "null"
	case c == '{':
		return "an object"
	case c == '[':
		return "an array"
	default:
		return strconv.QuoteRune(rune(c))
	}
}

func (p *jsonParser) ws() {
	for p.pos < len(p.buf) {
		switch p.buf[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *jsonParser) peek() byte {
	if p.pos < len(p.buf) {
		return p.buf[p.pos]
	}
	return 0
}

func (p *jsonParser) literal(lit string) bool {
	if bytes.HasPrefix(p.buf[p.pos:], []byte(lit)) {
		p.pos += len(lit)
		return true
	}
	return false
}

func (p *jsonParser) null() bool {
	p.ws()
	return p.literal("null")
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// object parses an object; field is called at each value and must consume it.
func (p *jsonParser) object(field func(key string) error) error {
	p.ws()
	if p.peek() != '{' {
		return p.syntaxError("expected an object")
	}
	p.pos++
	p.ws()
	if p.peek() == '}' {
		p.pos++
		return nil
	}
	for {
		p.ws()
		if p.peek() != '"' {
			return p.syntaxError("expected a quoted key")
		}
		key, err := p.strBytes()
		if err != nil {
			return err
		}
		p.ws()
		if p.peek() != ':' {
			return p.syntaxError("expected ':' after key %q", key)
		}
		p.pos++
		p.ws()
		if err := field(string(key)); err != nil {
			return err
		}
		p.ws()
		switch p.peek() {
		case ',':
			p.pos++
		case '}':
			p.pos++
			return nil
		default:
			return p.syntaxError("expected ',' or '}' in an object")
		}
	}
}

// array parses an array; elem is called at each element and must consume it.
func (p *jsonParser) array(elem func() error) error {
	p.ws()
	if p.peek() != '[' {
		return p.syntaxError("expected an array")
	}
	p.pos++
	p.ws()
	if p.peek() == ']' {
		p.pos++
		return nil
	}
	for {
		p.ws()
		if err := elem(); err != nil {
			return err
		}
		p.ws()
		switch p.peek() {
		case ',':
			p.pos++
		case ']':
			p.pos++
			return nil
		default:
			return p.syntaxError("expected ',' or ']' in an array")
		}
	}
}

// strBytes parses a string. Without escapes the result aliases buf.
func (p *jsonParser) strBytes() ([]byte, error) {
	start := p.pos // '"'
	for i := start + 1; i < len(p.buf); i++ {
		switch c := p.buf[i]; {
		case c == '"':
			p.pos = i + 1
			return p.buf[start+1 : i], nil
		case c == '\\':
			return p.escapedString(start)
		case c < 0x20:
			p.pos = i
			return nil, p.syntaxError("control character in a string")
		}
	}
	p.pos = len(p.buf)
	return nil, p.syntaxError("unterminated string")
}

// escapedString parses a string with escapes, leaving their decoding (\u
// surrogate pairs included) to encoding/json.
func (p *jsonParser) escapedString(start int) ([]byte, error) {
	i := start + 1
	for ; i < len(p.buf) && p.buf[i] != '"'; i++ {
		if p.buf[i] == '\\' {
			i++
		} else if p.buf[i] < 0x20 {
			p.pos = i
			return nil, p.syntaxError("control character in a string")
		}
	}
	if i >= len(p.buf) {
		p.pos = len(p.buf)
		return nil, p.syntaxError("unterminated string")
	}
	var s string
	if err := json.Unmarshal(p.buf[start:i+1], &s); err != nil {
		p.pos = start
		return nil, p.syntaxError("invalid escape in a string")
	}
	p.pos = i + 1
	return []byte(s), nil
}

// stringValue parses a string, or explains that one was expected.
func (p *jsonParser) stringValue(what string) (string, error) {
	if p.peek() != '"' {
		return "", fmt.Errorf("%w: %s must be a string, found %s", ErrBadRequest, what, p.found())
	}
	s, err := p.strBytes()
	return string(s), err
}

// integer parses an integer that fits int64, or explains that one was
// expected.
func (p *jsonParser) integer(what string) (int64, error) {
	if c := p.peek(); c != '-' && !isDigit(c) {
		return 0, fmt.Errorf("%w: %s must be an integer, found %s", ErrBadRequest, what, p.found())
	}
	n, err := p.number()
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseInt(string(n.text), 10, 64)
	if !n.integer || err != nil {
		return 0, fmt.Errorf("%w: %s must be an integer, got %s", ErrBadRequest, what, n.text)
	}
	return v, nil
}

// jsonNumber is a number as written: its text and, when it has at most 19
// significant digits and a modest exponent (exact), its value as
// ±mant × 10^exp, gathered while scanning.
type jsonNumber struct {
	text    []byte
	mant    uint64
	exp     int
	neg     bool
	integer bool // no fraction, no exponent
	exact   bool
}

// number scans a JSON number.
func (p *jsonParser) number() (n jsonNumber, err error) {
	b, i := p.buf, p.pos
	nd := 0 // digits in mant
	n.exact, n.integer = true, true
	if i < len(b) && b[i] == '-' {
		n.neg = true
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		for ; i < len(b) && isDigit(b[i]); i++ {
			if nd++; nd > 19 {
				n.exact = false
			}
			n.mant = n.mant*10 + uint64(b[i]-'0')
		}
	default:
		p.pos = i
		return n, p.syntaxError("expected a digit")
	}
	if i < len(b) && b[i] == '.' {
		n.integer = false
		i++
		start := i
		for ; i < len(b) && isDigit(b[i]); i++ {
			n.exp--
			if n.mant == 0 && b[i] == '0' {
				continue // a leading zero
			}
			if nd++; nd > 19 {
				n.exact = false
			}
			n.mant = n.mant*10 + uint64(b[i]-'0')
		}
		if i == start {
			p.pos = i
			return n, p.syntaxError("expected a digit after the decimal point")
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		n.integer = false
		i++
		neg := false
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			neg = b[i] == '-'
			i++
		}
		start, e := i, 0
		for ; i < len(b) && isDigit(b[i]); i++ {
			if e = e*10 + int(b[i]-'0'); e > 9999 {
				n.exact, e = false, 9999
			}
		}
		if i == start {
			p.pos = i
			return n, p.syntaxError("expected a digit in the exponent")
		}
		if neg {
			e = -e
		}
		n.exp += e
	}
	n.text, p.pos = b[p.pos:i], i
	return n, nil
}

// skip parses and discards one value.
func (p *jsonParser) skip(depth int) error {
	if depth >= maxJSONDepth {
		return p.syntaxError("nested deeper than %d levels", maxJSONDepth)
	}
	p.ws()
	switch c := p.peek(); {
	case c == '{':
		return p.object(func(string) error { return p.skip(depth + 1) })
	case c == '[':
		return p.array(func() error { return p.skip(depth + 1) })
	case c == '"':
		_, err := p.strBytes()
		return err
	case c == '-' || isDigit(c):
		_, err := p.number()
		return err
	case p.literal("true"), p.literal("false"), p.literal("null"):
		return nil
	}
	return p.syntaxError("expected a value")
}

// params parses a $parameters object (or null). Scalars become string,
// json.Number, bool or nil; objects and arrays what encoding/json makes of
// them with UseNumber.
func (p *jsonParser) params() (map[string]any, error) {
	if p.null() {
		return nil, nil
	}
	params := map[string]any{}
	err := p.object(func(key string) error {
		var v any
		switch c := p.peek(); {
		case c == '"':
			s, err := p.strBytes()
			if err != nil {
				return err
			}
			v = string(s)
		case c == '-' || isDigit(c):
			n, err := p.number()
			if err != nil {
				return err
			}
			v = json.Number(n.text)
		case p.literal("true"):
			v = true
		case p.literal("false"):
			v = false
		case p.literal("null"):
		default:
			start := p.pos
			if err := p.skip(1); err != nil {
				return err
			}
			dec := json.NewDecoder(bytes.NewReader(p.buf[start:p.pos]))
			dec.UseNumber()
			if err := dec.Decode(&v); err != nil {
				return fmt.Errorf("%w: parameter %q: %v", ErrBadRequest, key, err)
			}
		}
		params[key] = v
		return nil
	})
	return params, err
}
