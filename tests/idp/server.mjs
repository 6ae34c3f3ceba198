// Test-only OpenID Provider for the tipd test stack (see DESIGN.md section 3).
//
// A real panva/oidc-provider on 127.0.0.1 with one public native client, devInteractions
// (HTML login / consent forms a test can POST headlessly), the device flow, revocation and
// introspection, plus a few /__test/* endpoints for fault injection. Never use outside tests.
//
// Environment:
//   IDP_PORT (required)        issuer = http://127.0.0.1:$IDP_PORT
//   IDP_CLIENT_ID              default tipd-test
//   IDP_ACCESS_TTL             seconds, default 3600
//   IDP_ID_TTL                 seconds, default 3600
//   IDP_REFRESH_TTL            seconds, default 86400 (each rotation issues a fresh full TTL)
//   IDP_DEVICE_TTL             seconds, default 600
//   IDP_WATCH_STDIN=1          exit when stdin reaches EOF (the parent test process died)
//   IDP_VERBOSE=1              keep oidc-provider's development notices (on stderr)
//   IDP_STATE_DIR              persist state there so a restart on the same port is an outage,
//                              not a new IdP: jwks.json (private signing keys) and cookie-keys.json
//                              are written on first start and loaded later; store.json holds every
//                              grant / token / session / interaction (the file adapter below,
//                              rewritten synchronously, temp file + rename, on every change).
//                              Unset: fresh keys per process and oidc-provider's MemoryAdapter.
//
// Test endpoints (not part of any standard):
//   POST   /__test/fault       {"path": "/token", "status": 500, "count": 3}
//                              the next `count` requests whose path starts with `path` answer
//                              `status` with {"error": "server_error"} (count -1 = until cleared).
//                              Optional: "error" (the error code in the body), "delay_ms" (wait
//                              before answering; with "status": 0 the request then proceeds).
//   DELETE /__test/fault       clear every fault
//   GET    /__test/stats       {"/token": 5, "/jwks": 2, ...} requests per path (counted before faults)
//   DELETE /__test/stats       reset the counters
//   POST   /__test/revoke-all  revoke every grant, so every refresh token of every account fails
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as nodePath from 'node:path';

// oidc-provider prints development notices with console.info (stdout) and console.warn. The
// harness reads stdout for the ready line, so keep stdout for that line alone.
const verbose = process.env.IDP_VERBOSE === '1';
const isProviderNotice = (args) => typeof args[0] === 'string' && args[0].startsWith('oidc-provider ');
const origWarn = console.warn.bind(console);
console.info = (...args) => { if (verbose || !isProviderNotice(args)) console.error(...args); };
console.log = (...args) => console.error(...args);
console.warn = (...args) => { if (verbose || !isProviderNotice(args)) origWarn(...args); };

const { default: Provider } = await import('oidc-provider');

function intEnv(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0) {
    console.error(`${name} must be a positive integer (seconds), got ${JSON.stringify(raw)}`);
    process.exit(2);
  }
  return value;
}

const port = Number(process.env.IDP_PORT);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error('IDP_PORT is required (a TCP port number)');
  process.exit(2);
}
const clientId = process.env.IDP_CLIENT_ID || 'tipd-test';
const accessTtl = intEnv('IDP_ACCESS_TTL', 3600);
const idTtl = intEnv('IDP_ID_TTL', 3600);
const refreshTtl = intEnv('IDP_REFRESH_TTL', 86400);
const deviceTtl = intEnv('IDP_DEVICE_TTL', 600);
const issuer = `http://127.0.0.1:${port}`;

const stateDir = process.env.IDP_STATE_DIR || '';

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
    console.error(`IDP_STATE_DIR ${stateDir}: ${err.message}`);
    process.exit(2);
  }
}

// A fresh signing key per IdP (per process, or per state dir when persistent): a token from
// another IdP instance must never verify here.
function makeJwks() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    keys: [{
      ...privateKey.export({ format: 'jwk' }),
      kid: `test-${randomBytes(6).toString('hex')}`,
      alg: 'RS256',
      use: 'sig',
    }],
  };
}
const jwks = loadOrCreate('jwks.json', makeJwks);
const cookieKeys = loadOrCreate('cookie-keys.json', () => [randomBytes(32).toString('hex')]);

