// Test-only OpenID Provider for the tipd test stack (see DESIGN.md section 3).
//
// A real panva/oidc-provider on 127.0.0.1 with one native client, devInteractions (HTML login /
// consent forms a test can POST headlessly), the device flow, revocation and introspection, a
// few /__test/* endpoints for fault injection, and switches (IDP_SWITCHES, see switches.mjs)
// that reproduce the documented behaviours of real IdPs. Never use outside tests.
//
// Environment:
//   IDP_PORT (required)        base URL http://127.0.0.1:$IDP_PORT (issuer: see the switches
//                              issuer_path and issuer_trailing_slash)
//   IDP_CLIENT_ID              default tipd-test
//   IDP_CLIENT_SECRET          the client secret when the switch client_auth is not "none"
//   IDP_REDIRECT_PORT          the registered loopback port when redirect_port is "exact"
//   IDP_SWITCHES               JSON object of switches (switches.mjs); default: none set
//   IDP_ACCESS_TTL             seconds, default 3600
//   IDP_ID_TTL                 seconds, default 3600
//   IDP_REFRESH_TTL            seconds, default 86400 (each rotation issues a fresh full TTL,
//                              unless refresh_absolute_ttl / refresh_idle_ttl say otherwise)
//   IDP_DEVICE_TTL             seconds, default 600
//   IDP_WATCH_STDIN=1          exit when stdin reaches EOF (the parent test process died)
//   IDP_VERBOSE=1              keep oidc-provider's development notices (on stderr)
//   IDP_STATE_DIR              persist state there so a restart on the same port is an outage,
//                              not a new IdP: jwks.json (private signing keys, current first) and
//                              cookie-keys.json are written on first start and loaded later;
//                              store.json holds every grant / token / session / interaction
//                              (rewritten synchronously, temp file + rename, on every change).
//                              Unset: fresh keys per process, the same store kept in memory.
//
// Test endpoints (not part of any standard; always at the root, whatever the issuer path):
//   POST   /__test/fault       {"path": "/token", "status": 500, "count": 3}
//                              the next `count` requests whose path starts with `path` answer
//                              `status` with {"error": "server_error"} (count -1 = until cleared).
//                              Optional: "error" (the error code in the body), "delay_ms" (wait
//                              before answering; with "status": 0 the request then proceeds).
//                              Paths are relative to the issuer ("/token", not "/oauth2/x/token").
//   DELETE /__test/fault       clear every fault
//   GET    /__test/stats       {"/token": 5, "/jwks": 2, ...} requests per path (counted before faults)
//   DELETE /__test/stats       reset the counters
//   POST   /__test/revoke-all  revoke every grant, so every refresh token of every account fails
//   POST   /__test/end-sessions  end every IdP (browser) session: session-bound refresh tokens
//                              (switch refresh_dies_with_session) die, the next sign-in asks again
//   POST   /__test/rotate-keys {"keep_old": true} a new signing key signs from now on; the old
//                              ones stay in the JWKS (keep_old) or are dropped from it
//   POST   /__test/clock       {"advance": 30} this IdP's clock jumps 30 s ahead (for lifetimes;
//                              a restart starts from the real time again)
//   GET    /__test/config      {"issuer", "client_id", "client_auth", "redirect_uris", "switches"}
import {
  createHash, createPrivateKey, generateKeyPair, generateKeyPairSync, randomBytes, sign as cryptoSign,
} from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as nodePath from 'node:path';
import * as querystring from 'node:querystring';

import { parseSwitches } from './switches.mjs';

// oidc-provider prints development notices with console.info (stdout) and console.warn. The
// harness reads stdout for the ready line, so keep stdout for that line alone.
const verbose = process.env.IDP_VERBOSE === '1';
const isProviderNotice = (args) => typeof args[0] === 'string'
  && /^(\u001b\[[0-9;]*m)?oidc-provider /.test(args[0]);
const origWarn = console.warn.bind(console);
console.info = (...args) => { if (verbose || !isProviderNotice(args)) console.error(...args); };
console.log = (...args) => console.error(...args);
console.warn = (...args) => { if (verbose || !isProviderNotice(args)) origWarn(...args); };

// POST /__test/clock moves this IdP's clock forward, so lifetimes (idle, absolute, grace, code
// expiry) can be tested without waiting. Date.now is what oidc-provider and this file read.
let clockOffsetMs = 0;
const realNow = Date.now.bind(Date);
Date.now = () => realNow() + clockOffsetMs;

// loads while the signing key is generated (in the thread pool): the IdP starts many times
const providerModule = import('oidc-provider');

function fail(message) {
  console.error(message);
  process.exit(2);
}

function intEnv(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0) {
    fail(`${name} must be a positive integer (seconds), got ${JSON.stringify(raw)}`);
  }
  return value;
}

const port = Number(process.env.IDP_PORT);
if (!Number.isInteger(port) || port <= 0 || port > 65535) fail('IDP_PORT is required (a TCP port number)');

let switches;
try {
  switches = parseSwitches(process.env.IDP_SWITCHES || '');
} catch (err) {
  fail(`IDP_SWITCHES: ${err.message}`);
}

