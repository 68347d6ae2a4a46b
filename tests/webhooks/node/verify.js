// Receiver-side checks as a Node integrator would write them, one request per stdin line.
// Input line:  {"secret", "body_b64", "bithuman", "id", "timestamp", "standard"}
// Output line: {"roundtrip", "bithuman", "standard"}
//
// "bithuman" is bitHuman's documented Express check: express.json() parses the body and the
// HMAC is computed over JSON.stringify(req.body), compared with crypto.timingSafeEqual.
// "roundtrip" says whether JSON.stringify(JSON.parse(body)) reproduces the exact bytes.
// "standard" is the Standard Webhooks check over the raw body.
'use strict';
const crypto = require('crypto');
const readline = require('readline');

function documentedCheck(secret, payload, signature) {
  const expected = crypto
    .createHmac('sha256', secret)
    .update(JSON.stringify(payload))
    .digest('hex');
  const a = Buffer.from(`sha256=${expected}`);
  const b = Buffer.from(signature);
  return a.length === b.length && crypto.timingSafeEqual(a, b);
}

function standardCheck(secret, id, timestamp, raw, header) {
  const key = secret.startsWith('whsec_')
    ? Buffer.from(secret.slice('whsec_'.length), 'base64')
    : Buffer.from(secret, 'utf8');
  const expected = crypto
    .createHmac('sha256', key)
    .update(`${id}.${timestamp}.`)
    .update(raw)
    .digest('base64');
  return header.split(' ').some((entry) => {
    const [version, sig] = entry.split(',');
    if (version !== 'v1' || !sig) return false;
    const a = Buffer.from(expected);
    const b = Buffer.from(sig);
    return a.length === b.length && crypto.timingSafeEqual(a, b);
  });
}

const lines = readline.createInterface({ input: process.stdin });
lines.on('line', (line) => {
  const req = JSON.parse(line);
  const raw = Buffer.from(req.body_b64, 'base64');
  const text = raw.toString('utf8');
  const body = JSON.parse(text); // what express.json() hands the handler
  const result = {
    roundtrip: Buffer.from(JSON.stringify(body), 'utf8').equals(raw),
    bithuman: documentedCheck(req.secret, body, req.bithuman),
    standard: standardCheck(req.secret, req.id, req.timestamp, raw, req.standard),
  };
  process.stdout.write(JSON.stringify(result) + '\n');
});