const GRANTABLE = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode',
  'BackchannelAuthenticationRequest']);

// A file-backed oidc-provider adapter: every model in one JSON file, $IDP_STATE_DIR/store.json,
// mirrored in memory and rewritten (temp + rename) synchronously on every change, so a SIGTERM
// at any point leaves a complete store. Entries: "Model:id" -> { payload, exp (epoch ms|null) }.
// Expired entries read as absent and are pruned on the next write.
class FileAdapter {
  static file = '';

  static entries = new Map();

  static load(file) {
    FileAdapter.file = file;
    if (!fs.existsSync(file)) return;
    const data = JSON.parse(fs.readFileSync(file, 'utf8'));
    FileAdapter.entries = new Map(Object.entries(data.entries || {}));
  }

  static live(entry) {
    return entry !== undefined && (entry.exp === null || entry.exp > Date.now());
  }

  static save() {
    for (const [key, entry] of FileAdapter.entries) {
      if (!FileAdapter.live(entry)) FileAdapter.entries.delete(key);
    }
    writeFileAtomic(FileAdapter.file,
      JSON.stringify({ version: 1, entries: Object.fromEntries(FileAdapter.entries) }));
  }

  // every grant id the store knows about (Grant entries and the grantId of every token)
  static grantIds() {
    const ids = new Set();
    for (const [key, entry] of FileAdapter.entries) {
      if (!FileAdapter.live(entry)) continue;
      const model = key.slice(0, key.indexOf(':'));
      if (model === 'Grant') ids.add(key.slice(model.length + 1));
      else if (GRANTABLE.has(model) && entry.payload.grantId) ids.add(entry.payload.grantId);
    }
    return ids;
  }

  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  get(id) {
    const entry = FileAdapter.entries.get(this.key(id));
    return FileAdapter.live(entry) ? entry : undefined;
  }

  findBy(field, value) {
    const prefix = `${this.model}:`;
    for (const [key, entry] of FileAdapter.entries) {
      if (key.startsWith(prefix) && FileAdapter.live(entry) && entry.payload[field] === value) {
        return structuredClone(entry.payload);
      }
    }
    return undefined;
  }

  async upsert(id, payload, expiresIn) {
    const exp = Number.isFinite(expiresIn) && expiresIn > 0 ? Date.now() + expiresIn * 1000 : null;
    FileAdapter.entries.set(this.key(id), { payload: structuredClone(payload), exp });
    FileAdapter.save();
  }

  async find(id) {
    const entry = this.get(id);
    return entry ? structuredClone(entry.payload) : undefined;
  }

  async findByUserCode(userCode) {
    return this.findBy('userCode', userCode);
  }

  async findByUid(uid) {
    return this.findBy('uid', uid);
  }

  async consume(id) {
    const entry = this.get(id);
    if (!entry) return;
    entry.payload.consumed = Math.floor(Date.now() / 1000);
    FileAdapter.save();
  }

  async destroy(id) {
    if (FileAdapter.entries.delete(this.key(id))) FileAdapter.save();
  }

  async revokeByGrantId(grantId) {
    const prefix = `${this.model}:`;
    let changed = false;
    for (const [key, entry] of FileAdapter.entries) {
      if (key.startsWith(prefix) && entry.payload.grantId === grantId) {
        FileAdapter.entries.delete(key);
        changed = true;
      }
    }
    if (changed) FileAdapter.save();
  }
}

if (stateDir) {
  try {
    FileAdapter.load(nodePath.join(stateDir, 'store.json'));
  } catch (err) {
    console.error(`cannot load ${nodePath.join(stateDir, 'store.json')}: ${err.message}`);
    process.exit(2);
  }
}

const FOURTEEN_DAYS = 14 * 24 * 60 * 60;
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

// Every grant ever saved, so /__test/revoke-all can find them in the (default) MemoryAdapter
// (the file adapter lists its own, including those saved before a restart).
const grantIds = new Set();

