package postgres

import "encoding/binary"

// Message builders for hand-written exchanges.

func msg(typ byte, body ...[]byte) []byte {
	n := 4
	for _, b := range body {
		n += len(b)
	}
	out := []byte{typ}
	out = binary.BigEndian.AppendUint32(out, uint32(n))
	for _, b := range body {
		out = append(out, b...)
	}
	return out
}

func cstr(s string) []byte { return append([]byte(s), 0) }

func u16(v int) []byte { return binary.BigEndian.AppendUint16(nil, uint16(v)) }
func u32(v int) []byte { return binary.BigEndian.AppendUint32(nil, uint32(v)) }

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func startupMsg(params ...string) []byte {
	body := u32(codeProtocol3)
	for _, p := range params {
		body = append(body, cstr(p)...)
	}
	body = append(body, 0)
	return cat(u32(4+len(body)), body)
}

func sslRequest() []byte    { return cat(u32(8), u32(codeSSL)) }
func gssencRequest() []byte { return cat(u32(8), u32(codeGSSENC)) }

// frontend
func query(text string) []byte { return msg('Q', cstr(text)) }
func parse(name, text string) []byte {
	return msg('P', cstr(name), cstr(text), u16(0))
}
func bind(portal, stmt string) []byte {
	return msg('B', cstr(portal), cstr(stmt), u16(0), u16(0), u16(0))
}
func describe(kind byte, name string) []byte { return msg('D', []byte{kind}, cstr(name)) }
func execute(portal string, maxRows int) []byte {
	return msg('E', cstr(portal), u32(maxRows))
}
func closeMsg(kind byte, name string) []byte { return msg('C', []byte{kind}, cstr(name)) }
func syncMsg() []byte                        { return msg('S') }

// backend
func authOK() []byte          { return msg('R', u32(0)) }
func ready() []byte           { return msg('Z', []byte{'I'}) }
func parseComplete() []byte   { return msg('1') }
func bindComplete() []byte    { return msg('2') }
func closeComplete() []byte   { return msg('3') }
func noData() []byte          { return msg('n') }
func emptyQuery() []byte      { return msg('I') }
func suspended() []byte       { return msg('s') }
func cmd(tag string) []byte   { return msg('C', cstr(tag)) }
func paramDesc() []byte       { return msg('t', u16(1), u32(23)) }
func dataRow(v string) []byte { return msg('D', u16(1), u32(len(v)), []byte(v)) }
func rowDesc() []byte {
	return msg('T', u16(1), cstr("c"), u32(0), u16(0), u32(25), u16(0xffff), u32(0xffffffff), u16(0))
}
func errResp(code, text string) []byte {
	return msg('E', []byte{'S'}, cstr("ERROR"), []byte{'C'}, cstr(code), []byte{'M'}, cstr(text), []byte{0})
}
