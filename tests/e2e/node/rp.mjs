// An independent relying party for the end-to-end tests, built on panva's openid-client v6
// (an OpenID Certified RP library). It signs a user in through the provider's own HTML login
// page (no browser: fetch with a cookie jar), then exercises the token, userinfo, refresh and
// logout endpoints the way a real application would.
//
// usage: node rp.mjs [full|login|refresh|stepup|policy]
//
//   full     sign in, code grant (+PKCE S256, state, nonce), userinfo, refresh-token rotation,
//            reuse detection, family revocation, RP-initiated logout (the default)
//   login    sign in and code grant only; prints the tokens so a later step can use them
//   refresh  one refresh_token grant with RP_REFRESH_TOKEN; RP_EXPECT is "ok" or an OAuth
//            error code (e.g. invalid_grant) and decides the exit code
//   stepup   sign in without acr_values, then authorize again on the same SSO session with
//            acr_values=RP_STEP_UP_ACR (default "mfa"): the provider's step-up asks for a code
//   policy   first sign-in stops at the security-policy page; prompt=none must then answer
//            interaction_required; accepting it (same session) ends in a validated code grant
//
// The security-policy page (R-SSO-6) is submitted when RP_POLICY=accept; otherwise its
// appearance fails the run (the pages it showed are listed in "policy_pages").
// Second factors: with RP_TOTP_SECRET (base32) a page with a form field "code" is answered
// with the current TOTP code (RFC 6238, SHA1, RP_TOTP_DIGITS digits, RP_TOTP_PERIOD s).
// RP_ACR_VALUES and RP_MAX_AGE are added to the (first) authorization request when set.
//
// Input (environment): RP_ISSUER, RP_CLIENT_ID, RP_CLIENT_SECRET, RP_REDIRECT_URI,
// RP_POST_LOGOUT_REDIRECT_URI, RP_USERNAME, RP_PASSWORD, RP_SCOPE (default
// "openid profile email groups"). Output: one JSON object on stdout. Exit code 0 only when
// everything the mode checks held; otherwise 1, and the JSON carries "error".

import { createHmac } from 'node:crypto';
import * as client from 'openid-client';

const mode = process.argv[2] || 'full';
const out = { mode };
const MAX_HOPS = 15;

class Failure extends Error {}

function fail(message) {
  throw new Failure(message);
}

function env(name, fallback) {
  const value = process.env[name] ?? fallback;
  if (value === undefined || value === '') fail(`environment variable ${name} is required`);
  return value;
}

// -- a minimal cookie jar (host-only cookies; enough for one provider origin) -----------------
class CookieJar {
  constructor() {
    this.cookies = new Map();
  }

  store(response) {
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const expired = attrs.some((a) => {
        const [k, v] = a.trim().split('=');
        if (k.toLowerCase() === 'max-age') return Number(v) <= 0;
        if (k.toLowerCase() === 'expires') return Date.parse(a.trim().slice(8)) <= Date.now();
        return false;
      });
      if (expired || value === '' || value === '""') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }

  header() {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }
}

const jar = new CookieJar();

async function browserFetch(url, init = {}) {
  const headers = new Headers(init.headers || {});
  if (jar.cookies.size) headers.set('cookie', jar.header());
  headers.set('accept', 'text/html,application/xhtml+xml');
  const response = await fetch(url, { ...init, headers, redirect: 'manual' });
  jar.store(response);
  return response;
}