const clientId = process.env.IDP_CLIENT_ID || 'tipd-test';
const clientSecret = process.env.IDP_CLIENT_SECRET || '';
if (switches.client_auth !== 'none' && clientSecret.length < 16) {
  fail(`client_auth ${switches.client_auth} needs IDP_CLIENT_SECRET (16+ characters)`);
}
const redirectPort = intEnv('IDP_REDIRECT_PORT', 0);
if (switches.redirect_port === 'exact' && !redirectPort) fail('redirect_port "exact" needs IDP_REDIRECT_PORT');
const accessTtl = intEnv('IDP_ACCESS_TTL', 3600);
const idTtl = intEnv('IDP_ID_TTL', 3600);
const refreshTtl = intEnv('IDP_REFRESH_TTL', 86400);
const deviceTtl = intEnv('IDP_DEVICE_TTL', 600);
const baseUrl = `http://127.0.0.1:${port}`;
const issuer = `${baseUrl}${switches.issuer_path}${switches.issuer_trailing_slash ? '/' : ''}`;
const mountPath = switches.issuer_path; // '' or '/a/b': the provider's routes live under it

const stateDir = process.env.IDP_STATE_DIR || '';
const epoch = () => Math.floor(Date.now() / 1000);

// ----- persistence (IDP_STATE_DIR) ------------------------------------------------------------
function writeFileAtomic(file, text) {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, text, { mode: 0o600 });
  fs.renameSync(tmp, file);
}

// Load `name` from the state dir, or create it with make() and save it (first start).
function loadOrCreate(name, make) {
  if (!stateDir) return make();
  const file = nodePath.join(stateDir, name);
  if (fs.existsSync(file)) return JSON.parse(fs.readFileSync(file, 'utf8'));
  const value = make();
  writeFileAtomic(file, JSON.stringify(value));
  return value;
}

if (stateDir) {
  try {
    fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  } catch (err) {
    fail(`IDP_STATE_DIR ${stateDir}: ${err.message}`);
  }
}

// ----- signing keys ---------------------------------------------------------------------------
// A fresh signing key per IdP (per process, or per state dir when persistent): a token from
// another IdP instance must never verify here. keys[0] signs; the rest are only published.
const KEY_TYPES = { ES256: ['ec', { namedCurve: 'P-256' }], RS256: ['rsa', { modulusLength: 2048 }] };

function asJwk(privateKey, alg) {
  return {
    ...privateKey.export({ format: 'jwk' }),
    kid: `test-${randomBytes(6).toString('hex')}`,
    alg,
    use: 'sig',
  };
}

function makeKey(alg) {
  return asJwk(generateKeyPairSync(...KEY_TYPES[alg]).privateKey, alg);
}

function makeKeyAsync(alg) {
  return new Promise((resolve, reject) => {
    generateKeyPair(...KEY_TYPES[alg], (err, publicKey, privateKey) => (
      err ? reject(err) : resolve(asJwk(privateKey, alg))));
  });
}

async function loadOrCreateJwks() {
  const file = stateDir && nodePath.join(stateDir, 'jwks.json');
  if (file && fs.existsSync(file)) return JSON.parse(fs.readFileSync(file, 'utf8'));
  const value = { keys: [await makeKeyAsync(switches.signing_alg)] };
  if (file) writeFileAtomic(file, JSON.stringify(value));
  return value;
}
const jwks = await loadOrCreateJwks();
const { default: Provider } = await providerModule;
const cookieKeys = loadOrCreate('cookie-keys.json', () => [randomBytes(32).toString('hex')]);
let signingKeys = jwks.keys; // rotate-keys replaces it; oidc-provider keeps signing with its own

const PUBLIC_MEMBERS = ['kty', 'kid', 'alg', 'use', 'n', 'e', 'crv', 'x', 'y'];
const publicJwks = () => ({
  keys: signingKeys.map((k) => Object.fromEntries(PUBLIC_MEMBERS.filter((m) => k[m] !== undefined)
    .map((m) => [m, k[m]]))),
});

const b64url = (buf) => Buffer.from(buf).toString('base64url');
const decodePart = (part) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));

// Sign a JWT with the current key (what oidc-provider does, but with keys[0] after a rotation).
function signJwt(payload) {
  const key = signingKeys[0];
  const header = { alg: key.alg, typ: 'JWT', kid: key.kid };
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  const keyObject = createPrivateKey({ key, format: 'jwk' });
  const signature = key.alg === 'ES256'
    ? cryptoSign('sha256', Buffer.from(input), { key: keyObject, dsaEncoding: 'ieee-p1363' })
    : cryptoSign('sha256', Buffer.from(input), keyObject);
  return `${input}.${b64url(signature)}`;
}

// OIDC Core 3.1.3.6: the left half of the SHA-256 of the access token (RS256 and ES256 alike)
const atHash = (token) => b64url(createHash('sha256').update(token).digest().subarray(0, 16));

// ----- the store: oidc-provider's adapter -----------------------------------------------------
const KEEP_EXPIRED_MS = 10 * 60 * 1000;
const GRANTABLE = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode',
  'BackchannelAuthenticationRequest']);

// Every model in one map, "Model:id" -> { payload, exp (epoch ms|null) }; with IDP_STATE_DIR
// mirrored to store.json (temp + rename, synchronously on every change) so a SIGTERM at any
// point leaves a complete store. Expired entries read as absent and are pruned on the next write.
// Owning the adapter lets the switches reach into it: refresh-token reuse (refresh_reuse*),
// idle lifetimes (touch), ending sessions.
class StoreAdapter {
  static file = '';

