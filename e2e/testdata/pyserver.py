"""The Python http.server of the e2e tests: unmodified, HTTP/1.0 (the
default: one request per connection, some bodies delimited by close)."""
import sys
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, code, body, length=True):
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path.startswith("/users/"):
            self.reply(200, b"user %s\n" % path[7:].encode())
        elif path == "/health":
            self.reply(200, b"ok\n")
        elif path == "/fail":
            self.reply(500, b"boom\n")
        elif path == "/big":
            self.reply(200, b"x" * 32000, length=False)  # ends at close
        elif path == "/call":
            from urllib.parse import parse_qs, urlparse
            url = parse_qs(urlparse(self.path).query)["url"][0]
            try:
                with urllib.request.urlopen(url) as r:
                    r.read()
                    code = r.status
            except urllib.error.HTTPError as e:
                code = e.code
            self.reply(code, b"downstream said %d\n" % code)
        else:
            self.reply(404, b"not found\n")

    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0))
        self.reply(200, self.rfile.read(n))


# A listen backlog for the parallel propagation tests (the default is 5).
ThreadingHTTPServer.request_queue_size = 128
srv = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 0), Handler)
print("listening %d" % srv.server_address[1], flush=True)
srv.serve_forever()