function decodeEntities(s) {
  return s
    .replace(/&#(\d+);/g, (_, n) => String.fromCharCode(Number(n)))
    .replace(/&#x([0-9a-f]+);/gi, (_, n) => String.fromCharCode(parseInt(n, 16)))
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}

function attr(tag, name) {
  const m = tag.match(new RegExp(`\\s${name}\\s*=\\s*("([^"]*)"|'([^']*)'|([^\\s>]+))`, 'i'));
  return m ? decodeEntities(m[2] ?? m[3] ?? m[4] ?? '') : undefined;
}

// The login form: its action and every hidden input (the CSRF token among them).
function parseForm(html, pageUrl) {
  const form = html.match(/<form\b[^>]*>[\s\S]*?<\/form>/i);
  if (!form) fail(`no <form> on ${pageUrl}`);
  const openTag = form[0].match(/<form\b[^>]*>/i)[0];
  const action = new URL(attr(openTag, 'action') || pageUrl, pageUrl);
  const method = (attr(openTag, 'method') || 'get').toUpperCase();
  const fields = {};
  for (const input of form[0].match(/<input\b[^>]*>/gi) || []) {
    const name = attr(input, 'name');
    if (name && (attr(input, 'type') || 'text').toLowerCase() === 'hidden') {
      fields[name] = attr(input, 'value') ?? '';
    }
  }
  const names = (form[0].match(/<input\b[^>]*>/gi) || []).map((i) => attr(i, 'name'));
  return { action, method, fields, names };
}

function base32Decode(text) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const ch of text.replace(/=+$/, '').toUpperCase()) {
    const v = alphabet.indexOf(ch);
    if (v < 0) fail('RP_TOTP_SECRET is not base32');
    bits += v.toString(2).padStart(5, '0');
  }
  const bytes = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(bytes);
}

// RFC 6238 TOTP of the current time step (RFC 4226 dynamic truncation).
function totp(secret) {
  const digits = Number(process.env.RP_TOTP_DIGITS || 6);
  const period = Number(process.env.RP_TOTP_PERIOD || 30);
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 1000 / period)));
  const mac = createHmac('sha1', base32Decode(secret)).update(counter).digest();
  const offset = mac[mac.length - 1] & 0xf;
  const value = (mac.readUInt32BE(offset) & 0x7fffffff) % 10 ** digits;
  return String(value).padStart(digits, '0');
}

function pageError(html) {
  // a form's error, or the message of the provider's error page (a refusal)
  const m = html.match(/<p class="error"[^>]*>([\s\S]*?)<\/p>/i) || html.match(/<p id="error-message"[^>]*>([\s\S]*?)<\/p>/i);
  return m ? decodeEntities(m[1].trim()) : undefined;
}

