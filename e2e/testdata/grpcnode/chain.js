// HTTP/1 <-> gRPC hops of the e2e HTTP/2 propagation chain: unmodified,
// uninstrumented @grpc/grpc-js (npm install in this directory).
//
//   node chain.js front GRPC_PORT   HTTP/1 server: GET /users/<id> calls
//                                   chain.Hop/Get on GRPC_PORT, answers 200
//   node chain.js grpc HTTP_PORT    gRPC server: chain.Hop/Get fetches
//                                   http://127.0.0.1:HTTP_PORT/users/<id>
// Both print "listening <port>". Messages are raw bytes (no protobuf).
const http = require('http');
const grpc = require('@grpc/grpc-js');

const raw = { serialize: (b) => b, deserialize: (b) => b };
const service = {
  get: { path: '/chain.Hop/Get', requestStream: false, responseStream: false,
    requestSerialize: raw.serialize, requestDeserialize: raw.deserialize,
    responseSerialize: raw.serialize, responseDeserialize: raw.deserialize },
};
const [mode, port] = [process.argv[2], Number(process.argv[3])];

if (mode === 'grpc') {
  const server = new grpc.Server();
  server.addService(service, {
    get: (call, cb) => {
      const id = call.request.toString();
      http.get(`http://127.0.0.1:${port}/users/${id}`, (r) => {
        const parts = [];
        r.on('data', (d) => parts.push(d));
        r.on('end', () => cb(null, Buffer.concat(parts)));
      }).on('error', (e) => cb({ code: grpc.status.UNAVAILABLE, details: String(e) }));
    },
  });
  server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => {
    if (err) throw err;
    console.log(`listening ${p}`);
  });
} else {
  const Client = grpc.makeGenericClientConstructor(service, 'Hop');
  const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const srv = http.createServer((req, res) => {
    const m = /^\/users\/(\w+)/.exec(req.url);
    if (!m) { res.statusCode = 404; res.end('not found\n'); return; }
    client.get(Buffer.from(m[1]), (err, reply) => {
      res.statusCode = err ? 502 : 200;
      res.end(err ? String(err) : reply);
    });
  });
  srv.listen(0, '127.0.0.1', () => console.log(`listening ${srv.address().port}`));
}
