"""Demo frontend: a plain Python service with no tracing code. It calls the
Go backend for each checkout."""
import http.server
import sys
import urllib.request

BACKEND = sys.argv[2] if len(sys.argv) > 2 else "http://127.0.0.1:8081"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        parts = self.path.strip("/").split("/")
        if parts[0] == "health":
            return self.reply(200, b"ok")
        if parts[0] != "checkout" or len(parts) != 2:
            return self.reply(404, b"not found")
        item = parts[1]
        try:
            stock = urllib.request.urlopen(f"{BACKEND}/inventory/{item}").read()
            price = urllib.request.urlopen(f"{BACKEND}/prices/{item}").read()
        except Exception as e:  # the backend's error becomes ours
            return self.reply(502, str(e).encode())
        self.reply(200, b'{"stock":' + stock + b',"price":' + price + b"}")

    def reply(self, code, body):
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
