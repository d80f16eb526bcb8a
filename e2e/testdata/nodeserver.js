// The Node.js server of the e2e tests: unmodified, keep-alive, chunked
// responses by default.
const http = require('http');
const port = Number(process.argv[2] || 0);
const srv = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  const p = url.pathname;
  if (req.method === 'GET' && p.startsWith('/users/')) {
    res.end(`user ${p.slice(7)}\n`);
  } else if (p === '/health') {
    res.end('ok\n');
  } else if (p === '/fail') {
    res.statusCode = 500;
    res.end('boom\n');
  } else if (p === '/big') {
    for (let i = 0; i < 4; i++) res.write('x'.repeat(8000));
    res.end();
  } else if (req.method === 'POST' && p === '/echo') {
    req.pipe(res);
  } else if (p === '/call') {
    http.get(url.searchParams.get('url'), (r) => {
      r.resume();
      r.on('end', () => { res.statusCode = r.statusCode; res.end(`downstream said ${r.statusCode}\n`); });
    }).on('error', (e) => { res.statusCode = 502; res.end(String(e)); });
  } else {
    res.statusCode = 404;
    res.end('not found\n');
  }
});
srv.listen(port, '127.0.0.1', () => console.log(`listening ${srv.address().port}`));