// Follow redirects from the authorization URL, filling in the login form once, until the
// provider sends the browser to the redirect URI. Returns that URL (with code and state).
async function signIn(authorizationUrl, redirectUri, username, password) {
  let url = authorizationUrl.href;
  let response;
  let submitted = false;
  let codeSubmitted = false;
  const trail = [];
  for (let hop = 0; hop < MAX_HOPS; hop++) {
    if (url.startsWith(redirectUri)) return { callback: new URL(url), trail };
    trail.push(new URL(url).pathname);
    response = await browserFetch(url);
    if ([301, 302, 303, 307, 308].includes(response.status)) {
      url = new URL(response.headers.get('location'), url).href;
      continue;
    }
    const html = await response.text();
    if (response.status !== 200) fail(`GET ${url} answered ${response.status}: ${pageError(html) || html.slice(0, 300)}`);
    const form = parseForm(html, url);
    if (form.action.pathname.endsWith('/policy') && 'action' in form.fields) {
      // the security-policy acknowledgement (R-SSO-6): RP_POLICY=accept submits it, =stop
      // returns here (the sign-in is left waiting for it), anything else is a failure
      const policy = { url: new URL(url).pathname, version: form.fields.action, hidden: Object.keys(form.fields).sort() };
      out.policy_pages = [...(out.policy_pages || []), policy];
      if (process.env.RP_POLICY === 'stop') return { policy, trail };
      if (process.env.RP_POLICY !== 'accept') fail(`the provider asks to accept its security policy at ${url}`);
      response = await browserFetch(form.action, {
        method: 'POST',
        body: new URLSearchParams(form.fields),
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      });
      trail.push(`POST ${form.action.pathname}`);
      if (![302, 303].includes(response.status)) {
        const text = await response.text();
        fail(`POST ${form.action.pathname} answered ${response.status}: ${pageError(text) || text.slice(0, 300)}`);
      }
      url = new URL(response.headers.get('location'), form.action).href;
      continue;
    }
    if (form.names.includes('code') && process.env.RP_TOTP_SECRET && !codeSubmitted) {
      // the provider asks for a second factor (after the password, or a step-up)
      out.code_form = { action: form.action.pathname, hidden: Object.keys(form.fields).sort() };
      const body = new URLSearchParams({ ...form.fields, code: totp(process.env.RP_TOTP_SECRET) });
      response = await browserFetch(form.action, {
        method: 'POST',
        body,
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      });
      codeSubmitted = true;
      trail.push(`POST ${form.action.pathname}`);
      if (![302, 303].includes(response.status)) {
        const text = await response.text();
        fail(`POST ${form.action.pathname} answered ${response.status}: ${pageError(text) || text.slice(0, 300)}`);
      }
      url = new URL(response.headers.get('location'), form.action).href;
      continue;
    }
    if (submitted) fail(`the provider did not finish the sign-in; it shows ${url}: ${pageError(html) || '(no error text)'}`);
    if (!form.names.includes('username') || !form.names.includes('password')) {
      fail(`expected the login form at ${url}, found fields ${form.names.join(', ')}`);
    }
    if (!form.fields.csrf_token) fail('the login form carries no csrf_token');
    out.login_form = { action: form.action.pathname, method: form.method, hidden: Object.keys(form.fields).sort() };
    const body = new URLSearchParams({ ...form.fields, username, password });
    response = await browserFetch(form.action, {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    submitted = true;
    trail.push(`POST ${form.action.pathname}`);
    if (![302, 303].includes(response.status)) {
      const text = await response.text();
      fail(`POST ${form.action.pathname} answered ${response.status}: ${pageError(text) || text.slice(0, 300)}`);
    }
    url = new URL(response.headers.get('location'), form.action).href;
  }
  fail(`too many redirects: ${trail.join(' -> ')}`);
}

function oauthError(err) {
  if (err instanceof client.ResponseBodyError) {
    return { ok: false, error: err.error, error_description: err.error_description ?? null, status: err.status };
  }
  return { ok: false, error: 'unexpected', message: String(err && err.message ? err.message : err), code: err?.code ?? null };
}

async function tryRefresh(config, refreshToken) {
  try {
    const tokens = await client.refreshTokenGrant(config, refreshToken);
    return { ok: true, tokens };
  } catch (err) {
    return oauthError(err);
  }
}

function decodeJwtPart(jwt, index) {
  return JSON.parse(Buffer.from(jwt.split('.')[index], 'base64url').toString('utf8'));
}

async function configure() {
  const issuer = new URL(env('RP_ISSUER'));
  const config = await client.discovery(
    issuer,
    env('RP_CLIENT_ID'),
    { client_secret: env('RP_CLIENT_SECRET') },
    client.ClientSecretBasic(env('RP_CLIENT_SECRET')),
    { execute: [client.allowInsecureRequests] },
  );
  const md = config.serverMetadata();
  out.discovery = {
    issuer: md.issuer,
    end_session_endpoint: md.end_session_endpoint ?? null,
    code_challenge_methods_supported: md.code_challenge_methods_supported ?? null,
    backchannel_logout_supported: md.backchannel_logout_supported ?? null,
  };
  return config;
}

async function login(config, extra = null) {
  const redirectUri = env('RP_REDIRECT_URI');
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const params = {
    redirect_uri: redirectUri,
    scope: env('RP_SCOPE', 'openid profile email groups'),
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
  };
  if (extra === null) {
    if (process.env.RP_ACR_VALUES) params.acr_values = process.env.RP_ACR_VALUES;
    if (process.env.RP_MAX_AGE) params.max_age = process.env.RP_MAX_AGE;
  } else {
    Object.assign(params, extra);
  }
  const authorizationUrl = client.buildAuthorizationUrl(config, params);
  const { callback, trail } = await signIn(authorizationUrl, redirectUri, env('RP_USERNAME'), env('RP_PASSWORD'));
  out.sign_in_trail = trail;
  out.callback_state_matches = callback.searchParams.get('state') === state;
  // openid-client checks state, the code exchange (PKCE verifier), and the ID token: signature
  // against the jwks_uri, iss, aud, azp, exp, iat, nonce, at_hash.
  const tokens = await client.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: verifier,
    expectedState: state,
    expectedNonce: nonce,
    idTokenExpected: true,
  });
  const claims = tokens.claims();
  out.id_token_header = decodeJwtPart(tokens.id_token, 0);
  out.access_token_header = decodeJwtPart(tokens.access_token, 0);
  out.access_token_claims = decodeJwtPart(tokens.access_token, 1);
  out.id_token_claims = claims;
  out.nonce_matches = claims.nonce === nonce;
  out.token_response = {
    token_type: tokens.token_type,
    scope: tokens.scope ?? null,
    expires_in: tokens.expires_in ?? null,
    has_refresh_token: Boolean(tokens.refresh_token),
  };
  return tokens;
}

