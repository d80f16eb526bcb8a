// Package sql holds what the SQL wire probes (probes/sql/postgres,
// probes/sql/mysql) share: query text sanitizing and summarizing, and the
// span built for one database call.
package sql

import (
	"strings"
	"unicode"
)

// Query is one statement's text as it goes on a span.
type Query struct {
	Text       string // sanitized (literals → ?) unless raw text was asked for
	Operation  string // db.operation.name: SELECT, INSERT, ...
	Collection string // db.collection.name: the main table, when there is one
	Summary    string // db.query.summary: "SELECT users orders"
}

// maxQueryText bounds db.query.text (large INSERT batches).
const maxQueryText = 2048

// ParseQuery sanitizes and summarizes text. raw keeps the literals.
func ParseQuery(text string, raw bool) Query {
	text = strings.TrimSpace(strings.TrimRight(text, "\x00"))
	toks := tokenize(text)
	q := Query{}
	if raw {
		q.Text = text
	} else {
		q.Text = render(toks)
	}
	if len(q.Text) > maxQueryText {
		q.Text = q.Text[:maxQueryText] + "…"
	}
	q.Operation, q.Collection, q.Summary = summarize(toks)
	return q
}

type tokKind uint8

const (
	tWord    tokKind = iota // keyword or identifier
	tQuoted                 // "identifier" or `identifier`
	tLiteral                // string or number literal
	tPunct
	tParam // $1, ?, :name
)

type token struct {
	kind  tokKind
	text  string
	space bool // whitespace (or a comment) came before it
}

// tokenize splits SQL into tokens, dropping comments and whitespace. It is
// forgiving: anything it does not understand becomes punctuation.
func tokenize(s string) []token {
	var out []token
	gap := false
	emit := func(k tokKind, text string) {
		out = append(out, token{kind: k, text: text, space: gap})
		gap = false
	}
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f':
			gap = true
			i++
		case c == '-' && i+1 < len(s) && s[i+1] == '-', c == '#':
			gap = true
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(s) && s[i+1] == '*':
			gap = true
			end := strings.Index(s[i+2:], "*/")
			if end < 0 {
				i = len(s)
			} else {
				i += end + 4
			}
		case c == '\'' || (c == 'E' || c == 'e' || c == 'N' || c == 'n' || c == 'X' || c == 'x' || c == 'B' || c == 'b') && i+1 < len(s) && s[i+1] == '\'':
			if c != '\'' {
				i++
			}
			i = skipQuoted(s, i, '\'')
			emit(tLiteral, "?")
		case c == '"' || c == '`':
			j := skipQuoted(s, i, c)
			emit(tQuoted, s[i:j])
			i = j
		case c == '$' && i+1 < len(s) && (s[i+1] == '$' || isIdentStart(s[i+1])):
			// $tag$ ... $tag$ (PostgreSQL dollar quoting) or $1 parameter
			j := i + 1
			for j < len(s) && isIdentChar(s[j]) {
				j++
			}
			if j < len(s) && s[j] == '$' {
				tag := s[i : j+1]
				end := strings.Index(s[j+1:], tag)
				if end < 0 {
					i = len(s)
				} else {
					i = j + 1 + end + len(tag)
				}
				emit(tLiteral, "?")
			} else {
				emit(tParam, s[i:j])
				i = j
			}
		case c == '$' && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9':
			j := i + 1
			for j < len(s) && s[j] >= '0' && s[j] <= '9' {
				j++
			}
			emit(tParam, s[i:j])
			i = j
		case c == '?':
			emit(tParam, "?")
			i++
		case c >= '0' && c <= '9' || c == '.' && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9':
			j := i + 1
			for j < len(s) && (isIdentChar(s[j]) || s[j] == '.' || (s[j] == '+' || s[j] == '-') && (s[j-1] == 'e' || s[j-1] == 'E')) {
				j++
			}
			emit(tLiteral, "?")
			i = j
		case isIdentStart(c):
			j := i + 1
			for j < len(s) && (isIdentChar(s[j]) || s[j] == '.' || s[j] == '$') {
				j++
			}
			emit(tWord, s[i:j])
			i = j
		default:
			emit(tPunct, s[i:i+1])
			i++
		}
	}
	return out
}

// skipQuoted returns the index after the quoted run starting at s[i]==q
// (a doubled quote or a backslash escapes).
func skipQuoted(s string, i int, q byte) int {
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			j++
		case q:
			if j+1 < len(s) && s[j+1] == q {
				j++
				continue
			}
			return j + 1
		}
	}
	return len(s)
}

func isIdentStart(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

func isIdentChar(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }

// render prints tokens back with literals as ?, and IN (?, ?, ...) and
// VALUES (...), (...) lists collapsed to one element.
func render(toks []token) string {
	var b strings.Builder
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		if t.kind == tPunct && t.text == "(" && i > 0 && toks[i-1].kind == tWord && strings.EqualFold(toks[i-1].text, "IN") {
			if j, ok := literalList(toks, i); ok {
				space(&b, t)
				b.WriteString("(?)")
				i = j
				continue
			}
		}
		space(&b, t)
		b.WriteString(t.text)
	}
	return b.String()
}

