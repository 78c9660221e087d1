// oidc-provider configured like our provider for the benchmark: one confidential client
// (client_secret_basic), JWT access tokens and ID tokens signed ES256, refresh tokens rotated on
// every use, models kept in Redis so that every cluster worker sees every token.
//
// Environment (bench/run.py sets all of it):
//   OP_ISSUER         issuer URL, e.g. http://127.0.0.1:4100
//   OP_CLIENT_ID      default "bench"
//   OP_CLIENT_SECRET  required
//   OP_RESOURCE       resource indicator (audience of access tokens), default "urn:bench:api"
//   OP_REDIS_URL      default redis://127.0.0.1:6379
//   OP_REDIS_PREFIX   key prefix of this run, default "oidcbench:"
//   OP_JWKS           private JWKS as JSON; op.mjs generates one P-256 key when unset
import * as crypto from 'node:crypto';

import Provider, { errors } from 'oidc-provider';

import { configure, RedisAdapter } from './redis_adapter.mjs';

export const CLIENT_ID = process.env.OP_CLIENT_ID || 'bench';
export const RESOURCE = process.env.OP_RESOURCE || 'urn:bench:api';
export const API_SCOPE = 'api';

export function generateJwks() {
  const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = privateKey.export({ format: 'jwk' });
  return { keys: [{ ...jwk, kid: crypto.randomUUID(), alg: 'ES256', use: 'sig' }] };
}

export function buildProvider({ jwks } = {}) {
  const issuer = process.env.OP_ISSUER;
  const secret = process.env.OP_CLIENT_SECRET;
  if (!issuer || !secret) throw new Error('OP_ISSUER and OP_CLIENT_SECRET are required');

  configure({
    url: process.env.OP_REDIS_URL || 'redis://127.0.0.1:6379',
    keyPrefix: process.env.OP_REDIS_PREFIX || 'oidcbench:',
  });

  const provider = new Provider(issuer, {
    adapter: RedisAdapter,
    jwks: jwks || JSON.parse(process.env.OP_JWKS || 'null') || generateJwks(),
    clients: [
      {
        client_id: CLIENT_ID,
        client_secret: secret,
        grant_types: ['client_credentials', 'refresh_token', 'authorization_code'],
        response_types: ['code'],
        redirect_uris: ['http://127.0.0.1/cb'],
        token_endpoint_auth_method: 'client_secret_basic',
        scope: `openid ${API_SCOPE}`,
        id_token_signed_response_alg: 'ES256',
      },
    ],
    clientDefaults: {
      id_token_signed_response_alg: 'ES256',
      token_endpoint_auth_method: 'client_secret_basic',
    },
    enabledJWA: {
      idTokenSigningAlgValues: ['ES256'],
    },
    cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
    async findAccount(_ctx, sub) {
      return {
        accountId: sub,
        async claims() {
          return { sub };
        },
      };
    },
    claims: { openid: ['sub'] },
    scopes: ['openid', 'offline_access', API_SCOPE],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => RESOURCE,
        // A refresh token granted for the API keeps minting JWT access tokens for the API
        // (without this, a grant that includes "openid" would get an opaque userinfo token).
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx, resource) => {
          if (resource !== RESOURCE) throw new errors.InvalidTarget();
          return {
            scope: API_SCOPE,
            audience: RESOURCE,
            accessTokenTTL: 600,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'ES256' } },
          };
        },
      },
    },
    // Our provider rotates every refresh token on use; oidc-provider by default only does so for
    // public clients (or late in a token's life). Do the same work on both sides.
    rotateRefreshToken: true,
    ttl: {
      AccessToken: 600,
      ClientCredentials: 600,
      IdToken: 600,
      AuthorizationCode: 60,
      RefreshToken: 8 * 60 * 60,
      Grant: 8 * 60 * 60,
      Session: 10 * 60 * 60,
      Interaction: 60 * 60,
    },
  });
  provider.proxy = false;
  return provider;
}
