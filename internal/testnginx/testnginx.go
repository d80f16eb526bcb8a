// Package testnginx writes the nginx configuration the e2e tests and the
// benchmark run nginx with: a master and two workers proxying every path
// to one upstream, with upstream keep-alive or a connection per request.
package testnginx

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

const conf = `daemon off;
master_process on;
worker_processes 2;
pid %[1]s/nginx.pid;
error_log stderr warn;
events { worker_connections 1024; }
http {
	access_log off;
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	upstream backend { server 127.0.0.1:%[3]d; %[4]s }
	server {
		listen 127.0.0.1:%[2]d;
		location / { proxy_pass http://backend; %[5]s }
	}
}
`

// Workers is how many worker processes the configuration starts.
const Workers = 2

// WriteConfig writes dir/nginx.conf for nginx listening on port and
// proxying to 127.0.0.1:upstream, and returns its path.
func WriteConfig(dir string, port, upstream int, keepalive bool) (string, error) {
	ka, loc := "", ""
	if keepalive {
		ka, loc = "keepalive 16;", `proxy_http_version 1.1; proxy_set_header Connection "";`
	}
	path := filepath.Join(dir, "nginx.conf")
	return path, os.WriteFile(path, fmt.Appendf(nil, conf, dir, port, upstream, ka, loc), 0o644)
}

// Children lists pid's child processes (nginx's workers).
func Children(pid int) []int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			out = append(out, n)
		}
	}
	return out
}
