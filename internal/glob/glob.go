// Package glob matches the patterns users give on the command line
// (--exe, --drop-route). Unlike path.Match, '*' also crosses '/': users
// write '*/python3*' or '/health*' and mean any prefix or suffix.
package glob

import (
	"errors"
	"regexp"
	"strings"
)

// Glob is a compiled pattern. Syntax: '*' any run of characters, '?' one
// character, '[abc]', '[a-z]', '[!x]' or '[^x]' a class, '\' escapes.
type Glob struct{ re *regexp.Regexp }

// ErrBadPattern reports an unterminated class or trailing escape.
var ErrBadPattern = errors.New("bad pattern")

// Compile translates pattern into an anchored regular expression (linear
// time matching, no backtracking blow-up).
func Compile(pattern string) (*Glob, error) {
	if pattern == "" {
		return nil, errors.New("empty pattern")
	}
	var b strings.Builder
	b.WriteString(`^(?s:`)
	for i := 0; i < len(pattern); i++ {
		switch c := pattern[i]; c {
		case '*':
			b.WriteString(`.*`)
		case '?':
			b.WriteString(`.`)
		case '\\':
			if i+1 >= len(pattern) {
				return nil, ErrBadPattern
			}
			i++
			b.WriteString(regexp.QuoteMeta(pattern[i : i+1]))
		case '[':
			end := strings.IndexByte(pattern[i+1:], ']')
			if end < 0 {
				return nil, ErrBadPattern
			}
			class := pattern[i+1 : i+1+end]
			if class == "" {
				return nil, ErrBadPattern
			}
			if class[0] == '!' {
				class = "^" + class[1:]
			}
			class = strings.ReplaceAll(class, `\`, `\\`)
			b.WriteString("[" + class + "]")
			i += end + 1
		default:
			b.WriteString(regexp.QuoteMeta(pattern[i : i+1]))
		}
	}
	b.WriteString(`)$`)
	re, err := regexp.Compile(b.String())
	if err != nil {
		return nil, ErrBadPattern
	}
	return &Glob{re: re}, nil
}

// Match reports whether s matches the whole pattern.
func (g *Glob) Match(s string) bool { return g.re.MatchString(s) }