async function full() {
  const config = await configure();
  const tokens = await login(config);
  const claims = tokens.claims();

  // userinfo: openid-client requires its sub to equal the ID token's
  out.userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);

  // refresh-token rotation, then reuse detection and family revocation
  const first = tokens.refresh_token;
  if (!first) fail('the code grant returned no refresh token');
  const rotated = await tryRefresh(config, first);
  if (!rotated.ok) {
    out.refresh = { rotated: rotated };
    fail(`refresh_token grant failed: ${rotated.error} ${rotated.error_description ?? rotated.message ?? ''}`);
  }
  const second = rotated.tokens.refresh_token;
  const refreshedClaims = rotated.tokens.claims() ?? null;
  out.refresh = {
    rotated: { ok: true, new_refresh_token: Boolean(second), differs: Boolean(second) && second !== first },
    refreshed_id_token_claims: refreshedClaims,
    refreshed_userinfo: null,
  };
  out.refresh.refreshed_userinfo = await client.fetchUserInfo(config, rotated.tokens.access_token, claims.sub);
  if (!second || second === first) fail('the refresh token was not rotated');
  out.refresh.reuse_old = await tryRefresh(config, first);
  out.refresh.new_after_reuse = await tryRefresh(config, second);
  for (const k of ['reuse_old', 'new_after_reuse']) {
    if (out.refresh[k].ok) fail(`refresh ${k} succeeded but must fail`);
    delete out.refresh[k].tokens;
  }
  if (out.refresh.reuse_old.error !== 'invalid_grant') fail(`reusing the rotated refresh token gave ${out.refresh.reuse_old.error}, want invalid_grant`);
  if (out.refresh.new_after_reuse.error !== 'invalid_grant') fail(`the new refresh token after reuse gave ${out.refresh.new_after_reuse.error}, want invalid_grant`);

  // RP-initiated logout: no confirmation page with a matching id_token_hint
  const postLogout = env('RP_POST_LOGOUT_REDIRECT_URI');
  const logoutState = client.randomState();
  const endSession = client.buildEndSessionUrl(config, {
    id_token_hint: tokens.id_token,
    post_logout_redirect_uri: postLogout,
    state: logoutState,
  });
  const response = await browserFetch(endSession);
  const location = response.headers.get('location');
  out.logout = { status: response.status, location, expected_state: logoutState };
  if (![302, 303].includes(response.status) || !location) {
    const text = await response.text();
    fail(`end_session_endpoint answered ${response.status} without a redirect: ${pageError(text) || text.slice(0, 300)}`);
  }
  const target = new URL(location, endSession);
  out.logout.redirect_to = `${target.origin}${target.pathname}`;
  out.logout.state = target.searchParams.get('state');
  out.logout.session_cookie_cleared = !jar.cookies.has('iam_session');
  if (out.logout.redirect_to !== postLogout) fail(`logout redirected to ${out.logout.redirect_to}, want ${postLogout}`);
  if (out.logout.state !== logoutState) fail('logout redirect lost the state');

  // the SSO session is gone: a silent authorization request now needs a login
  const silent = client.buildAuthorizationUrl(config, {
    redirect_uri: env('RP_REDIRECT_URI'),
    scope: 'openid',
    prompt: 'none',
    state: client.randomState(),
    code_challenge: await client.calculatePKCECodeChallenge(client.randomPKCECodeVerifier()),
    code_challenge_method: 'S256',
  });
  const after = await browserFetch(silent);
  const afterLocation = after.headers.get('location');
  out.logout.prompt_none_after = afterLocation ? new URL(afterLocation).searchParams.get('error') : `status ${after.status}`;
  if (out.logout.prompt_none_after !== 'login_required') fail(`after logout prompt=none gave ${out.logout.prompt_none_after}, want login_required`);
}

