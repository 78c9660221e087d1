// npm oidc-provider for bench/run.py, as a Node `cluster`: one worker process per core (or
// OP_WORKERS), all listening on 127.0.0.1:PORT and sharing their models through Redis.
// See config.mjs for the provider's configuration and environment.
import cluster from 'node:cluster';
import * as os from 'node:os';

import { buildProvider, generateJwks } from './config.mjs';

const HOST = '127.0.0.1';
const PORT = Number(process.env.PORT || 4100);
const WORKERS = Number(process.env.OP_WORKERS || os.availableParallelism());

if (cluster.isPrimary) {
  // One signing key for the whole cluster, handed to every worker.
  const jwks = process.env.OP_JWKS || JSON.stringify(generateJwks());
  let listening = 0;
  let stopping = false;

  const stop = (code) => {
    stopping = true;
    for (const worker of Object.values(cluster.workers)) worker.process.kill('SIGTERM');
    setTimeout(() => process.exit(code), 200).unref();
    process.exitCode = code;
  };

  cluster.on('listening', () => {
    listening += 1;
    if (listening === WORKERS) {
      console.log(`oidc-provider: ${WORKERS} workers listening on http://${HOST}:${PORT}`);
    }
  });
  cluster.on('exit', (worker, code, signal) => {
    if (!stopping) {
      console.error(`oidc-provider: worker ${worker.process.pid} died (${signal || code})`);
      stop(1);
    } else if (Object.keys(cluster.workers).length === 0) {
      process.exit(process.exitCode ?? 0);
    }
  });
  process.on('SIGTERM', () => stop(0));
  process.on('SIGINT', () => stop(0));

  for (let i = 0; i < WORKERS; i += 1) cluster.fork({ OP_JWKS: jwks });
} else {
  const provider = buildProvider();
  provider.on('server_error', (_ctx, err) => console.error('server_error', err));
  provider.listen(PORT, HOST);
  process.on('SIGTERM', () => process.exit(0));
}
