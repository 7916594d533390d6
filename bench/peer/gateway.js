// Benchmark peer: the smallest useful wake gateway in Node.js, on
// @parse/node-apn (HTTP/2, token auth). It takes the same POST /v1/wake body
// and bearer key as pushgw, sends one VoIP push per device with the same
// headers and payload, and answers with per-device results in pushgw's shape.
// One process, one event loop; MultiProvider keeps PEER_CONNECTIONS HTTP/2
// sessions like pushgw's upstream.connections.
//
// Environment: PEER_LISTEN (host:port), PEER_KEY (bearer key), APNS_URL
// (https://host:port), APNS_KEY_FILE, APNS_KEY_ID, APNS_TEAM_ID, APNS_TOPIC
// (bundle id), PEER_CONNECTIONS (default 2); NODE_EXTRA_CA_CERTS for the sink.
'use strict';

const http = require('node:http');
const crypto = require('node:crypto');
const apn = require('@parse/node-apn');

const env = (name, dflt) => {
  const v = process.env[name] ?? dflt;
  if (v === undefined) throw new Error(`${name} is required`);
  return v;
};

const [host, port] = env('PEER_LISTEN').split(':');
const bearer = `Bearer ${env('PEER_KEY')}`;
const upstream = new URL(env('APNS_URL'));
const topic = env('APNS_TOPIC');

const provider = new apn.MultiProvider({
  token: { key: env('APNS_KEY_FILE'), keyId: env('APNS_KEY_ID'), teamId: env('APNS_TEAM_ID') },
  address: upstream.hostname,
  port: Number(upstream.port || 443),
  production: true,
  clientCount: Number(env('PEER_CONNECTIONS', '2')),
});

function reply(res, status, doc) {
  const body = JSON.stringify(doc);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

function redact(token) {
  return `apns:${token.slice(0, 4)}…${token.slice(-4)}`;
}

async function wake(req) {
  const id = `w_${crypto.randomUUID()}`;
  const call = req.call;
  const ttl = Number.isInteger(req.ttl) ? req.ttl : 30;
  const tokens = req.devices.map(d => d.token);
  const note = new apn.Notification();
  note.pushType = 'voip';
  note.topic = `${topic}.voip`;
  note.priority = 10;
  note.expiry = Math.floor(Date.now() / 1000) + ttl;
  note.id = crypto.randomUUID();
  note.rawPayload = {
    aps: {}, type: 'call', call_id: call.id, from: call.from, from_name: call.from_name,
    to: call.to, video: Boolean(call.video), wake_id: id, sent_at: Math.floor(Date.now() / 1000),
    data: call.data || {},
  };
  const started = process.hrtime.bigint();
  const out = await provider.send(note, tokens);
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  const results = [];
  for (const s of out.sent) results.push({ target: redact(s.device), provider: 'apns', status: 'sent', latency_ms: ms });
  for (const f of out.failed)
    results.push({ target: redact(f.device || ''), provider: 'apns', status: 'failed',
                   reason: (f.response && f.response.reason) || String(f.error || f.status) });
  return { id, results };
}

const server = http.createServer((req, res) => {
  if (req.method !== 'POST' || req.url !== '/v1/wake') return reply(res, 404, { error: { code: 'not_found' } });
  if (req.headers.authorization !== bearer) return reply(res, 401, { error: { code: 'unauthorized' } });
  const chunks = [];
  req.on('data', c => chunks.push(c));
  req.on('end', () => {
    let doc;
    try {
      doc = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch (e) {
      return reply(res, 400, { error: { code: 'invalid_request', message: 'body: not valid JSON' } });
    }
    if (!doc || !doc.call || !doc.call.id || !Array.isArray(doc.devices) || doc.devices.length === 0)
      return reply(res, 400, { error: { code: 'invalid_request', message: 'call.id and devices are required' } });
    wake(doc).then(r => reply(res, 200, r), e => reply(res, 500, { error: { code: 'internal_error', message: String(e) } }));
  });
});
server.keepAliveTimeout = 30000;
server.listen(Number(port), host, () => process.stdout.write(`{"listen":${server.address().port}}\n`));
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