// literalList reports whether toks[i] opens "(lit, lit, ...)" and where it closes.
func literalList(toks []token, i int) (int, bool) {
	for j := i + 1; j < len(toks); j++ {
		switch {
		case toks[j].kind == tLiteral || toks[j].kind == tParam:
		case toks[j].kind == tPunct && toks[j].text == ",":
		case toks[j].kind == tPunct && toks[j].text == ")":
			return j, j > i+1
		default:
			return 0, false
		}
	}
	return 0, false
}

// space keeps the statement's own spacing (one blank for any run).
func space(b *strings.Builder, t token) {
	if b.Len() > 0 && t.space {
		b.WriteByte(' ')
	}
}

var keywords = map[string]bool{
	"SELECT": true, "FROM": true, "WHERE": true, "INSERT": true, "INTO": true, "VALUES": true,
	"UPDATE": true, "SET": true, "DELETE": true, "IN": true, "AND": true, "OR": true, "NOT": true,
	"JOIN": true, "ON": true, "AS": true, "CREATE": true, "TABLE": true, "DROP": true, "ALTER": true,
	"WITH": true, "USING": true, "EXISTS": true, "IF": true, "RETURNING": true, "LIMIT": true,
}

func isKeyword(w string) bool { return keywords[strings.ToUpper(w)] }

// summarize finds the operation, the main table and the summary.
func summarize(toks []token) (op, coll, summary string) {
	words := func(i int) string {
		if i < len(toks) && (toks[i].kind == tWord || toks[i].kind == tQuoted) {
			return toks[i].text
		}
		return ""
	}
	// Skip a leading WITH ... AS (...) block: the operation is what follows.
	start := 0
	if strings.EqualFold(words(0), "WITH") {
		depth := 0
		for i := 1; i < len(toks); i++ {
			if toks[i].kind == tPunct && toks[i].text == "(" {
				depth++
			} else if toks[i].kind == tPunct && toks[i].text == ")" {
				depth--
			} else if depth == 0 && toks[i].kind == tWord && isStatement(toks[i].text) {
				start = i
				break
			}
		}
	}
	op = strings.ToUpper(words(start))
	if op == "" || !isStatement(op) && op != "BEGIN" && op != "COMMIT" && op != "ROLLBACK" && op != "SHOW" && op != "SET" && op != "CALL" && op != "EXPLAIN" && op != "PREPARE" && op != "EXECUTE" && op != "DEALLOCATE" && op != "LOCK" && op != "VACUUM" && op != "ANALYZE" && op != "GRANT" && op != "REVOKE" && op != "START" && op != "USE" && op != "COPY" && op != "TRUNCATE" && op != "MERGE" && op != "REPLACE" {
		if op == "" {
			return "", "", ""
		}
		return op, "", op
	}
	var tables []string
	add := func(t string) {
		t = unquote(t)
		if t == "" || isKeyword(t) {
			return
		}
		for _, x := range tables {
			if x == t {
				return
			}
		}
		tables = append(tables, t)
	}
	for i := start + 1; i < len(toks) && op != "COPY"; i++ {
		w := strings.ToUpper(words(i))
		switch w {
		case "FROM", "JOIN", "INTO", "UPDATE", "TABLE", "TRUNCATE", "COPY":
			j := i + 1
			for strings.EqualFold(words(j), "IF") || strings.EqualFold(words(j), "NOT") || strings.EqualFold(words(j), "EXISTS") || strings.EqualFold(words(j), "ONLY") || strings.EqualFold(words(j), "TABLE") {
				j++
			}
			if n := words(j); n != "" && !(toks[j].kind == tWord && isKeyword(n) && !strings.EqualFold(n, "SET")) {
				add(n)
			}
		}
	}
	if op == "UPDATE" || op == "TRUNCATE" || op == "COPY" {
		j := start + 1
		if strings.EqualFold(words(j), "TABLE") || strings.EqualFold(words(j), "ONLY") {
			j++
		}
		if n := words(j); n != "" && len(tables) == 0 {
			add(n)
		}
	}
	if len(tables) > 0 {
		coll = tables[0]
	}
	summary = strings.TrimSpace(op + " " + strings.Join(tables, " "))
	return op, coll, summary
}

func isStatement(w string) bool {
	switch strings.ToUpper(w) {
	case "SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "ALTER", "MERGE", "REPLACE", "UPSERT":
		return true
	}
	return false
}

// unquote strips identifier quotes: "Users" → Users, `t` → t.
func unquote(s string) string {
	if len(s) >= 2 && (s[0] == '"' && s[len(s)-1] == '"' || s[0] == '`' && s[len(s)-1] == '`') {
		return s[1 : len(s)-1]
	}
	return strings.TrimFunc(s, func(r rune) bool { return r == ';' || unicode.IsSpace(r) })
}
