// Refresh tokens for the refresh benchmark, minted with oidc-provider's own models against the
// same Redis the running cluster uses (same OP_* environment as op.mjs).
//
//   node tokens.mjs mint COUNT OUTFILE [SUB]   COUNT refresh tokens (openid + api on the resource),
//                                              each under its own grant, one per line in OUTFILE
//   node tokens.mjs purge                      delete every key of OP_REDIS_PREFIX
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';

import { API_SCOPE, CLIENT_ID, RESOURCE, buildProvider } from './config.mjs';
import { configure, purge, redis } from './redis_adapter.mjs';

const BATCH = 500;

async function mint(count, outFile, sub) {
  const provider = buildProvider();
  const client = await provider.Client.find(CLIENT_ID);
  if (!client) throw new Error(`client ${CLIENT_ID} not found`);

  // One grant per refresh token, as if COUNT users had each signed in once: a token that fails
  // (and gets its grant revoked) cannot take the others with it.
  const mintOne = async () => {
    const grant = new provider.Grant({ accountId: sub, clientId: CLIENT_ID });
    grant.addOIDCScope('openid');
    grant.addResourceScope(RESOURCE, API_SCOPE);
    const grantId = await grant.save();
    return new provider.RefreshToken({
      client,
      accountId: sub,
      grantId,
      gty: 'authorization_code',
      scope: `openid ${API_SCOPE}`,
      resource: RESOURCE,
      authTime: Math.floor(Date.now() / 1000),
    }).save();
  };

  const out = createWriteStream(outFile);
  for (let done = 0; done < count; done += BATCH) {
    const n = Math.min(BATCH, count - done);
    const values = await Promise.all(Array.from({ length: n }, mintOne));
    if (!out.write(`${values.join('\n')}\n`)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
}

const [cmd, ...args] = process.argv.slice(2);
try {
  if (cmd === 'mint') {
    const count = Number(args[0]);
    if (!Number.isInteger(count) || count <= 0 || !args[1]) {
      throw new Error('usage: node tokens.mjs mint COUNT OUTFILE [SUB]');
    }
    await mint(count, args[1], args[2] || 'bench-user');
  } else if (cmd === 'purge') {
    configure({
      url: process.env.OP_REDIS_URL || 'redis://127.0.0.1:6379',
      keyPrefix: process.env.OP_REDIS_PREFIX || 'oidcbench:',
    });
    console.log(`purged ${await purge()} keys`);
  } else {
    throw new Error('usage: node tokens.mjs mint COUNT OUTFILE [SUB] | purge');
  }
} finally {
  try {
    redis().disconnect();
  } catch {
    // never configured
  }
}
