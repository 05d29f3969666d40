package push

import (
	"encoding/binary"
	"math/bits"
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
// included, and whether s is valid UTF-8.
//
// Valid UTF-8, the common case, lets appendJSONString copy every
// non-ASCII byte except the lead byte of U+2028 and U+2029 without
// decoding runes.
func jsonStringLen(s string) (n int, valid bool) {
	n = len(s) + 2
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			n += int(asciiExtraLen[b])
			i++
			continue
		}

		// Most non-ASCII text is three-byte sequences whose lead byte
		// allows any continuation bytes. Check those inline.
		if i+2 < len(s) && (b >= 0xE1 && b <= 0xEC || b >= 0xEE && b <= 0xEF) &&
			isContinuation(s[i+1]) && isContinuation(s[i+2]) {
			if b == 0xE2 && isLineSeparator(s[i:]) {
				n += len(`\u2028`) - 3
			}
			i += 3
			continue
		}

		size := validRuneLen(s[i:])
		if size == 0 {
			return jsonStringLenSlow(s), false
		}
		i += size
	}
	return n, true
}

// The word-at-a-time scan below tests eight bytes at once with the classic
// bit tricks. For a word w, (w - lowBits*c) & ^w & highBits has the high
// bit set in the lowest byte of w below c, and possibly in bytes above it.
// Only the lowest flagged byte is trusted.
const (
	lowBits  = 0x0101010101010101
	highBits = 0x8080808080808080
)

// load64 returns s[i:i+8] as a little-endian word. The compiler turns the
// byte loads into one load.
func load64(s string, i int) uint64 {
	s = s[i : i+8]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// escapeMask flags the bytes of word that appendJSONString cannot copy as
// they are: control bytes, the quote, the backslash, '<', '>', '&', and
// 0xE2, the lead byte of U+2028 and U+2029.
func escapeMask(word uint64) uint64 {
	flagged := (word - lowBits*0x20) & ^word
	// '"' (0x22) and '&' (0x26) differ only in bit 2, and '<' (0x3C) and
	// '>' (0x3E) only in bit 1, so setting that bit tests both at once.
	flagged |= zeroBytes(word | lowBits*0x04 ^ lowBits*'&')
	flagged |= zeroBytes(word | lowBits*0x02 ^ lowBits*'>')
	flagged |= zeroBytes(word ^ lowBits*'\\')
	flagged |= zeroBytes(word ^ lowBits*0xE2)
	return flagged & highBits
}

func zeroBytes(word uint64) uint64 { return (word - lowBits) & ^word }

// firstFlagged returns the index of the lowest flagged byte of a mask, or
// 8 when none is flagged.
func firstFlagged(mask uint64) int {
	return bits.TrailingZeros64(mask) / 8
}

// asciiExtraLen is the number of bytes each ASCII byte's escape adds.
var asciiExtraLen = func() (table [utf8.RuneSelf]uint8) {
	for b, escape := range asciiEscape {
		switch escape {
		case 0:
		case 'u':
			table[b] = uint8(len(`\u00XX`) - 1)
		default:
			table[b] = 1
		}
	}
	return table
}()

// validRuneLen returns the length of the valid multi-byte UTF-8 sequence
// at the start of s, or 0 when it is invalid. It accepts what
// utf8.DecodeRuneInString accepts, without the call.
func validRuneLen(s string) int {
	b := s[0]
	switch {
	case b < 0xC2 || b > 0xF4:
		return 0

	case b < 0xE0:
		if len(s) < 2 || !isContinuation(s[1]) {
			return 0
		}
		return 2

	case b < 0xF0:
		if len(s) < 3 || !isContinuation(s[2]) {
			return 0
		}
		// E0 needs a second byte of A0 or more (no overlong forms), and ED
		// one below A0 (no UTF-16 surrogates).
		second := s[1]
		if !isContinuation(second) || (b == 0xE0 && second < 0xA0) || (b == 0xED && second > 0x9F) {
			return 0
		}
		return 3

	default:
		if len(s) < 4 || !isContinuation(s[2]) || !isContinuation(s[3]) {
			return 0
		}
		// F0 needs a second byte of 90 or more (no overlong forms), and F4
		// one below 90 (nothing past U+10FFFF).
		second := s[1]
		if !isContinuation(second) || (b == 0xF0 && second < 0x90) || (b == 0xF4 && second > 0x8F) {
			return 0
		}
		return 4
	}
}

func isContinuation(b byte) bool { return b&0xC0 == 0x80 }

// isLineSeparator reports whether s starts with U+2028 or U+2029, which
// encode as E2 80 A8 and E2 80 A9.
func isLineSeparator(s string) bool {
	return len(s) >= 3 && s[0] == 0xE2 && s[1] == 0x80 && s[2]&^1 == 0xA8
}

// appendJSONString appends s to dst as a JSON string. size and valid
// must be what jsonStringLen returned for s, and dst must have room for
// size more bytes.
func appendJSONString(dst []byte, s string, size int, valid bool) []byte {
	if !valid {
		return appendJSONStringSlow(dst, s)
	}

	out := dst[len(dst) : len(dst)+size]
	out[0] = '"'
	j := 1
	for i := 0; i < len(s); {
		// Copy eight bytes at a time until one needs attention. The word is
		// stored whole, and the bytes past the flagged one are written
		// again below.
		if i+8 <= len(s) && j+8 <= len(out) {
			word := load64(s, i)
			flagged := escapeMask(word)
			binary.LittleEndian.PutUint64(out[j:], word)
			if flagged == 0 {
				i += 8
				j += 8
				continue
			}
			k := firstFlagged(flagged)
			i += k
			j += k
		}

		b := s[i]
		switch {
		case b < utf8.RuneSelf && asciiEscape[b] != 0:
			j += putASCIIEscape(out[j:], b, asciiEscape[b])
			i++
		// Continuation bytes are never 0xE2, so a byte-wise scan finds
		// every lead byte of U+2028 and U+2029.
		case b == 0xE2 && isLineSeparator(s[i:]):
			j += copy(out[j:], `\u202`)
			out[j] = hexDigits[s[i+2]&0xF]
			j++
			i += 3
		default:
			out[j] = b
			j++
			i++
		}
	}
	out[j] = '"'
	return dst[:len(dst)+size]
}

// putASCIIEscape writes the escape of an ASCII byte to out and returns its
// length.
func putASCIIEscape(out []byte, b, escape byte) int {
	if escape == 'u' {
		copy(out, `\u00`)
		out[4] = hexDigits[b>>4]
		out[5] = hexDigits[b&0xF]
		return 6
	}
	out[0] = '\\'
	out[1] = escape
	return 2
}

func appendASCIIEscape(dst []byte, b, escape byte) []byte {
	if escape == 'u' {
		return append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
	}
	return append(dst, '\\', escape)
}

// jsonStringLenSlow is jsonStringLen for invalid UTF-8, which decodes
// rune by rune to find each invalid byte.
func jsonStringLenSlow(s string) int {
	n := 2
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			n += 1 + int(asciiExtraLen[b])
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

// appendJSONStringSlow is appendJSONString for invalid UTF-8. Each invalid
// byte becomes U+FFFD.
func appendJSONStringSlow(dst []byte, s string) []byte {
	dst = append(dst, '"')

	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			escape := asciiEscape[b]
			if escape != 0 {
				dst = append(dst, s[start:i]...)
				dst = appendASCIIEscape(dst, b, escape)
				start = i + 1
			}
			i++
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
