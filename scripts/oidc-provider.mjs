// A real OpenID Provider for the test suite: npm's `oidc-provider` (panva's certified
// implementation) on 127.0.0.1, issuing RFC 9068 JWT access tokens by the client-credentials
// grant with resource indicators. scripts/services.sh installs it into .tools/oidc/ and copies
// this file beside it; the tests start one per test that needs its own keys.
//
//   node provider.mjs --keys FILE
//
// FILE holds the private signing keys (JWKs; created with one RS256 and one ES256 key when
// missing), the first the one tokens are signed with. Listens on a free port; prints `oidc ready <issuer> kids=<kid,...>` once it listens.
//
// Clients (secret = id + "-secret"): `analyst` (roles ["Sluice.Analyst"]), `admin` (roles
// ["Sluice.Admin"]), `nobody` (no roles). Scopes: openid, sql.read, sql.admin. And `console`, a
// public (native) client for the web console's sign-in: the authorization code flow with PKCE,
// redirecting to http://127.0.0.1:<any port>/console/, through the provider's development
// login and consent pages (any login and password), with roles ["Sluice.Analyst"].
//
// Test-only route, for tokens no honest provider would issue (expired, wrong audience, a key
// it does not publish): POST /_test/sign {"claims": {...}, "header": {...}, "key": "<kid>" |
// "stray"} answers the compact JWS signed with that private key. POST /_test/rotate
// {"add_key": true} generates a new RS256 key and puts it first (a rotation), {"keep": N}
// keeps only the first N keys (the provider drops the old ones); both in place (the same
// listener, so the same issuer), answering {"kids": [...]}.
import { createServer } from 'node:http';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import * as jose from 'jose';
import Provider from 'oidc-provider';

const args = process.argv.slice(2);
const arg = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const keysFile = arg('--keys');
if (!keysFile) {
  console.error('--keys FILE is required');
  process.exit(2);
}

async function newKey(alg) {
  const { privateKey } = await jose.generateKeyPair(alg, { extractable: true });
  const jwk = await jose.exportJWK(privateKey);
  return { ...jwk, kid: `${alg.toLowerCase()}-${randomUUID().slice(0, 8)}`, alg, use: 'sig' };
}

let keys = existsSync(keysFile)
  ? JSON.parse(readFileSync(keysFile, 'utf8')).keys
  : [await newKey('RS256'), await newKey('ES256')];
writeFileSync(keysFile, JSON.stringify({ keys }, null, 2));
const stray = await newKey('RS256');

const roles = { analyst: ['Sluice.Analyst'], admin: ['Sluice.Admin'], nobody: [], console: ['Sluice.Analyst'] };
const consoleClient = {
  client_id: 'console',
  application_type: 'native',
  token_endpoint_auth_method: 'none',
  grant_types: ['authorization_code'],
  response_types: ['code'],
  redirect_uris: ['http://127.0.0.1/console/'],
  scope: 'openid sql.read',
};
const server = createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const makeProvider = () => new Provider(issuer, {
  jwks: { keys },
  clients: [consoleClient, ...['analyst', 'admin', 'nobody'].map((id) => ({
    client_id: id,
    client_secret: `${id}-secret`,
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    scope: 'openid sql.read sql.admin',
  }))],
  // The console's page (any loopback port) may call the token endpoint.
  clientBasedCORS: (ctx, origin, client) =>
    client.clientId === 'console' && /^http:\/\/127\.0\.0\.1(:\d+)?$/.test(origin),
  scopes: ['openid', 'sql.read', 'sql.admin'],
  features: {
    // The login and consent pages the console's sign-in goes through (any login works).
    devInteractions: { enabled: true },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // Any resource asked for is a resource server here: the tests ask for Sluice's, and
      // for another one to check Sluice refuses its tokens.
      getResourceServerInfo: (ctx, resource) => ({
        scope: 'sql.read sql.admin',
        audience: resource,
        accessTokenTTL: 3600,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
  extraTokenClaims: (ctx, token) => ({ roles: roles[token.clientId] ?? [] }),
});

const signing = async (req) => {
  let body = '';
  for await (const chunk of req) body += chunk;
  const { claims, header, key } = JSON.parse(body);
  const jwk = key === 'stray' ? stray : keys.find((k) => k.kid === key);
  const alg = header?.alg ?? jwk.alg;
  const privateKey = await jose.importJWK(jwk, jwk.alg);
  return new jose.CompactSign(new TextEncoder().encode(JSON.stringify(claims)))
    .setProtectedHeader({ alg, kid: jwk.kid, typ: 'at+jwt', ...header })
    .sign(privateKey);
};

// A rotation in place: the same listener (so the same issuer, and no window in which its
// port is free for another process to take), a provider with the new keys behind it.
const rotating = async (req) => {
  let body = '';
  for await (const chunk of req) body += chunk;
  const { add_key: addKey, keep: kept } = JSON.parse(body || '{}');
  if (addKey) keys = [await newKey('RS256'), ...keys];
  if (kept) keys = keys.slice(0, Number(kept));
  writeFileSync(keysFile, JSON.stringify({ keys }, null, 2));
  handle = makeProvider().callback();
  return JSON.stringify({ kids: keys.map((k) => k.kid) });
};

let handle = makeProvider().callback();
server.on('request', (req, res) => {
  const answer = (work, type) =>
    work(req).then(
      (out) => res.writeHead(200, { 'content-type': type }).end(out),
      (e) => res.writeHead(400).end(String(e)),
    );
  if (req.method === 'POST' && req.url === '/_test/sign') return answer(signing, 'text/plain');
  if (req.method === 'POST' && req.url === '/_test/rotate') return answer(rotating, 'application/json');
  handle(req, res);
});
console.log(`oidc ready ${issuer} kids=${keys.map((k) => k.kid).join(',')}`);
