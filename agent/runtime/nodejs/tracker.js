// tracer-agent's Node.js tracker, evaluated once in the application's main
// context through its inspector (see README, "Runtime helpers"). It tells
// the kernel, by sentinel access() calls on paths under /dev/null (they
// fail with ENOTDIR, touch no file and are read by the agent's syscall
// tracepoint), which incoming request each outgoing write serves:
//   s/<server fd>/<token>              request <token> is dispatched
//   c/<client fd>/<server fd>/<token>  writes on the client socket serve it
//   c/<client fd>/0/0                  writes there serve no known request
// It changes no data, opens nothing, and costs one such call per incoming
// request and one per outgoing request (or binding change of a socket).
(function () {
  const key = Symbol.for('tracer-agent.node-tracker');
  if (globalThis[key]) return 'already loaded';
  const { AsyncLocalStorage, AsyncResource, executionAsyncId, triggerAsyncId } = require('async_hooks');
  const dc = require('diagnostics_channel');
  const fs = require('fs');
  const http = require('http');
  const net = require('net');

  const als = new AsyncLocalStorage();
  const kStore = Symbol('tracer-agent.store'); // the request a client request was made for (null: none)
  const kNext = Symbol('tracer-agent.next');   // the store the socket's next write serves
  const kBound = Symbol('tracer-agent.bound'); // what the kernel was last told for this socket
  const prefix = '/dev/null/.tracer-agent/';
  let token = 0;

  const fdOf = (s) => (s && s._handle && typeof s._handle.fd === 'number' ? s._handle.fd : -1);
  const signal = (p) => { fs.existsSync(prefix + p); };

  // Incoming requests: each runs, with its request and response events, in
  // a store of its own naming the connection and the request's token.
  const emit = http.Server.prototype.emit;
  http.Server.prototype.emit = function (ev, req, res) {
    const fd = ev === 'request' && req ? fdOf(req.socket) : -1;
    if (fd < 0) return emit.apply(this, arguments);
    token = token >= 0xffffffff ? 1 : token + 1;
    const store = { fd, token };
    signal(`s/${fd}/${token}`);
    return als.run(store, () => {
      // Body and finish events come from the socket's callbacks, which
      // carry the connection's context, not the request's.
      for (const m of [req, res]) {
        const ar = new AsyncResource('tracer-agent.request');
        const own = m.emit;
        m.emit = function () { return ar.runInAsyncScope(own, this, ...arguments); };
      }
      return emit.apply(this, arguments);
    });
  };

  // http/https clients: the store of the code that made the request, even
  // when a pooled socket writes it later from another request's callback.
  const made = (req) => { if (req[kStore] === undefined) req[kStore] = als.getStore() || null; };
  const addRequest = http.Agent.prototype.addRequest;
  http.Agent.prototype.addRequest = function (req) { made(req); return addRequest.apply(this, arguments); };
  const onSocket = http.ClientRequest.prototype.onSocket;
  http.ClientRequest.prototype.onSocket = function () { made(this); return onSocket.apply(this, arguments); };

  // undici (fetch, and undici from npm): the store of the code that
  // dispatched the request, handed to the socket just before its headers
  // are written. A pool that waited for a connection creates the request
  // later, in another request's completion: then only a handler that is an
  // AsyncResource (undici's request/stream APIs) still knows its caller. A
  // plain handler (fetch's) counts only when the request is created right
  // inside fetch's own network step, not in a pool's drain.
  let kHandler;
  const inFetch = () => {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 40;
    const st = new Error().stack;
    Error.stackTraceLimit = limit;
    return st.includes('httpNetworkFetch') && !st.includes('onDrain');
  };
  const callerStore = (request) => {
    if (kHandler === undefined) kHandler = Object.getOwnPropertySymbols(request).find((s) => s.description === 'handler') || null;
    let h = kHandler ? request[kHandler] : undefined;
    for (let i = 0; h && i < 4; i++, h = h.handler) { // decorators keep the handler they wrap in .handler
      if (typeof h.runInAsyncScope === 'function') return h.runInAsyncScope(() => als.getStore()) || null;
    }
    const st = als.getStore();
    return st && inFetch() ? st : null;
  };
  dc.subscribe('undici:request:create', ({ request }) => { request[kStore] = callerStore(request); });
  dc.subscribe('undici:client:sendHeaders', ({ request, socket }) => {
    if (socket && request && request[kStore] !== undefined) socket[kNext] = request[kStore];
  });

  function storeFor(s) {
    const m = s._httpMessage;
    if (m && m[kStore] !== undefined) return m[kStore];
    const next = s[kNext];
    if (next !== undefined) { s[kNext] = undefined; return next; }
    const st = als.getStore();
    if (!st) return null;
    // Inside the socket's own callbacks the context is whoever opened it:
    // a queued write made there proves nothing.
    const id = s._handle && s._handle.getAsyncId ? s._handle.getAsyncId() : -1;
    if (id === executionAsyncId() || id === triggerAsyncId()) return null;
    return st;
  }

  const writeGeneric = net.Socket.prototype._writeGeneric;
  net.Socket.prototype._writeGeneric = function (writev, data, encoding, cb) {
    if (!this.server && !this._server) {
      if (this.connecting) {
        if (this[kNext] === undefined) this[kNext] = storeFor(this); // written again at connect
      } else {
        const fd = fdOf(this);
        const st = fd >= 0 ? storeFor(this) : null;
        const want = st ? `${st.fd}/${st.token}` : '0/0';
        if (fd >= 0 && this[kBound] !== want) {
          this[kBound] = want;
          signal(`c/${fd}/${want}`);
        }
      }
    }
    return writeGeneric.call(this, writev, data, encoding, cb);
  };

  Object.defineProperty(globalThis, key, { value: true });
  return 'loaded';
})()
