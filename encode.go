package push

import (
	"strconv"
	"unicode/utf8"
)

// The encoder below writes JSON strings with the same bytes as
// encoding/json.Marshal, which escapes HTML characters by default. It
// appends to a caller's slice and never allocates when the slice has
// room, so a payload costs one allocation of its exact size.

const hexDigits = "0123456789abcdef"

// asciiEscape maps each ASCII byte to how encoding/json writes it inside a
// string: 0 for the byte itself, 'u' for a \u00XX escape, or the letter of
// a two-byte escape such as 'n' for \n.
var asciiEscape = func() (table [utf8.RuneSelf]byte) {
	for b := 0; b < 0x20; b++ {
		table[b] = 'u'
	}
	table['\b'] = 'b'
	table['\f'] = 'f'
	table['\n'] = 'n'
	table['\r'] = 'r'
	table['\t'] = 't'
	table['"'] = '"'
	table['\\'] = '\\'
	table['<'] = 'u'
	table['>'] = 'u'
	table['&'] = 'u'
	return table
}()

// jsonStringLen returns the length of s encoded as a JSON string, quotes
// included.
func jsonStringLen(s string) int {
	n := 2
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			switch asciiEscape[b] {
			case 0:
				n++
			case 'u':
				n += 6
			default:
				n += 2
			}
			i++
			continue
		}

		r, size := utf8.DecodeRuneInString(s[i:])
		if needsRuneEscape(r, size) {
			n += 6
		} else {
			n += size
		}
		i += size
	}
	return n
}

// appendJSONString appends s to dst as a JSON string.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')

	// start is the first byte of s not yet copied to dst. Runs of bytes
	// that need no escape are copied in one append.
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			escape := asciiEscape[b]
			if escape == 0 {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			if escape == 'u' {
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			} else {
				dst = append(dst, '\\', escape)
			}
			i++
			start = i
			continue
		}

		r, size := utf8.DecodeRuneInString(s[i:])
		if needsRuneEscape(r, size) {
			dst = append(dst, s[start:i]...)
			dst = appendRuneEscape(dst, r, size)
			start = i + size
		}
		i += size
	}

	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// needsRuneEscape reports whether a non-ASCII rune decoded with the given
// size must be escaped: an invalid byte, or one of the line and paragraph
// separators that JavaScript treats as line ends.
func needsRuneEscape(r rune, size int) bool {
	return (r == utf8.RuneError && size == 1) || r == '\u2028' || r == '\u2029'
}

// appendRuneEscape appends the escape for a rune that needsRuneEscape
// reported. An invalid byte becomes U+FFFD.
func appendRuneEscape(dst []byte, r rune, size int) []byte {
	if r == utf8.RuneError && size == 1 {
		return append(dst, `\ufffd`...)
	}
	return append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
}

// appendJSONInts appends ids as a JSON array of numbers.
func appendJSONInts(dst []byte, ids []int64) []byte {
	dst = append(dst, '[')
	for i, id := range ids {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = strconv.AppendInt(dst, id, 10)
	}
	return append(dst, ']')
}

// maxIntLen is the length of the longest int64 in decimal, with its sign.
const maxIntLen = len("-9223372036854775808")