  static entries = new Map();

  static load(file) {
    StoreAdapter.file = file;
    if (!fs.existsSync(file)) return;
    const data = JSON.parse(fs.readFileSync(file, 'utf8'));
    StoreAdapter.entries = new Map(Object.entries(data.entries || {}));
  }

  static live(entry) {
    return entry !== undefined && (entry.exp === null || entry.exp > Date.now());
  }

  // An expired device code is kept a while longer, so that a poll gets expired_token (RFC 8628
  // 3.5; oidc-provider looks it up ignoring expiration) instead of "not found".
  static kept(key, entry) {
    if (StoreAdapter.live(entry)) return true;
    return entry !== undefined && key.startsWith('DeviceCode:') && entry.exp + KEEP_EXPIRED_MS > Date.now();
  }

  static save() {
    for (const [key, entry] of StoreAdapter.entries) {
      if (!StoreAdapter.kept(key, entry)) StoreAdapter.entries.delete(key);
    }
    if (!StoreAdapter.file) return;
    writeFileAtomic(StoreAdapter.file,
      JSON.stringify({ version: 1, entries: Object.fromEntries(StoreAdapter.entries) }));
  }

  static payload(model, id) {
    const entry = StoreAdapter.entries.get(`${model}:${id}`);
    return StoreAdapter.live(entry) ? entry.payload : undefined;
  }

  // every grant id the store knows about (Grant entries and the grantId of every token)
  static grantIds() {
    const ids = new Set();
    for (const [key, entry] of StoreAdapter.entries) {
      if (!StoreAdapter.live(entry)) continue;
      const model = key.slice(0, key.indexOf(':'));
      if (model === 'Grant') ids.add(key.slice(model.length + 1));
      else if (GRANTABLE.has(model) && entry.payload.grantId) ids.add(entry.payload.grantId);
    }
    return ids;
  }

  // a token's new expiry (epoch seconds), for idle lifetimes of tokens that are not rotated
  static touch(model, id, exp) {
    const entry = StoreAdapter.entries.get(`${model}:${id}`);
    if (!StoreAdapter.live(entry)) return;
    entry.payload.exp = exp;
    entry.exp = exp * 1000;
    StoreAdapter.save();
  }

  static endSessions() {
    let ended = 0;
    for (const key of [...StoreAdapter.entries.keys()]) {
      if (key.startsWith('Session:')) {
        StoreAdapter.entries.delete(key);
        ended += 1;
      }
    }
    StoreAdapter.save();
    return ended;
  }

  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  get(id) {
    const entry = StoreAdapter.entries.get(this.key(id));
    return StoreAdapter.kept(this.key(id), entry) ? entry : undefined;
  }

  findBy(field, value) {
    const prefix = `${this.model}:`;
    for (const [key, entry] of StoreAdapter.entries) {
      if (key.startsWith(prefix) && StoreAdapter.live(entry) && entry.payload[field] === value) {
        return structuredClone(entry.payload);
      }
    }
    return undefined;
  }

  async upsert(id, payload, expiresIn) {
    const exp = Number.isFinite(expiresIn) && expiresIn > 0 ? Date.now() + expiresIn * 1000 : null;
    StoreAdapter.entries.set(this.key(id), { payload: structuredClone(payload), exp });
    StoreAdapter.save();
  }

  async find(id) {
    const entry = this.get(id);
    if (!entry) return undefined;
    const payload = structuredClone(entry.payload);
    // A rotated refresh token reads as unused while reuse is allowed (Entra) or within the grace
    // period (Okta, Cognito, Auth0): oidc-provider then refreshes instead of revoking the grant.
    if (this.model === 'RefreshToken' && payload.consumed
        && (switches.refresh_reuse === 'allowed'
          || epoch() - payload.consumed < switches.refresh_reuse_grace)) {
      delete payload.consumed;
    }
    return payload;
  }

  async findByUserCode(userCode) {
    return this.findBy('userCode', userCode);
  }

  async findByUid(uid) {
    return this.findBy('uid', uid);
  }

  async consume(id) {
    const entry = this.get(id);
    if (!entry || entry.payload.consumed) return; // the first use starts the grace period
    entry.payload.consumed = epoch();
    StoreAdapter.save();
  }

  async destroy(id) {
    if (StoreAdapter.entries.delete(this.key(id))) StoreAdapter.save();
  }

  async revokeByGrantId(grantId) {
    const prefix = `${this.model}:`;
    let changed = false;
    for (const [key, entry] of StoreAdapter.entries) {
      if (key.startsWith(prefix) && entry.payload.grantId === grantId) {
        StoreAdapter.entries.delete(key);
        changed = true;
      }
    }
    if (changed) StoreAdapter.save();
  }
}

if (stateDir) {
  try {
    StoreAdapter.load(nodePath.join(stateDir, 'store.json'));
  } catch (err) {
    fail(`cannot load ${nodePath.join(stateDir, 'store.json')}: ${err.message}`);
  }
}

