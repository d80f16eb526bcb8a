// A Node.js client for the e2e tests: GETs each URL in turn on a keep-alive agent.
const http = require('http');
const agent = new http.Agent({ keepAlive: true });
(async () => {
  for (const u of process.argv.slice(2)) {
    await new Promise((resolve, reject) => {
      http.get(u, { agent, headers: { 'User-Agent': 'e2e-nodeclient' } }, (r) => {
        r.resume();
        r.on('end', () => { console.log(r.statusCode); resolve(); });
      }).on('error', reject);
    });
  }
  agent.destroy();
})();
