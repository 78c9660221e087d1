// A small Redis adapter for oidc-provider, written for the benchmark.
//
// The in-memory adapter lives inside one Node process; in a `cluster` every worker would see only
// the tokens it issued itself. With Redis every worker sees every model, as oidc-provider expects
// when it runs in several processes.
//
// Layout (every key starts with the prefix handed to `configure`, so a run can be purged):
//   <prefix><Model>:<id>       hash  { p: JSON payload, c: epoch seconds when consumed }
//   <prefix>grant:<grantId>    list  of model keys issued under that grant (for revokeByGrantId)
//   <prefix>uid:<uid>          string -> Session id (findByUid)
//   <prefix>usercode:<code>    string -> DeviceCode id (findByUserCode)
import Redis from 'ioredis';

let client;
let prefix = 'oidcbench:';

// Marks a stored model consumed, but only if it still exists (an expired key must not come back
// as a hash without a TTL).
const CONSUME = `
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.call('HSET', KEYS[1], 'c', ARGV[1])
end
return 0`;

export function configure({ url = 'redis://127.0.0.1:6379', keyPrefix = prefix } = {}) {
  prefix = keyPrefix;
  client = new Redis(url, { enableAutoPipelining: true, maxRetriesPerRequest: 2 });
  client.defineCommand('oidcConsume', { numberOfKeys: 1, lua: CONSUME });
  return client;
}

export function redis() {
  if (!client) throw new Error('redis_adapter: configure() was not called');
  return client;
}

export async function purge() {
  const r = redis();
  let cursor = '0';
  let removed = 0;
  do {
    const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length) {
      removed += await r.unlink(...keys);
    }
  } while (cursor !== '0');
  return removed;
}

export class RedisAdapter {
  constructor(name) {
    this.name = name;
  }

  key(id) {
    return `${prefix}${this.name}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    const multi = redis().multi();
    multi.del(key);
    multi.hset(key, 'p', JSON.stringify(payload));
    if (expiresIn) multi.expire(key, expiresIn);

    const extra = [];
    if (payload.grantId) {
      const grantKey = `${prefix}grant:${payload.grantId}`;
      multi.rpush(grantKey, key);
      if (expiresIn) {
        // The index lives as long as its longest-lived member: NX sets a first TTL, GT extends it.
        multi.expire(grantKey, expiresIn, 'NX');
        multi.expire(grantKey, expiresIn, 'GT');
      }
    }
    if (payload.uid) extra.push([`${prefix}uid:${payload.uid}`, id]);
    if (payload.userCode) extra.push([`${prefix}usercode:${payload.userCode}`, id]);
    for (const [k, v] of extra) {
      if (expiresIn) multi.set(k, v, 'EX', expiresIn);
      else multi.set(k, v);
    }
    const results = await multi.exec();
    for (const [err] of results) if (err) throw err;
  }

  async find(id) {
    const stored = await redis().hgetall(this.key(id));
    if (!stored || stored.p === undefined) return undefined;
    const payload = JSON.parse(stored.p);
    if (stored.c !== undefined) payload.consumed = Number(stored.c);
    return payload;
  }

  async findByUid(uid) {
    const id = await redis().get(`${prefix}uid:${uid}`);
    return id ? this.find(id) : undefined;
  }

  async findByUserCode(userCode) {
    const id = await redis().get(`${prefix}usercode:${userCode}`);
    return id ? this.find(id) : undefined;
  }

  async consume(id) {
    await redis().oidcConsume(this.key(id), Math.floor(Date.now() / 1000));
  }

  async destroy(id) {
    await redis().unlink(this.key(id));
  }

  async revokeByGrantId(grantId) {
    const grantKey = `${prefix}grant:${grantId}`;
    const keys = await redis().lrange(grantKey, 0, -1);
    await redis().unlink(grantKey, ...keys);
  }
}
