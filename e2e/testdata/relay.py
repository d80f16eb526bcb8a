"""The traced upstream of the injection tests: an unmodified http.server.
GET /case/<name>?port=P opens a plain socket to 127.0.0.1:P, writes the
crafted request(s) of that case in the way the case names (one send(),
several, sendall), reads the reply until the peer closes, and answers 200
with JSON {"written": base64 of every byte it wrote, "error": ...} so the
test can compare byte for byte with what the peer received."""
import base64
import json
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


def head(path, port, extra=(), version="HTTP/1.1", close=True):
    lines = ["GET %s %s" % (path, version), "Host: 127.0.0.1:%d" % port,
             "User-Agent: e2e-relay", "Accept: */*"]
    lines += list(extra)
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def post(path, port, body, extra=()):
    h = ["POST %s HTTP/1.1" % path, "Host: 127.0.0.1:%d" % port, "User-Agent: e2e-relay",
         "Content-Type: application/octet-stream", "Content-Length: %d" % len(body)]
    h += list(extra) + ["Connection: close"]
    return ("\r\n".join(h) + "\r\n\r\n").encode() + body


# Each case returns the list of send() calls to make; "sendall" cases a
# single bytes object written with sendall().
def pieces(name, port):
    p = "/target/" + name
    if name == "simple":
        return [head(p, port)]
    if name == "split3":
        whole = head(p, port)
        line = whole.index(b"\r\n") + 2
        mid = line + (len(whole) - line) // 2
        return [whole[:line], whole[line:mid], whole[mid:]]
    if name == "post":
        return [post(p, port, b"hello=world&answer=42")]
    if name == "bigheaders":
        extra = ["X-Filler-%02d: %s" % (i, chr(ord("a") + i % 26) * 40) for i in range(30)]
        return [head(p, port, extra)]
    if name == "pipelined":
        return [head(p + "/1", port, close=False) + head(p + "/2", port)]
    if name == "http10":
        return [head(p, port, version="HTTP/1.0", close=False)]
    if name == "hastp":
        return [head(p, port, ["traceparent: 00-11111111111111111111111111111111-2222222222222222-01"])]
    if name == "bigbody":
        return post(p, port, bytes(i % 251 for i in range(65536)))
    raise KeyError(name)


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        u = urlparse(self.path)
        name = u.path[len("/case/"):]
        port = int(parse_qs(u.query)["port"][0])
        written, err = b"", ""
        try:
            todo = pieces(name, port)
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                if isinstance(todo, bytes):
                    s.sendall(todo)
                    written = todo
                else:
                    for piece in todo:
                        s.sendall(piece)  # one send() each for these small pieces
                        written += piece
                while s.recv(65536):
                    pass
        except Exception as e:  # reported to the test, never fatal
            err = repr(e)
        body = json.dumps({"written": base64.b64encode(written).decode(), "error": err}).encode()
        self.send_response(200 if not err else 502)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


srv = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 0), Handler)
print("listening %d" % srv.server_address[1], flush=True)
srv.serve_forever()