// ----- the client -------------------------------------------------------------------------------
const FOURTEEN_DAYS = 14 * 24 * 60 * 60;
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
const CALLBACK_PATH = '/callback';
const REDIRECT_HOSTS = {
  '127.0.0.1': ['127.0.0.1'], localhost: ['localhost'], loopback: ['127.0.0.1', 'localhost'],
}[switches.redirect_host];
const registeredRedirects = REDIRECT_HOSTS.map((host) => (switches.redirect_port === 'exact'
  ? `http://${host}:${redirectPort}${CALLBACK_PATH}` : `http://${host}${CALLBACK_PATH}`));

// The loopback redirect rule of the switches redirect_host / redirect_port (replaces
// oidc-provider's, which lets 127.0.0.1, [::1] and localhost in on any port).
function redirectUriAllowed(value) {
  let url;
  try {
    url = new URL(value);
  } catch {
    return false;
  }
  if (url.protocol !== 'http:' || url.username || url.password || url.search || url.hash) return false;
  if (!REDIRECT_HOSTS.includes(url.hostname) || url.pathname !== CALLBACK_PATH) return false;
  if (switches.redirect_port === 'exact') return url.port === String(redirectPort);
  return true;
}

const confidential = switches.client_auth !== 'none';
const grantTypes = ['authorization_code', 'refresh_token', ...(switches.device_flow ? [DEVICE_GRANT] : [])];

function grantHasOffline(code) {
  return code.scopes.has('offline_access');
}

const configuration = {
  adapter: StoreAdapter,
  clients: [{
    client_id: clientId,
    application_type: 'native',
    // client_secret_any: registered as post; a Basic header is moved into the form (middleware)
    token_endpoint_auth_method: switches.client_auth === 'client_secret_any'
      ? 'client_secret_post' : switches.client_auth,
    ...(confidential ? { client_secret: clientSecret } : {}),
    redirect_uris: registeredRedirects,
    grant_types: grantTypes,
    response_types: ['code'],
    id_token_signed_response_alg: signingKeys[0].alg,
  }],
  async findAccount(ctx, id) {
    // any login name is accepted (devInteractions ignores the password); sub = the login name
    return {
      accountId: id,
      async claims() {
        return {
          sub: id, email: `${id}@example.com`, email_verified: true, name: id,
        };
      },
    };
  },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
  },
  scopes: ['openid', 'email', 'profile', 'offline_access'],
  conformIdTokenClaims: false,
  features: {
    devInteractions: { enabled: true },
    deviceFlow: { enabled: switches.device_flow },
    revocation: { enabled: switches.revocation !== 'absent' },
    introspection: { enabled: true },
  },
  pkce: {
    methods: ['S256'],
    required: () => true,
  },
  // refresh_token_issue: "offline_access" and "access_type_offline" both look for
  // offline_access in the grant (the middleware turns access_type=offline into it)
  async issueRefreshToken(ctx, client, code) {
    if (!client.grantTypeAllowed('refresh_token')) return false;
    if (switches.refresh_token_issue !== 'always' && !grantHasOffline(code)) return false;
    if (switches.refresh_token_first_grant_only && code.kind === 'AuthorizationCode') {
      const consented = consentPrompts.get(code.codeChallenge) === true;
      consentPrompts.delete(code.codeChallenge);
      if (hadRefreshToken.has(code.accountId) && !consented) return false;
      hadRefreshToken.add(code.accountId);
    }
    return true;
  },
  async expiresWithSession(ctx, code) {
    const rule = switches.refresh_dies_with_session;
    return rule === 'without_offline_access' ? !grantHasOffline(code) : rule;
  },
  // refresh_rotation "rotate": a new token on every use and the old one consumed (its reuse then
  // revokes the whole grant, unless refresh_reuse / refresh_reuse_grace say otherwise)
  async rotateRefreshToken(ctx) {
    if (switches.refresh_rotation !== 'rotate') return false;
    return !switches.refresh_needs_offline_scope || refreshScopeHasOffline(ctx);
  },
  ttl: {
    AccessToken: accessTtl,
    IdToken: idTtl,
    RefreshToken(ctx, token) {
      let ttl = refreshTtl;
      if (switches.refresh_idle_ttl) ttl = Math.min(ttl, switches.refresh_idle_ttl);
      if (switches.refresh_absolute_ttl) {
        ttl = Math.min(ttl, Math.max(1, token.iiat + switches.refresh_absolute_ttl - epoch()));
      }
      return ttl;
    },
    DeviceCode: deviceTtl,
    AuthorizationCode: 60,
    Interaction: 3600,
    Grant: Math.max(FOURTEEN_DAYS, refreshTtl),
    Session: Math.max(FOURTEEN_DAYS, refreshTtl),
  },
  jwks,
  cookies: { keys: cookieKeys },
  async renderError(ctx, out) {
    ctx.type = 'html';
    const safe = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
    ctx.body = `<!DOCTYPE html><html><head><title>oops! something went wrong</title></head><body>`
      + Object.entries(out).map(([k, v]) => `<pre id="${safe(k)}">${safe(k)}: ${safe(v)}</pre>`).join('')
      + '</body></html>';
  },
};

// refresh_token_first_grant_only: the accounts that got a refresh token already (this process),
// and whether an authorization request (by its PKCE code_challenge) said prompt=consent itself
const hadRefreshToken = new Set();
const consentPrompts = new Map();

