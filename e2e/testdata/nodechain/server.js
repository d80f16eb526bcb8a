// The Node.js middle hop of the e2e chains: unmodified, one of
//   http     http server, http.get on a keep-alive agent of 4 sockets
//            (requests queue for a socket another request frees)
//   http-new http server, a new connection per call
//   express  express, axios on a keep-alive agent of 4 sockets
//   fetch    http server, global fetch (Node's bundled undici)
//   undici   http server, undici.request on a pool of 4 connections
//   fetch-pool http server, fetch through an undici Agent of 4 connections
//            per origin (requests wait for a connection)
//   mixed    http server: awaits a PostgreSQL query (pg, a pool of 4),
//            then calls the next service with fetch
// /users/<id> answers; /call?url=<next> calls the next hop.
// Usage: node server.js <port> <mode> [postgres-url]
const http = require('http');
const port = Number(process.argv[2] || 0);
const mode = process.argv[3] || 'http';

const agent = new http.Agent({ keepAlive: mode !== 'http-new', maxSockets: 4 });

async function call(url) {
  switch (mode) {
    case 'http':
    case 'http-new':
      return new Promise((resolve, reject) => {
        http.get(url, { agent }, (r) => {
          r.resume();
          r.on('end', () => resolve(r.statusCode));
        }).on('error', reject);
      });
    case 'express':
      return (await require('axios').get(url, { httpAgent: agent, validateStatus: () => true })).status;
    case 'fetch': {
      const r = await fetch(url);
      await r.arrayBuffer();
      return r.status;
    }
    case 'fetch-pool': {
      const r = await fetch(url, { dispatcher: limitedAgent() });
      await r.arrayBuffer();
      return r.status;
    }
    case 'undici': {
      const r = await undiciPool(url).request({ path: new URL(url).pathname + new URL(url).search, method: 'GET' });
      await r.body.dump();
      return r.statusCode;
    }
    case 'mixed': {
      await pgPool().query('SELECT $1::int AS id', [1]);
      const r = await fetch(url);
      await r.arrayBuffer();
      return r.status;
    }
  }
  throw new Error('unknown mode ' + mode);
}

let pools = {};
function undiciPool(url) {
  const origin = new URL(url).origin;
  return pools[origin] || (pools[origin] = new (require('undici').Pool)(origin, { connections: 4 }));
}
let limited;
function limitedAgent() {
  return limited || (limited = new (require('undici').Agent)({ connections: 4 }));
}
let pg;
function pgPool() {
  return pg || (pg = new (require('pg').Pool)({ connectionString: process.argv[4], max: 4 }));
}

// Malformed and forged tracker statements (the e2e test sends them while
// the chain runs): the kernel must ignore them or bind nothing wrong.
const junk = ['s', 's/', 's//', 's/x/1', 's/1/', 'c/1/2', 'c/1/2/3/4', 'c/99999999999/1/1',
  'c/1/2/99999999999', 'c/-1/2/3', 'c/3/4/5' + '0'.repeat(60), 'q/1/2/3', 'c/1/2/3x', 'c/\u00ff/1/1'];
async function handle(path, search) {
  if (path === '/junk') {
    for (let i = 0; i < 50; i++) for (const j of junk) require('fs').existsSync('/dev/null/.tracer-agent/' + j);
    for (let fd = 0; fd < 64; fd++) require('fs').existsSync(`/dev/null/.tracer-agent/c/${fd}/${fd}/${fd + 1}`);
    return [200, 'junk sent\n'];
  }
  if (path.startsWith('/users/')) return [200, `user ${path.slice(7)}\n`];
  if (path === '/call') {
    const code = await call(search.get('url'));
    return [code, `downstream said ${code}\n`];
  }
  return [404, 'not found\n'];
}

function reply(res, p) {
  p.then(([code, body]) => { res.statusCode = code; res.end(body); },
    (e) => { res.statusCode = 502; res.end(String(e)); });
}

let srv;
if (mode === 'express') {
  const app = require('express')();
  app.get('/users/:id', (req, res) => res.send(`user ${req.params.id}\n`));
  app.get('/call', (req, res) => reply(res, handle('/call', new URLSearchParams(req.query))));
  srv = http.createServer(app);
} else {
  srv = http.createServer((req, res) => {
    const u = new URL(req.url, 'http://x');
    reply(res, handle(u.pathname, u.searchParams));
  });
}
srv.listen(port, '127.0.0.1', () => console.log(`listening ${srv.address().port}`));
