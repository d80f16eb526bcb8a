package nodejs

import (
	"bufio"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
)

// wsConn is the client side of one RFC 6455 WebSocket, just what the
// inspector protocol needs: text messages, pings, close.
type wsConn struct {
	c net.Conn
	r *bufio.Reader
}

// wsHandshake upgrades c, connected to host, to a WebSocket on path.
func wsHandshake(c net.Conn, host, path string) (*wsConn, error) {
	var nonce [16]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, err
	}
	key := base64.StdEncoding.EncodeToString(nonce[:])
	req := "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		return nil, err
	}
	r := bufio.NewReader(c)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		return nil, fmt.Errorf("websocket handshake: %w", err)
	}
	resp.Body.Close()
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if resp.StatusCode != http.StatusSwitchingProtocols ||
		resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
		return nil, fmt.Errorf("websocket handshake: %s", resp.Status)
	}
	return &wsConn{c: c, r: r}, nil
}

const (
	opCont  = 0x0
	opText  = 0x1
	opClose = 0x8
	opPing  = 0x9
	opPong  = 0xA
)

// errClosed: the peer closed the WebSocket.
var errClosed = errors.New("websocket closed by the peer")

func (w *wsConn) writeFrame(op byte, payload []byte) error {
	hdr := make([]byte, 0, 14)
	hdr = append(hdr, 0x80|op)
	switch n := len(payload); {
	case n < 126:
		hdr = append(hdr, 0x80|byte(n))
	case n <= 0xffff:
		hdr = append(hdr, 0x80|126, byte(n>>8), byte(n))
	default:
		hdr = append(hdr, 0x80|127)
		hdr = binary.BigEndian.AppendUint64(hdr, uint64(n))
	}
	var mask [4]byte
	if _, err := rand.Read(mask[:]); err != nil {
		return err
	}
	hdr = append(hdr, mask[:]...)
	masked := make([]byte, len(payload))
	for i, b := range payload {
		masked[i] = b ^ mask[i&3]
	}
	_, err := w.c.Write(append(hdr, masked...))
	return err
}

// WriteText sends one text message.
func (w *wsConn) WriteText(msg []byte) error { return w.writeFrame(opText, msg) }

// maxMessage bounds what the inspector may send us (its replies are small).
const maxMessage = 8 << 20

// ReadText returns the next text message, answering pings on the way.
func (w *wsConn) ReadText() ([]byte, error) {
	var msg []byte
	for {
		var h [2]byte
		if _, err := io.ReadFull(w.r, h[:]); err != nil {
			return nil, err
		}
		fin, op, n := h[0]&0x80 != 0, h[0]&0x0f, uint64(h[1]&0x7f)
		switch n {
		case 126:
			var b [2]byte
			if _, err := io.ReadFull(w.r, b[:]); err != nil {
				return nil, err
			}
			n = uint64(binary.BigEndian.Uint16(b[:]))
		case 127:
			var b [8]byte
			if _, err := io.ReadFull(w.r, b[:]); err != nil {
				return nil, err
			}
			n = binary.BigEndian.Uint64(b[:])
		}
		if h[1]&0x80 != 0 || n > maxMessage || uint64(len(msg))+n > maxMessage {
			return nil, errors.New("websocket: masked or oversized frame from the server")
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(w.r, payload); err != nil {
			return nil, err
		}
		switch op {
		case opPing:
			if err := w.writeFrame(opPong, payload); err != nil {
				return nil, err
			}
			continue
		case opPong:
			continue
		case opClose:
			return nil, errClosed
		case opText, opCont:
			msg = append(msg, payload...)
		default:
			return nil, fmt.Errorf("websocket: unexpected opcode %d", op)
		}
		if fin {
			return msg, nil
		}
	}
}

// Close sends a close frame and closes the connection.
func (w *wsConn) Close() error {
	w.writeFrame(opClose, []byte{0x03, 0xe8}) // 1000: normal closure
	return w.c.Close()
}

// wsPath returns the path of a ws://host:port/path URL.
func wsPath(url string) (string, error) {
	rest, ok := strings.CutPrefix(url, "ws://")
	if !ok {
		return "", fmt.Errorf("not a ws:// URL: %q", url)
	}
	i := strings.IndexByte(rest, '/')
	if i < 0 {
		return "", fmt.Errorf("no path in %q", url)
	}
	return rest[i:], nil
}