// the refresh request's scope, or without one the grant's, holds offline_access (Okta's rule)
function refreshScopeHasOffline(ctx) {
  if (ctx.oidc.params.scope) return ctx.oidc.requestParamScopes.has('offline_access');
  return ctx.oidc.entities.RefreshToken.scopes.has('offline_access');
}

const provider = new Provider(issuer, configuration);
provider.Client.prototype.redirectUriAllowed = function allowed(value) {
  return redirectUriAllowed(value);
};
provider.on('server_error', (ctx, err) => { console.error('server_error', err); });

// ----- test-only middleware: stats, fault injection, test endpoints ----------------------------
const stats = new Map();
let faults = []; // [{ path, status, count, error, delayMs }]
const MAX_BODY = 56 * 1024;

async function readBody(ctx) {
  const chunks = [];
  let size = 0;
  for await (const chunk of ctx.req) {
    size += chunk.length;
    if (size > MAX_BODY) throw new Error('request body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

async function readJson(ctx) {
  const raw = await readBody(ctx);
  return raw ? JSON.parse(raw) : {};
}

function sendJson(ctx, status, body) {
  ctx.status = status;
  ctx.type = 'application/json';
  ctx.set('Cache-Control', 'no-store');
  ctx.body = JSON.stringify(body);
}

async function revokeAll() {
  const ids = [...StoreAdapter.grantIds()];
  const models = [provider.AccessToken, provider.RefreshToken, provider.AuthorizationCode,
    provider.DeviceCode];
  for (const grantId of ids) {
    await Promise.all(models.map((model) => model.adapter.revokeByGrantId(grantId)));
    await provider.Grant.adapter.destroy(grantId);
  }
  return ids.length;
}

function rotateKeys(keepOld) {
  const key = makeKey(switches.signing_alg);
  signingKeys = [key, ...(keepOld ? signingKeys : [])];
  // a restart (IDP_STATE_DIR) then starts oidc-provider with the new key first
  if (stateDir) writeFileAtomic(nodePath.join(stateDir, 'jwks.json'), JSON.stringify({ keys: signingKeys }));
  return { kid: key.kid, kids: signingKeys.map((k) => k.kid) };
}

async function testEndpoints(ctx) {
  const { path, method } = ctx;
  let body = {};
  if (method === 'POST') {
    try {
      body = await readJson(ctx);
    } catch (err) {
      return sendJson(ctx, 400, { error: 'invalid_request', error_description: 'body is not JSON' });
    }
  }
  if (path === '/__test/fault' && method === 'POST') {
    const rule = {
      path: body.path,
      status: body.status === undefined ? 500 : Number(body.status),
      count: body.count === undefined ? 1 : Number(body.count),
      error: body.error || 'server_error',
      delayMs: Number(body.delay_ms || 0),
    };
    if (typeof rule.path !== 'string' || !rule.path.startsWith('/')
        || !Number.isInteger(rule.status) || !Number.isInteger(rule.count)
        || rule.count === 0 || rule.count < -1) {
      return sendJson(ctx, 400, { error: 'invalid_request', error_description: 'need path (/...), status, count (>0 or -1)' });
    }
    faults = faults.filter((f) => f.path !== rule.path);
    faults.push(rule);
    return sendJson(ctx, 200, { ok: true, faults });
  }
  if (path === '/__test/fault' && method === 'DELETE') {
    faults = [];
    return sendJson(ctx, 200, { ok: true });
  }
  if (path === '/__test/stats' && method === 'GET') {
    return sendJson(ctx, 200, Object.fromEntries(stats));
  }
  if (path === '/__test/stats' && method === 'DELETE') {
    stats.clear();
    return sendJson(ctx, 200, { ok: true });
  }
  if (path === '/__test/revoke-all' && method === 'POST') {
    return sendJson(ctx, 200, { ok: true, grants: await revokeAll() });
  }
  if (path === '/__test/end-sessions' && method === 'POST') {
    return sendJson(ctx, 200, { ok: true, sessions: StoreAdapter.endSessions() });
  }
  if (path === '/__test/rotate-keys' && method === 'POST') {
    return sendJson(ctx, 200, { ok: true, ...rotateKeys(body.keep_old !== false) });
  }
  if (path === '/__test/clock' && method === 'POST') {
    const seconds = Number(body.advance);
    if (!Number.isFinite(seconds) || seconds < 0 || seconds > 10 * 365 * 86400) {
      return sendJson(ctx, 400, { error: 'invalid_request', error_description: 'need advance (seconds, >= 0)' });
    }
    clockOffsetMs += seconds * 1000;
    return sendJson(ctx, 200, { ok: true, now: Date.now() / 1000, offset: clockOffsetMs / 1000 });
  }
  if (path === '/__test/config' && method === 'GET') {
    return sendJson(ctx, 200, {
      issuer,
      client_id: clientId,
      client_auth: switches.client_auth,
      redirect_uris: registeredRedirects,
      switches,
    });
  }
  return sendJson(ctx, 404, { error: 'not_found' });
}

// ----- switch middleware ------------------------------------------------------------------------
const splitScope = (value) => (typeof value === 'string' ? value.split(' ').filter(Boolean) : []);

// The scope rules of the authorization and device authorization requests: refused scopes (the
// caller answers invalid_scope), dropped scopes, access_type=offline as the internal
// offline_access (refresh_token_issue "access_type_offline"). Returns { refused, scopes }.
function requestScopes(scopeParam, accessTypeOffline) {
  let scopes = splitScope(scopeParam);
  const refused = scopes.filter((s) => switches.refuse_scopes.includes(s));
  scopes = scopes.filter((s) => !switches.drop_scopes.includes(s));
  if (switches.refresh_token_issue === 'access_type_offline') {
    scopes = scopes.filter((s) => s !== 'offline_access');
    if (accessTypeOffline) scopes.push('offline_access');
  }
  return { refused, scopes };
}

// GET /auth. oidc-provider strips offline_access from an authorization request unless it carries
// prompt=consent (OIDC Core 11), so no refresh token would ever be issued to a client that just
// asks for offline_access. A native client is always shown the consent page anyway, so add
// `consent` to the prompt of requests that ask for offline_access: the scope survives, the user
// consents to it, and issueRefreshToken (above) sees it on the code.
function authorizationRequest(ctx) {
  const params = new URLSearchParams(ctx.querystring);
  const original = params.get('scope') || '';
  const { refused, scopes } = requestScopes(original, params.get('access_type') === 'offline');
  if (refused.length) {
    const redirectUri = params.get('redirect_uri') || '';
    if (params.get('client_id') !== clientId || !redirectUriAllowed(redirectUri)) {
      ctx.status = 400;
      ctx.type = 'html';
      ctx.body = '<!DOCTYPE html><html><body><pre id="error">error: invalid_scope</pre></body></html>';
      return true;
    }
    const target = new URL(redirectUri);
    target.searchParams.set('error', 'invalid_scope');
    target.searchParams.set('error_description', `unsupported scope: ${refused.join(' ')}`);
    if (params.get('state') !== null) target.searchParams.set('state', params.get('state'));
    if (switches.authorization_response_iss) target.searchParams.set('iss', issuer);
    ctx.redirect(target.href);
    return true;
  }
  if (scopes.join(' ') !== original) params.set('scope', scopes.join(' '));
  const prompts = (params.get('prompt') || '').split(' ').filter(Boolean);
  if (switches.refresh_token_first_grant_only && params.get('code_challenge')) {
    consentPrompts.set(params.get('code_challenge'), prompts.includes('consent'));
  }
  if (scopes.includes('offline_access') && !prompts.includes('consent') && !prompts.includes('none')) {
    params.set('prompt', [...prompts, 'consent'].join(' '));
  }
  const rewritten = params.toString();
  if (rewritten !== ctx.querystring) {
    ctx.querystring = rewritten;
    // oidc-provider finds its mount path by locating ctx.url in req.originalUrl
    if (mountPath) ctx.req.originalUrl = `${mountPath}${ctx.url}`;
  }
  return false;
}

// Read an urlencoded form and hand it on to oidc-provider (which then uses ctx.req.body).
async function takeForm(ctx) {
  if (!ctx.is('application/x-www-form-urlencoded')) return null;
  const form = querystring.parse(await readBody(ctx));
  ctx.req.body = form;
  return form;
}

// The registered client authentication method and no other (oidc-provider takes either secret
// form). client_auth "client_secret_any": the client is registered for client_secret_post, so
// HTTP Basic credentials (RFC 6749 2.3.1: form-encoded, then base64) move into the form.
// Returns an error body when the request used the wrong method.
function clientAuthMethod(ctx, form) {
  if (!form) return undefined;
  const basic = /^basic /i.test(ctx.get('authorization'));
  const posted = typeof form.client_secret === 'string';
  const wrong = (switches.client_auth === 'client_secret_post' && basic)
    || (switches.client_auth === 'client_secret_basic' && posted);
  if (wrong) {
    return { error: 'invalid_client', error_description: `the client authenticates with ${switches.client_auth} only` };
  }
  if (switches.client_auth !== 'client_secret_any' || !basic) return undefined;
  const header = ctx.get('authorization');
  const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  const unform = (s) => decodeURIComponent(s.replace(/\+/g, ' '));
  try {
    form.client_id = unform(decoded.slice(0, colon));
    form.client_secret = unform(decoded.slice(colon + 1));
  } catch {
    return undefined;
  }
  delete ctx.req.headers.authorization;
  return undefined;
}

function stringifyNumbers(body, names) {
  if (!switches.numbers_as_strings) return;
  for (const name of names) {
    if (typeof body[name] === 'number') body[name] = String(body[name]);
  }
}

async function deviceAuthorization(ctx, next) {
  const form = await takeForm(ctx);
  const authError = clientAuthMethod(ctx, form);
  if (authError) return sendJson(ctx, 401, authError);
  if (form) {
    const { refused, scopes } = requestScopes(form.scope, true); // Google: device grants are offline
    if (refused.length) {
      return sendJson(ctx, 400, { error: 'invalid_scope', error_description: `unsupported scope: ${refused.join(' ')}` });
    }
    if (form.scope !== undefined) form.scope = scopes.join(' ');
  }
  await next();
  if (ctx.status !== 200 || typeof ctx.body !== 'object' || ctx.body === null) return;
  const body = ctx.body;
  if (switches.device_verification_url) {
    body.verification_url = body.verification_uri;
    delete body.verification_uri;
  }
  if (!switches.device_uri_complete) delete body.verification_uri_complete;
  if (switches.device_interval) body.interval = switches.device_interval;
  stringifyNumbers(body, ['expires_in', 'interval']);
  return undefined;
}

const devicePolls = new Map(); // device_code -> { last (ms), interval (s) }

// RFC 8628 3.5: a poll sooner than the interval after the previous one is answered slow_down,
// and the interval grows by 5 s for this device code.
function slowDown(deviceCode) {
  const now = Date.now();
  const poll = devicePolls.get(deviceCode) || { last: 0, interval: switches.device_interval || 5 };
  const tooSoon = poll.last && now - poll.last < poll.interval * 1000;
  poll.last = now;
  if (tooSoon) poll.interval += 5;
  devicePolls.set(deviceCode, poll);
  return tooSoon;
}

// Re-sign an id_token when a switch changes its claims, the access token was replaced (at_hash),
// or the signing key was rotated since oidc-provider started.
function rewriteIdToken(idToken, newAccessToken) {
  const [headerPart, payloadPart] = idToken.split('.');
  const header = decodePart(headerPart);
  const payload = decodePart(payloadPart);
  let changed = header.kid !== signingKeys[0].kid;
  if (switches.id_token_jti) {
    payload.jti = randomBytes(16).toString('base64url');
    changed = true;
  }
  if (!switches.id_token_email && ('email' in payload || 'email_verified' in payload)) {
    delete payload.email;
    delete payload.email_verified;
    changed = true;
  }
  if (switches.id_token_aud === 'array') {
    payload.aud = [clientId, 'urn:tipd-test:api'];
    payload.azp = clientId;
    changed = true;
  }
  if (newAccessToken) {
    payload.at_hash = atHash(newAccessToken);
    changed = true;
  }
  return changed ? signJwt(payload) : idToken;
}

// access_token_format "jwt": a JWT in place of oidc-provider's opaque token (which stays valid
// at the introspection endpoint), with the claims of the stored token.
function jwtAccessToken(opaque) {
  const at = StoreAdapter.payload('AccessToken', opaque);
  if (!at) return undefined;
  return signJwt({
    iss: issuer,
    sub: at.accountId,
    aud: switches.access_token_audience || clientId,
    client_id: clientId,
    scope: at.scope,
    iat: at.iat,
    exp: at.exp,
    jti: randomBytes(16).toString('base64url'),
  });
}

async function tokenRequest(ctx, next) {
  const form = await takeForm(ctx);
  const authError = clientAuthMethod(ctx, form);
  if (authError) return sendJson(ctx, 401, authError);
  const grantType = form && form.grant_type;
  let presented; // the stored refresh token (payload) of a refresh request
  if (grantType === 'refresh_token') {
    const hasScope = typeof form.scope === 'string' && form.scope !== '';
    if (switches.refresh_scope === 'ignored') delete form.scope;
    if (switches.refresh_scope === 'required' && !hasScope) {
      return sendJson(ctx, 400, { error: 'invalid_request', error_description: 'scope is required on a refresh request' });
    }
    if (switches.refresh_scope === 'rejected' && hasScope) {
      return sendJson(ctx, 400, { error: 'invalid_request', error_description: 'scope is not allowed on a refresh request' });
    }
    if (typeof form.refresh_token === 'string') {
      presented = StoreAdapter.payload('RefreshToken', form.refresh_token);
    }
  }
  let unknownDeviceCode = false;
  if (grantType === DEVICE_GRANT && typeof form.device_code === 'string') {
    unknownDeviceCode = !StoreAdapter.payload('DeviceCode', form.device_code);
    if (switches.device_slow_down && slowDown(form.device_code)) {
      return sendJson(ctx, 400, { error: 'slow_down', error_description: 'polling faster than the interval' });
    }
  }

  await next();

  const body = ctx.body;
  if (typeof body !== 'object' || body === null) return undefined;
  if (ctx.status !== 200) {
    if (grantType === DEVICE_GRANT) {
      if (body.error === 'access_denied' && switches.device_denied_error !== 'access_denied') {
        body.error = switches.device_denied_error;
      }
      if (body.error === 'invalid_grant' && unknownDeviceCode
          && switches.device_unknown_code_error !== 'invalid_grant') {
        body.error = switches.device_unknown_code_error;
      }
    }
    return undefined;
  }
  if (grantType === 'refresh_token') {
    const scopes = typeof form.scope === 'string' && form.scope ? splitScope(form.scope)
      : splitScope(presented && presented.scope);
    const rotated = body.refresh_token !== form.refresh_token;
    if (switches.refresh_rotation === 'none'
        || (switches.refresh_needs_offline_scope && !scopes.includes('offline_access'))) {
      delete body.refresh_token;
    }
    if (!rotated && presented && (switches.refresh_idle_ttl || switches.refresh_absolute_ttl)) {
      // the same token lives on: its idle clock restarts, never past the absolute lifetime
      let exp = epoch() + Math.min(refreshTtl, switches.refresh_idle_ttl || refreshTtl);
      if (switches.refresh_absolute_ttl) exp = Math.min(exp, presented.iiat + switches.refresh_absolute_ttl);
      if (switches.refresh_idle_ttl) StoreAdapter.touch('RefreshToken', form.refresh_token, exp);
    }
    if (!switches.refresh_id_token) delete body.id_token;
  }
  if (switches.refresh_token_issue === 'access_type_offline' && typeof body.scope === 'string') {
    // Google grants "offline" through access_type, never as a scope
    body.scope = splitScope(body.scope).filter((s) => s !== 'offline_access').join(' ');
  }
  let newAccessToken;
  if (switches.access_token_format === 'jwt' && typeof body.access_token === 'string') {
    newAccessToken = jwtAccessToken(body.access_token);
    if (newAccessToken) body.access_token = newAccessToken;
  }
  if (typeof body.id_token === 'string') body.id_token = rewriteIdToken(body.id_token, newAccessToken);
  stringifyNumbers(body, ['expires_in']);
  return undefined;
}

// authorization_response_iss false: no `iss` on redirects to the client, none in discovery
function withoutIss(ctx) {
  const location = ctx.response.get('Location');
  if (!location || ctx.status < 300 || ctx.status > 399) return;
  let url;
  try {
    url = new URL(location);
  } catch {
    return;
  }
  if (!url.searchParams.has('iss')) return;
  const bare = new URL(url.href);
  bare.search = '';
  if (!redirectUriAllowed(bare.href)) return;
  url.searchParams.delete('iss');
  ctx.set('Location', url.href);
}

async function revocationRequest(ctx, next) {
  if (switches.revocation === 'error') {
    return sendJson(ctx, 400, { error: 'unsupported_token_type', error_description: 'token revocation is disabled for this client' });
  }
  const authError = clientAuthMethod(ctx, await takeForm(ctx));
  if (authError) return sendJson(ctx, 401, authError);
  return next();
}

provider.use(async (ctx, next) => {
  if (ctx.path.startsWith('/__test/')) {
    return testEndpoints(ctx);
  }
  stats.set(ctx.path, (stats.get(ctx.path) || 0) + 1);

  const fault = faults.find((f) => ctx.path.startsWith(f.path));
  if (fault) {
    if (fault.count > 0) {
      fault.count -= 1;
      if (fault.count === 0) faults = faults.filter((f) => f !== fault);
    }
    if (fault.delayMs > 0) {
      await new Promise((resolve) => { setTimeout(resolve, fault.delayMs); });
    }
    if (fault.status) {
      return sendJson(ctx, fault.status, { error: fault.error });
    }
  }

  const { method, path } = ctx;
  try {
    if (method === 'GET' && path === '/jwks') {
      ctx.type = 'application/jwk-set+json; charset=utf-8';
      ctx.body = JSON.stringify(publicJwks());
      return undefined;
    }
    if (method === 'GET' && path === '/.well-known/openid-configuration' && !switches.authorization_response_iss) {
      await next();
      if (ctx.body && typeof ctx.body === 'object') delete ctx.body.authorization_response_iss_parameter_supported;
      return undefined;
    }
    if (method === 'GET' && path.startsWith('/auth') && !switches.authorization_response_iss) {
      if (path !== '/auth' || !authorizationRequest(ctx)) await next();
      withoutIss(ctx);
      return undefined;
    }
    if (method === 'GET' && path === '/auth') {
      if (authorizationRequest(ctx)) return undefined;
    } else if (method === 'POST' && path === '/token') {
      return await tokenRequest(ctx, next);
    } else if (method === 'POST' && path === '/device/auth' && switches.device_flow) {
      return await deviceAuthorization(ctx, next);
    } else if (method === 'POST' && path === '/token/revocation' && switches.revocation !== 'absent') {
      return await revocationRequest(ctx, next);
    }
  } catch (err) {
    if (err.message === 'request body too large') {
      return sendJson(ctx, 413, { error: 'invalid_request', error_description: err.message });
    }
    throw err;
  }
  return next();
});

// ----- serve --------------------------------------------------------------------------------
// With an issuer path the provider is mounted there (oidc-provider derives its mount path from
// req.originalUrl, the way Express mounts it); /__test/* stays at the root.
const handle = provider.callback();
const server = http.createServer((req, res) => {
  if (mountPath) {
    if (req.url.startsWith(`${mountPath}/`)) {
      req.originalUrl = req.url;
      req.url = req.url.slice(mountPath.length);
    } else if (!req.url.startsWith('/__test/')) {
      res.writeHead(404, { 'Content-Type': 'application/json' });
      res.end('{"error":"not_found"}');
      return;
    }
  }
  handle(req, res);
});
// Node closes an idle keep-alive connection after 5 s; a client that reuses it at that moment
// (aiohttp keeps them 15 s) gets ECONNRESET on a POST it cannot retry. Real IdPs sit behind load
// balancers with a minute or more (an AWS ALB: 60 s), so keep connections as long as that.
server.keepAliveTimeout = 65_000;
server.headersTimeout = 66_000;
server.on('error', (err) => {
  console.error(`listen failed: ${err.code || ''} ${err.message}`);
  process.exit(1);
});
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`ready ${baseUrl}\n`);
});

function shutdown() {
  server.closeAllConnections?.();
  process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
if (process.env.IDP_WATCH_STDIN === '1') {
  process.stdin.on('end', shutdown);
  process.stdin.on('error', shutdown);
  process.stdin.resume();
}