const configuration = {
  ...(stateDir ? { adapter: FileAdapter } : {}),
  clients: [{
    client_id: clientId,
    application_type: 'native',
    token_endpoint_auth_method: 'none',
    // a native client's loopback redirect matches on any port (RFC 8252 section 7.3)
    redirect_uris: ['http://127.0.0.1/callback'],
    grant_types: ['authorization_code', 'refresh_token', DEVICE_GRANT],
    response_types: ['code'],
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
    deviceFlow: { enabled: true },
    revocation: { enabled: true },
    introspection: { enabled: true },
  },
  pkce: {
    methods: ['S256'],
    required: () => true,
  },
  // refresh tokens whenever offline_access was granted (see promptConsentForOfflineAccess below:
  // the client need not send prompt=consent)
  async issueRefreshToken(ctx, client, code) {
    return client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access');
  },
  // rotate on every use; reusing a rotated token revokes the whole grant (invalid_grant)
  rotateRefreshToken: true,
  ttl: {
    AccessToken: accessTtl,
    IdToken: idTtl,
    RefreshToken: refreshTtl,
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

const provider = new Provider(issuer, configuration);
provider.on('grant.saved', (grant) => { grantIds.add(grant.jti); });
provider.on('server_error', (ctx, err) => { console.error('server_error', err); });

// ----- test-only middleware: stats, fault injection, revoke-all ------------------------------
const stats = new Map();
let faults = []; // [{ path, status, count, error, delayMs }]

async function readJson(ctx) {
  const chunks = [];
  for await (const chunk of ctx.req) chunks.push(chunk);
  const raw = Buffer.concat(chunks).toString('utf8');
  return raw ? JSON.parse(raw) : {};
}

function sendJson(ctx, status, body) {
  ctx.status = status;
  ctx.type = 'application/json';
  ctx.set('Cache-Control', 'no-store');
  ctx.body = JSON.stringify(body);
}

async function revokeAll() {
  const ids = [...new Set([...grantIds, ...(stateDir ? FileAdapter.grantIds() : [])])];
  grantIds.clear();
  const models = [provider.AccessToken, provider.RefreshToken, provider.AuthorizationCode,
    provider.DeviceCode];
  for (const grantId of ids) {
    await Promise.all(models.map((model) => model.adapter.revokeByGrantId(grantId)));
    await provider.Grant.adapter.destroy(grantId);
  }
  return ids.length;
}

async function testEndpoints(ctx) {
  const { path, method } = ctx;
  if (path === '/__test/fault' && method === 'POST') {
    let body;
    try {
      body = await readJson(ctx);
    } catch (err) {
      return sendJson(ctx, 400, { error: 'invalid_request', error_description: 'body is not JSON' });
    }
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
    const revoked = await revokeAll();
    return sendJson(ctx, 200, { ok: true, grants: revoked });
  }
  return sendJson(ctx, 404, { error: 'not_found' });
}

// oidc-provider strips offline_access from an authorization request unless it carries
// prompt=consent (OIDC Core 11), so no refresh token would ever be issued to a client that just
// asks for offline_access. A native client is always shown the consent page anyway, so add
// `consent` to the prompt of GET /auth requests that ask for offline_access: the scope survives,
// the user consents to it, and issueRefreshToken (above) sees it on the code.
function promptConsentForOfflineAccess(ctx) {
  if (ctx.method !== 'GET' || ctx.path !== '/auth') return;
  const params = new URLSearchParams(ctx.querystring);
  const scopes = (params.get('scope') || '').split(' ');
  const prompts = (params.get('prompt') || '').split(' ').filter(Boolean);
  if (!scopes.includes('offline_access') || prompts.includes('consent') || prompts.includes('none')) return;
  params.set('prompt', [...prompts, 'consent'].join(' '));
  ctx.querystring = params.toString();
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
  promptConsentForOfflineAccess(ctx);
  return next();
});

// ----- serve --------------------------------------------------------------------------------
const server = http.createServer(provider.callback());
server.on('error', (err) => {
  console.error(`listen failed: ${err.code || ''} ${err.message}`);
  process.exit(1);
});
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`ready ${issuer}\n`);
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
