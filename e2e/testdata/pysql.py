"""The e2e tests' Python service with databases: /pg/users/<id> runs a
psycopg2 query with the id as a literal, /my/users/<id> a pymysql one.
Connection settings from PG_PORT, MY_PORT. Prints "listening <port>"."""
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg2
import pymysql


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        parts = self.path.strip("/").split("/")
        try:
            if parts[:2] == ["pg", "users"]:
                conn = psycopg2.connect(host="127.0.0.1", port=int(os.environ["PG_PORT"]), user="postgres", dbname="postgres")
                cur = conn.cursor()
                cur.execute("SELECT name FROM users WHERE id = %s" % int(parts[2]))
            elif parts[:2] == ["my", "users"]:
                conn = pymysql.connect(host="127.0.0.1", port=int(os.environ["MY_PORT"]), user="root", database="test")
                cur = conn.cursor()
                cur.execute("SELECT name FROM users WHERE id = %s", (int(parts[2]),))
            else:
                self.send_error(404)
                return
            row = cur.fetchone()
            conn.close()
            body = (row[0] if row else "").encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except Exception as e:  # the error is the test's to see
            body = str(e).encode()
            self.send_response(500)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)


srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print("listening %d" % srv.server_address[1], flush=True)
srv.serve_forever()