async function loginOnly() {
  const config = await configure();
  const tokens = await login(config);
  out.tokens = {
    id_token: tokens.id_token,
    access_token: tokens.access_token,
    refresh_token: tokens.refresh_token ?? null,
  };
}

async function refreshOnly() {
  const config = await configure();
  const expect = env('RP_EXPECT', 'ok');
  const result = await tryRefresh(config, env('RP_REFRESH_TOKEN'));
  if (result.ok) {
    out.refresh = { ok: true, claims: result.tokens.claims() ?? null, refresh_token: result.tokens.refresh_token ?? null };
  } else {
    out.refresh = result;
  }
  const got = result.ok ? 'ok' : result.error;
  if (got !== expect) fail(`refresh gave ${got}, want ${expect}`);
}

async function stepUp() {
  const config = await configure();
  await login(config, {});
  out.first = { id_token_claims: out.id_token_claims, sign_in_trail: out.sign_in_trail };
  const wanted = env('RP_STEP_UP_ACR', 'mfa');
  await login(config, { acr_values: wanted });
  out.step_up = { id_token_claims: out.id_token_claims, sign_in_trail: out.sign_in_trail };
  // openid-client checked signature, nonce, … of both; here: the level actually achieved
  if (out.step_up.id_token_claims.acr !== wanted) fail(`after step-up acr is ${out.step_up.id_token_claims.acr}, want ${wanted}`);
}

// R-SSO-6: sign in and stop at the policy page; a silent request (prompt=none) must answer
// interaction_required (with the state); then accept on the same browser session and finish
// with a code grant that openid-client validates.
async function policyFlow() {
  const config = await configure();
  const redirectUri = env('RP_REDIRECT_URI');
  const authorization = async (extra) =>
    client.buildAuthorizationUrl(config, {
      redirect_uri: redirectUri,
      scope: 'openid',
      state: client.randomState(),
      code_challenge: await client.calculatePKCECodeChallenge(client.randomPKCECodeVerifier()),
      code_challenge_method: 'S256',
      ...extra,
    });
  process.env.RP_POLICY = 'stop';
  const first = await signIn(await authorization({}), redirectUri, env('RP_USERNAME'), env('RP_PASSWORD'));
  if (!first.policy) fail('the first sign-in finished without showing the security policy');
  out.stopped_at = first.policy.url;
  const silentUrl = await authorization({ prompt: 'none' });
  const silent = await browserFetch(silentUrl);
  const location = silent.headers.get('location');
  if (!location) fail(`prompt=none answered ${silent.status} without a redirect`);
  const answer = new URL(location, silentUrl);
  out.prompt_none = {
    to: `${answer.origin}${answer.pathname}`,
    error: answer.searchParams.get('error'),
    state_matches: answer.searchParams.get('state') === silentUrl.searchParams.get('state'),
  };
  if (out.prompt_none.error !== 'interaction_required') fail(`prompt=none before acceptance gave ${out.prompt_none.error}, want interaction_required`);
  process.env.RP_POLICY = 'accept';
  await login(config);
  if (!out.sign_in_trail.includes('POST /policy')) fail(`the code came without accepting the policy: ${out.sign_in_trail.join(' -> ')}`);
}

const modes = { full, login: loginOnly, refresh: refreshOnly, stepup: stepUp, policy: policyFlow };

try {
  if (!modes[mode]) fail(`unknown mode ${mode}; use one of ${Object.keys(modes).join(', ')}`);
  await modes[mode]();
  out.ok = true;
  process.stdout.write(`${JSON.stringify(out)}\n`);
} catch (err) {
  out.ok = false;
  out.error = err instanceof Failure ? err.message : `${err?.name ?? 'Error'}: ${err?.message ?? err}`;
  if (!(err instanceof Failure)) {
    out.error_code = err?.code ?? null;
    if (err?.cause !== undefined) out.error_cause = err.cause instanceof Error ? String(err.cause) : err.cause;
  }
  process.stdout.write(`${JSON.stringify(out)}\n`);
  process.exitCode = 1;
}
